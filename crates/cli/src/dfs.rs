//! `tdfs dfs`: the file system shell, spelled as `hdfs dfs`.

use crate::fmt::{date_minutes, date_seconds};
use crate::opts::ClientOpts;
use anyhow::{anyhow, bail, Context};
use std::sync::Arc;
use tdfs_client::MetaClient;
use tdfs_proto::meta::{FileStatus, MetaRequest};
use tdfs_proto::perm::{format_mode, parse_mode};
use tdfs_proto::{path, FsError};

const USAGE: &str = "usage: tdfs dfs [--meta HOST:PORT,...] [--user NAME] COMMAND ARGS
commands: -put [-f] [-p] [-replication N] [-blocksize BYTES] LOCAL... REMOTE ('-' reads stdin)
          -get REMOTE LOCAL  -cat REMOTE...  -appendToFile LOCAL... REMOTE  -checksum [-sha256] PATH  -df
          -ls [-R] PATH...  -mkdir [-p] PATH...  -rm [-r] [-f] PATH...  -rmdir PATH...
          -mv SRC... DST  -stat [FORMAT] PATH...  -touchz PATH...  -test -e|-d|-f|-z PATH
          -chmod [-R] MODE PATH...  -chown [-R] OWNER[:GROUP] PATH...  -setrep [-w] N PATH...
          -du [-s] PATH...  -count [-q] [-h] [-v] PATH...
          -rm [-f] [-r|-R] [-skipTrash] PATH...  -expunge [-immediate]
          -createSnapshot DIR [NAME]  -deleteSnapshot DIR NAME  -renameSnapshot DIR OLD NEW
          -setfacl [-R] -m|-x ACLSPEC PATH / -b|-k PATH / --set ACLSPEC PATH  -getfacl [-R] PATH
          -setfattr -n NAME [-v VALUE] PATH / -x NAME PATH  -getfattr [-R] {-n NAME | -d} [-e ENC] PATH
          -truncate [-w] LENGTH PATH...  -concat TARGET SRC...";

/// Flags (single letters after `-`) and positional arguments of a command.
pub(crate) struct Parsed {
    pub flags: Vec<String>,
    pub args: Vec<String>,
}

pub(crate) fn split_flags(rest: &[String], known: &[&str]) -> Parsed {
    let mut flags = Vec::new();
    let mut args = Vec::new();
    let mut only_args = false;
    for a in rest {
        if !only_args && a == "--" {
            only_args = true;
        } else if !only_args && a.len() > 1 && a.starts_with('-') && known.contains(&&a[1..]) {
            flags.push(a[1..].to_string());
        } else {
            args.push(a.clone());
        }
    }
    Parsed { flags, args }
}

impl Parsed {
    pub(crate) fn has(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }
}

/// Runs a dfs command; returns the exit code.
pub async fn run(args: Vec<String>) -> anyhow::Result<u8> {
    let opts = ClientOpts::parse(args)?;
    let Some((cmd, rest)) = opts.rest.split_first() else {
        println!("{USAGE}");
        return Ok(1);
    };
    let cmd = cmd.trim_start_matches('-');
    if cmd == "help" || cmd == "h" {
        println!("{USAGE}");
        return Ok(0);
    }
    dispatch(&opts.client()?, cmd, rest).await
}

