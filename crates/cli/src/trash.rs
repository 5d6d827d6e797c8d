//! `dfs -rm` with HDFS's trash (`TrashPolicyDefault`): when the cluster
//! has a trash interval, a removed path moves to
//! `/user/USER/.Trash/Current/<its full path>` (a time suffix when that
//! name is taken, as HDFS), `-skipTrash` deletes at once, a path already
//! in the trash is deleted. `-expunge` deletes expired checkpoints and
//! checkpoints `Current` under a timestamped name; the leader does the
//! same for every user each interval.

use crate::dfs::{cmd_err, need_args, Parsed};
use anyhow::bail;
use tdfs_client::MetaClient;
use tdfs_proto::meta::{MetaRequest, MetaResponse};
use tdfs_proto::trash::{self, CURRENT, TRASH_DIR_MODE};
use tdfs_proto::{path, FsError};

/// `-rm [-f] [-r|-R] [-skipTrash] PATH...`.
pub async fn rm(c: &MetaClient, p: Parsed) -> anyhow::Result<u8> {
    need_args(&p, 1, "-rm [-f] [-r|-R] [-skipTrash] PATH...")?;
    let recursive = p.has("r") || p.has("R");
    let force = p.has("f");
    let interval = if p.has("skipTrash") {
        0
    } else {
        c.server_defaults().await?.trash_interval_ms
    };
    let mut code = 0;
    for a in &p.args {
        match rm_one(c, a, recursive, interval).await {
            Ok(Some(to)) => println!("Moved: '{a}' to trash at: {to}"),
            Ok(None) => println!("Deleted {a}"),
            Err(FsError::FileNotFound(_)) if force => {}
            Err(e @ FsError::PermissionDenied { .. }) if interval > 0 => {
                eprintln!(
                    "tdfs: rm: Failed to move to trash: {a}: {e}. Consider using -skipTrash option"
                );
                code = 1;
            }
            Err(e) => {
                eprintln!("tdfs: {}", cmd_err("rm", a, e));
                code = 1;
            }
        }
    }
    Ok(code)
}

/// Removes one path; `Some(trash path)` when it went to the trash.
async fn rm_one(
    c: &MetaClient,
    a: &str,
    recursive: bool,
    interval: u64,
) -> Result<Option<String>, FsError> {
    let p = path::normalize(a)?;
    let st = c.stat(&p).await?;
    if st.is_dir() && !recursive {
        return Err(FsError::IsADirectory(a.to_string()));
    }
    if interval > 0 {
        if let Some(to) = move_to_trash(c, &p).await? {
            return Ok(Some(to));
        }
    }
    c.delete(&p, recursive).await?;
    Ok(None)
}

/// Moves `p` into the caller's trash; `None` when it already is in it.
pub async fn move_to_trash(c: &MetaClient, p: &str) -> Result<Option<String>, FsError> {
    let user = &c.config().user;
    if trash::in_trash(user, p) {
        return Ok(None);
    }
    if path::is_within(&trash::trash_root(user), p) {
        return Err(FsError::InvalidArgument(format!(
            "Cannot move \"{p}\" to the trash, as it contains the trash"
        )));
    }
    let mut dst = trash::trash_path(user, p);
    let mut last = None;
    // Twice, in case a checkpoint moved Current between mkdirs and rename.
    for _ in 0..2 {
        let (mut base, name) = match path::split_parent(&dst) {
            Some((b, n)) => (b.to_string(), n.to_string()),
            None => return Err(FsError::InvalidArgument("cannot trash /".into())),
        };
        // A file in the way of the trash directory: HDFS renames around it.
        while let Err(e) = mkdir_700(c, &base).await {
            match e {
                FsError::AlreadyExists(_) | FsError::NotADirectory(_) => {
                    let blocker = first_file_on(c, &base).await?;
                    base = base.replacen(&blocker, &format!("{blocker}{}", now_ms()), 1);
                    dst = path::child(&base, &name);
                }
                other => return Err(other),
            }
        }
        let orig = dst.clone();
        while c.exists(&dst).await?.is_some() {
            dst = format!("{orig}{}", now_ms());
        }
        let op = MetaRequest::Rename {
            src: p.to_string(),
            dst: dst.clone(),
            into_dir: false,
        };
        match c.meta(op).await {
            Ok(_) => return Ok(Some(dst)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("tried"))
}

async fn mkdir_700(c: &MetaClient, p: &str) -> Result<(), FsError> {
    let op = MetaRequest::Mkdirs {
        path: p.to_string(),
        mode: Some(TRASH_DIR_MODE),
        parents: true,
    };
    c.meta(op).await.map(|_| ())
}

/// The first path on the way down to `p` that is not a directory.
async fn first_file_on(c: &MetaClient, p: &str) -> Result<String, FsError> {
    let comps = path::components(p)?;
    for i in 1..=comps.len() {
        let q = path::join(&comps[..i]);
        match c.exists(&q).await? {
            Some(s) if !s.is_dir() => return Ok(q),
            Some(_) => {}
            None => break,
        }
    }
    Err(FsError::NotADirectory(p.to_string()))
}

fn now_ms() -> u64 {
    tdfs_client::meta::now_ms()
}

/// `-expunge [-immediate]`: the caller's expired checkpoints go, then
/// `Current` becomes a checkpoint (`-immediate`: every checkpoint goes).
pub async fn expunge(c: &MetaClient, rest: &[String]) -> anyhow::Result<u8> {
    let immediate = rest.iter().any(|a| a == "-immediate");
    if let Some(bad) = rest.iter().find(|a| *a != "-immediate") {
        bail!("expunge: unknown option {bad} (usage: -expunge [-immediate])");
    }
    let d = c.server_defaults().await?;
    if d.trash_interval_ms == 0 {
        return Ok(0);
    }
    let root = trash::trash_root(&c.config().user);
    if c.exists(&root).await?.is_none() {
        return Ok(0);
    }
    let now = now_ms();
    delete_checkpoints(c, &root, now, d.trash_interval_ms, immediate).await?;
    checkpoint(c, &root, now).await?;
    if immediate {
        delete_checkpoints(c, &root, now, d.trash_interval_ms, true).await?;
    }
    Ok(0)
}

async fn delete_checkpoints(
    c: &MetaClient,
    root: &str,
    now: u64,
    interval: u64,
    all: bool,
) -> Result<(), FsError> {
    for e in c.list(root).await? {
        let Some(made) = trash::checkpoint_time(&e.name) else {
            continue;
        };
        if all || trash::expired(made, now, interval) {
            let p = path::child(root, &e.name);
            c.delete(&p, true).await?;
            println!("Deleted trash checkpoint: {p}");
        }
    }
    Ok(())
}

/// Renames `Current` to a checkpoint named by `now` (`-N` if taken).
async fn checkpoint(c: &MetaClient, root: &str, now: u64) -> Result<(), FsError> {
    let current = path::child(root, CURRENT);
    if c.exists(&current).await?.is_none() {
        return Ok(());
    }
    let base = path::child(root, &trash::checkpoint_name(now));
    for attempt in 0..1000 {
        let dst = if attempt == 0 {
            base.clone()
        } else {
            format!("{base}-{attempt}")
        };
        let op = MetaRequest::Rename {
            src: current.clone(),
            dst: dst.clone(),
            into_dir: false,
        };
        match c.meta(op).await {
            Ok(MetaResponse::Bool(false)) | Err(FsError::AlreadyExists(_)) => continue,
            Ok(_) => {
                println!("Created trash checkpoint: {dst}");
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    Err(FsError::Internal(format!(
        "failed to checkpoint trash {root}"
    )))
}