/// Runs command `cmd` (without its leading `-`) on arguments `rest`.
async fn dispatch(arc: &Arc<MetaClient>, cmd: &str, rest: &[String]) -> anyhow::Result<u8> {
    let c = arc.as_ref();
    match cmd {
        "put" | "copyFromLocal" => put(arc, rest).await,
        "get" | "copyToLocal" => get(c, split_flags(rest, &["p", "ignoreCrc", "crc", "f"])).await,
        "cat" => cat(c, split_flags(rest, &["ignoreCrc"])).await,
        "appendToFile" => append_to_file(arc, split_flags(rest, &[])).await,
        "checksum" => checksum(c, split_flags(rest, &["sha256"])).await,
        "df" => {
            crate::transfer::df(c).await?;
            Ok(0)
        }
        "ls" => ls(c, split_flags(rest, &["R", "d", "h"])).await,
        "mkdir" => mkdir(c, split_flags(rest, &["p"])).await,
        "rm" => {
            crate::trash::rm(
                c,
                split_flags(rest, &["r", "R", "f", "skipTrash", "safely"]),
            )
            .await
        }
        "expunge" => crate::trash::expunge(c, rest).await,
        "setfacl" => {
            crate::facl::setfacl(c, split_flags(rest, &["R", "m", "x", "b", "k", "-set"])).await
        }
        "getfacl" => crate::facl::getfacl(c, split_flags(rest, &["R"])).await,
        "setfattr" => crate::facl::setfattr(c, rest).await,
        "getfattr" => crate::facl::getfattr(c, rest).await,
        "createSnapshot" | "deleteSnapshot" | "renameSnapshot" => {
            crate::snap::snapshot_cmd(c, cmd, rest).await
        }
        "truncate" => crate::edit::truncate(c, split_flags(rest, &["w"])).await,
        "concat" => crate::edit::concat(c, split_flags(rest, &[])).await,
        "rmdir" => rmdir(c, split_flags(rest, &[])).await,
        "mv" => mv(c, split_flags(rest, &[])).await,
        "stat" => stat(c, rest).await,
        "touchz" | "touch" => touchz(c, split_flags(rest, &[])).await,
        "test" => test(c, split_flags(rest, &["e", "d", "f", "z", "s"])).await,
        "chmod" => chmod(c, split_flags(rest, &["R"])).await,
        "chown" => chown(c, split_flags(rest, &["R"])).await,
        "setrep" => setrep(c, split_flags(rest, &["w", "R"])).await,
        "du" => du(c, split_flags(rest, &["s", "h"])).await,
        "count" => crate::quota::count(c, split_flags(rest, &["q", "h", "v", "u"])).await,
        other => bail!("-{other}: unknown command\n{USAGE}"),
    }
}

async fn put(arc: &Arc<MetaClient>, rest: &[String]) -> anyhow::Result<u8> {
    let p = split_flags(rest, &["f", "p", "d", "l"]);
    let (p, replication, block_size) = take_valued(p)?;
    need_args(
        &p,
        2,
        "-put [-f] [-p] [-replication N] [-blocksize BYTES] LOCAL... REMOTE",
    )?;
    let (remote, locals) = p.args.split_last().unwrap();
    let o = crate::transfer::PutOpts {
        overwrite: p.has("f"),
        preserve: p.has("p"),
        replication,
        block_size,
    };
    crate::transfer::put(arc, locals, remote, o).await?;
    Ok(0)
}

async fn get(c: &MetaClient, p: Parsed) -> anyhow::Result<u8> {
    need_args(&p, 2, "-get REMOTE LOCAL")?;
    crate::transfer::get(c, &p.args[0], &p.args[1]).await?;
    Ok(0)
}

async fn cat(c: &MetaClient, p: Parsed) -> anyhow::Result<u8> {
    need_args(&p, 1, "-cat REMOTE...")?;
    crate::transfer::cat(c, &p.args).await?;
    Ok(0)
}

async fn append_to_file(arc: &Arc<MetaClient>, p: Parsed) -> anyhow::Result<u8> {
    need_args(&p, 2, "-appendToFile LOCAL... REMOTE")?;
    let (remote, locals) = p.args.split_last().unwrap();
    crate::transfer::append(arc, locals, remote).await?;
    Ok(0)
}

async fn checksum(c: &MetaClient, p: Parsed) -> anyhow::Result<u8> {
    need_args(&p, 1, "-checksum [-sha256] PATH...")?;
    let sha = p.flags.iter().any(|f| f == "sha256");
    for a in &p.args {
        println!("{}", crate::transfer::checksum(c, a, sha).await?);
    }
    Ok(0)
}

async fn mkdir(c: &MetaClient, p: Parsed) -> anyhow::Result<u8> {
    need_args(&p, 1, "-mkdir [-p] PATH...")?;
    for a in &p.args {
        c.mkdirs(a, p.has("p"))
            .await
            .map_err(|e| cmd_err("mkdir", a, e))?;
    }
    Ok(0)
}

async fn rmdir(c: &MetaClient, p: Parsed) -> anyhow::Result<u8> {
    need_args(&p, 1, "-rmdir PATH...")?;
    for a in &p.args {
        let s = c.stat(a).await.map_err(|e| cmd_err("rmdir", a, e))?;
        if !s.is_dir() {
            bail!("rmdir: {a}: is not a directory");
        }
        c.delete(a, false)
            .await
            .map_err(|e| cmd_err("rmdir", a, e))?;
    }
    Ok(0)
}

async fn mv(c: &MetaClient, p: Parsed) -> anyhow::Result<u8> {
    need_args(&p, 2, "-mv SRC... DST")?;
    let (dst, srcs) = p.args.split_last().unwrap();
    if srcs.len() > 1 {
        match c.exists(dst).await? {
            Some(s) if s.is_dir() => {}
            _ => {
                bail!("mv: {dst}: when moving multiple files, the destination must be a directory")
            }
        }
    }
    for s in srcs {
        c.rename(s, dst).await.map_err(|e| cmd_err("mv", s, e))?;
    }
    Ok(0)
}

async fn touchz(c: &MetaClient, p: Parsed) -> anyhow::Result<u8> {
    need_args(&p, 1, "-touchz PATH...")?;
    for a in &p.args {
        c.touchz(a).await.map_err(|e| cmd_err("touchz", a, e))?;
    }
    Ok(0)
}

/// Pulls `-replication N` and `-blocksize BYTES` out of the arguments.
fn take_valued(mut p: Parsed) -> anyhow::Result<(Parsed, Option<u16>, Option<u64>)> {
    let mut replication = None;
    let mut block_size = None;
    let mut args = Vec::new();
    let mut it = std::mem::take(&mut p.args).into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-replication" => {
                let v = it.next().context("-replication needs a value")?;
                replication = Some(
                    v.parse()
                        .with_context(|| format!("bad replication {v:?}"))?,
                );
            }
            "-blocksize" => {
                let v = it.next().context("-blocksize needs a value")?;
                block_size = Some(crate::conf::parse_size(&v)?);
            }
            _ => args.push(a),
        }
    }
    p.args = args;
    Ok((p, replication, block_size))
}

pub(crate) fn need_args(p: &Parsed, n: usize, usage: &str) -> anyhow::Result<()> {
    if p.args.len() < n {
        bail!("usage: tdfs dfs {usage}");
    }
    Ok(())
}

/// An error as HDFS prints it: `cmd: path: message`.
pub(crate) fn cmd_err(cmd: &str, p: &str, e: FsError) -> anyhow::Error {
    match e {
        FsError::FileNotFound(_) => anyhow!("{cmd}: `{p}': No such file or directory"),
        other => anyhow!("{cmd}: {other}"),
    }
}

fn ls_line(s: &FileStatus, full: &str) -> String {
    let repl = if s.is_dir() {
        "-".to_string()
    } else {
        s.replication.to_string()
    };
    // HDFS marks an inode with an ACL by a `+` after its permissions.
    let acl = if s.has_acl { "+" } else { "" };
    format!(
        "{}{acl} {:>3} {} {} {:>10} {} {}",
        format_mode(s.is_dir(), s.mode),
        repl,
        s.owner,
        s.group,
        s.length,
        date_minutes(s.mtime),
        full
    )
}

async fn ls(c: &MetaClient, p: Parsed) -> anyhow::Result<u8> {
    let targets = if p.args.is_empty() {
        vec![format!("/user/{}", c.config().user)]
    } else {
        p.args.clone()
    };
    let mut code = 0;
    for t in targets {
        let t = path::normalize(&t).map_err(|e| anyhow!("ls: {e}"))?;
        let st = match c.stat(&t).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("tdfs: {}", cmd_err("ls", &t, e));
                code = 1;
                continue;
            }
        };
        if !st.is_dir() || p.has("d") {
            println!("{}", ls_line(&st, &t));
            continue;
        }
        if p.has("R") {
            // Depth-first in name order: each entry, then its subtree (as hdfs dfs -ls -R).
            let first = c.list(&t).await.map_err(|e| cmd_err("ls", &t, e))?;
            let mut stack: Vec<(String, std::vec::IntoIter<FileStatus>)> =
                vec![(t.clone(), first.into_iter())];
            while let Some((dir, it)) = stack.last_mut() {
                let Some(e) = it.next() else {
                    stack.pop();
                    continue;
                };
                let full = path::child(dir, &e.name);
                println!("{}", ls_line(&e, &full));
                if e.is_dir() {
                    let sub = c.list(&full).await.map_err(|e| cmd_err("ls", &full, e))?;
                    stack.push((full, sub.into_iter()));
                }
            }
        } else {
            let entries = c.list(&t).await.map_err(|e| cmd_err("ls", &t, e))?;
            if !entries.is_empty() {
                println!("Found {} items", entries.len());
            }
            for e in &entries {
                println!("{}", ls_line(e, &path::child(&t, &e.name)));
            }
        }
    }
    Ok(code)
}

async fn stat(c: &MetaClient, rest: &[String]) -> anyhow::Result<u8> {
    let (fmt, paths): (String, Vec<String>) = match rest {
        [] => bail!("usage: tdfs dfs -stat [FORMAT] PATH..."),
        [p] => ("%y".into(), vec![p.clone()]),
        [f, ps @ ..] if !f.starts_with('/') => (f.clone(), ps.to_vec()),
        ps => ("%y".into(), ps.to_vec()),
    };
    for p in &paths {
        let s = c.stat(p).await.map_err(|e| cmd_err("stat", p, e))?;
        println!("{}", stat_format(&fmt, &s));
    }
    Ok(0)
}

/// Expands `hdfs dfs -stat` format specifiers.
fn stat_format(fmt: &str, s: &FileStatus) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(ch) = chars.next() {
        if ch != '%' {
            out.push(ch);
            continue;
        }
        match chars.next() {
            Some('a') => out.push_str(&format!("{:o}", s.mode)),
            Some('A') => out.push_str(&format_mode(s.is_dir(), s.mode)[1..]),
            Some('b') => out.push_str(&s.length.to_string()),
            Some('F') => out.push_str(if s.is_dir() {
                "directory"
            } else {
                "regular file"
            }),
            Some('g') => out.push_str(&s.group),
            Some('n') => out.push_str(&s.name),
            Some('o') => out.push_str(&s.block_size.to_string()),
            Some('r') => out.push_str(&s.replication.to_string()),
            Some('u') => out.push_str(&s.owner),
            Some('x') => out.push_str(&date_seconds(s.atime)),
            Some('X') => out.push_str(&s.atime.to_string()),
            Some('y') => out.push_str(&date_seconds(s.mtime)),
            Some('Y') => out.push_str(&s.mtime.to_string()),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

async fn test(c: &MetaClient, p: Parsed) -> anyhow::Result<u8> {
    if p.flags.len() != 1 || p.args.len() != 1 {
        bail!("usage: tdfs dfs -test -e|-d|-f|-z|-s PATH");
    }
    let st = c.exists(&p.args[0]).await?;
    let ok = match (p.flags[0].as_str(), &st) {
        (_, None) => false,
        ("e", Some(_)) => true,
        ("d", Some(s)) => s.is_dir(),
        ("f", Some(s)) => !s.is_dir(),
        ("z", Some(s)) => s.length == 0,
        ("s", Some(s)) => s.length > 0,
        _ => false,
    };
    Ok(if ok { 0 } else { 1 })
}

/// The paths a `-R` command applies to: each target and, with `-R`, everything below.
pub(crate) async fn expand(
    c: &MetaClient,
    targets: &[String],
    recursive: bool,
) -> anyhow::Result<Vec<(String, FileStatus)>> {
    let mut out = Vec::new();
    for t in targets {
        let t = path::normalize(t).map_err(|e| anyhow!("{e}"))?;
        let st = c.stat(&t).await.map_err(|e| cmd_err("stat", &t, e))?;
        let is_dir = st.is_dir();
        out.push((t.clone(), st));
        if recursive && is_dir {
            let mut stack = vec![t];
            while let Some(d) = stack.pop() {
                for e in c.list(&d).await? {
                    let full = path::child(&d, &e.name);
                    if e.is_dir() {
                        stack.push(full.clone());
                    }
                    out.push((full, e));
                }
            }
        }
    }
    Ok(out)
}

async fn chmod(c: &MetaClient, p: Parsed) -> anyhow::Result<u8> {
    need_args(&p, 2, "-chmod [-R] MODE PATH...")?;
    let (mode, targets) = p.args.split_first().unwrap();
    for (t, st) in expand(c, targets, p.has("R")).await? {
        let m = parse_mode(mode, st.mode, st.is_dir()).map_err(|e| anyhow!("chmod: {e}"))?;
        c.meta(MetaRequest::SetPermission {
            path: t.clone(),
            mode: m,
        })
        .await
        .map_err(|e| cmd_err("chmod", &t, e))?;
    }
    Ok(0)
}

async fn chown(c: &MetaClient, p: Parsed) -> anyhow::Result<u8> {
    need_args(&p, 2, "-chown [-R] OWNER[:GROUP] PATH...")?;
    let (spec, targets) = p.args.split_first().unwrap();
    let (owner, group) = match spec.split_once(':') {
        Some((o, g)) => (
            (!o.is_empty()).then(|| o.to_string()),
            (!g.is_empty()).then(|| g.to_string()),
        ),
        None => (Some(spec.clone()), None),
    };
    if owner.is_none() && group.is_none() {
        bail!("chown: {spec:?} names neither an owner nor a group");
    }
    for (t, _) in expand(c, targets, p.has("R")).await? {
        c.meta(MetaRequest::SetOwner {
            path: t.clone(),
            owner: owner.clone(),
            group: group.clone(),
        })
        .await
        .map_err(|e| cmd_err("chown", &t, e))?;
    }
    Ok(0)
}

async fn setrep(c: &MetaClient, p: Parsed) -> anyhow::Result<u8> {
    need_args(&p, 2, "-setrep [-w] N PATH...")?;
    let (n, targets) = p.args.split_first().unwrap();
    let n: u16 = n
        .parse()
        .with_context(|| format!("setrep: bad replication {n:?}"))?;
    // As HDFS: a directory's files are all set.
    let mut files = Vec::new();
    for (t, st) in expand(c, targets, true).await? {
        if !st.is_dir() {
            c.meta(MetaRequest::SetReplication {
                path: t.clone(),
                replication: n,
            })
            .await
            .map_err(|e| cmd_err("setrep", &t, e))?;
            println!("Replication {n} set: {t}");
            files.push(t);
        }
    }
    if p.has("w") {
        wait_replicated(c, &files).await?;
    }
    Ok(0)
}

/// Waits until no block under the given files is under- or over-replicated.
async fn wait_replicated(c: &MetaClient, files: &[String]) -> anyhow::Result<()> {
    for f in files {
        print!("Waiting for {f} ...");
        loop {
            let r = c.fsck(f).await?;
            if r.under_replicated == 0 && r.over_replicated == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        println!(" done");
    }
    Ok(())
}

async fn du(c: &MetaClient, p: Parsed) -> anyhow::Result<u8> {
    need_args(&p, 1, "-du [-s] PATH...")?;
    for t in &p.args {
        let t = path::normalize(t).map_err(|e| anyhow!("du: {e}"))?;
        let st = c.stat(&t).await.map_err(|e| cmd_err("du", &t, e))?;
        if p.has("s") || !st.is_dir() {
            let s = c
                .content_summary(&t)
                .await
                .map_err(|e| cmd_err("du", &t, e))?;
            println!("{}  {}  {}", s.length, s.space_consumed, t);
        } else {
            for e in c.list(&t).await? {
                let full = path::child(&t, &e.name);
                let s = c
                    .content_summary(&full)
                    .await
                    .map_err(|e| cmd_err("du", &full, e))?;
                println!("{}  {}  {}", s.length, s.space_consumed, full);
            }
        }
    }
    Ok(0)
}
