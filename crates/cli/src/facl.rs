//! `dfs -setfacl/-getfacl` and `dfs -setfattr/-getfattr`, with FsShell's
//! options, messages and output (`AclCommands`, `XAttrCommands`).

use crate::dfs::{cmd_err, expand, Parsed};
use anyhow::{anyhow, bail};
use tdfs_client::MetaClient;
use tdfs_proto::acl::{effective, full_acl, parse_spec, AclChange, AclEntry, AclKind, AclScope};
use tdfs_proto::perm::STICKY;
use tdfs_proto::xattr::{decode_value, encode_value, Encoding, XAttrFlags};

/// `-setfacl [-R] -m|-x ACLSPEC PATH`, `-setfacl [-R] -b|-k PATH`,
/// `-setfacl [-R] --set ACLSPEC PATH`.
pub async fn setfacl(c: &MetaClient, p: Parsed) -> anyhow::Result<u8> {
    let has = |f: &str| p.has(f);
    let ops = ["m", "x", "b", "k", "-set"]
        .iter()
        .filter(|f| has(f))
        .count();
    if (has("b") || has("k")) && (has("m") || has("x") || has("-set")) {
        bail!("setfacl: Specified flags contains both remove and modify flags");
    }
    if ops != 1 {
        bail!("setfacl: Expected one of -b, -k, -m, -x or --set options");
    }
    let with_spec = has("m") || has("x") || has("-set");
    let (spec, target) = match (with_spec, p.args.as_slice()) {
        (_, []) => bail!("setfacl: Missing arguments: <acl_spec> <path>"),
        (true, [_]) => bail!("setfacl: Missing either <acl_spec> or <path>"),
        (true, [s, t]) => (Some(s.as_str()), t),
        (false, [t]) => (None, t),
        _ => bail!("setfacl: Too many arguments"),
    };
    let entries = match spec {
        Some(s) => parse_spec(s, !has("x")).map_err(|e| anyhow!("setfacl: {e}"))?,
        None => Vec::new(),
    };
    if with_spec && entries.is_empty() {
        bail!("setfacl: Missing <acl_spec> entry");
    }
    let access: Vec<AclEntry> = entries
        .iter()
        .filter(|e| e.scope == AclScope::Access)
        .cloned()
        .collect();
    let recursive = has("R");
    for (path, st) in expand(c, std::slice::from_ref(target), recursive).await? {
        // Recursing, files get the access entries only (as HDFS).
        let mine = if recursive && !st.is_dir() {
            &access
        } else {
            &entries
        };
        let change = if has("m") {
            AclChange::Modify(mine.clone())
        } else if has("x") {
            AclChange::Remove(mine.clone())
        } else if has("-set") {
            AclChange::Set(mine.clone())
        } else if has("b") {
            AclChange::RemoveAll
        } else {
            AclChange::RemoveDefault
        };
        if with_spec && mine.is_empty() {
            continue;
        }
        c.change_acl(&path, change)
            .await
            .map_err(|e| cmd_err("setfacl", &path, e))?;
    }
    Ok(0)
}

/// `-getfacl [-R] PATH`.
pub async fn getfacl(c: &MetaClient, p: Parsed) -> anyhow::Result<u8> {
    let target = match p.args.as_slice() {
        [] => bail!("getfacl: <path> is missing"),
        [t] => t,
        _ => bail!("getfacl: Too many arguments"),
    };
    for (path, st) in expand(c, std::slice::from_ref(target), p.has("R")).await? {
        let status = c
            .acl_status(&path)
            .await
            .map_err(|e| cmd_err("getfacl", &path, e))?;
        println!("# file: {path}");
        println!("# owner: {}", status.owner);
        println!("# group: {}", status.group);
        if st.mode & STICKY != 0 {
            println!("# flags: --{}", if st.mode & 1 != 0 { "t" } else { "T" });
        }
        let acl = full_acl(st.mode, &status.entries);
        for scope in [AclScope::Access, AclScope::Default] {
            let mine: Vec<&AclEntry> = acl.iter().filter(|e| e.scope == scope).collect();
            let minimal = mine.len() == 3;
            for e in mine {
                let eff = effective(e, &acl);
                if !minimal && e.kind != AclKind::Mask && eff != e.perm {
                    println!("{e}\t#effective:{}", tdfs_proto::acl::perm_string(eff));
                } else {
                    println!("{e}");
                }
            }
        }
        println!();
    }
    Ok(0)
}

/// Pulls `FLAG VALUE` out of `args`.
fn take(args: &mut Vec<String>, flag: &str) -> anyhow::Result<Option<String>> {
    let Some(i) = args.iter().position(|a| a == flag) else {
        return Ok(None);
    };
    if i + 1 >= args.len() {
        bail!("{flag} needs a value");
    }
    args.remove(i);
    Ok(Some(args.remove(i)))
}

/// `-setfattr -n NAME [-v VALUE] PATH` or `-setfattr -x NAME PATH`.
pub async fn setfattr(c: &MetaClient, rest: &[String]) -> anyhow::Result<u8> {
    let mut args = rest.to_vec();
    let name = take(&mut args, "-n")?;
    let value = take(&mut args, "-v")?;
    let remove = take(&mut args, "-x")?;
    let path = match args.as_slice() {
        [] => bail!("setfattr: <path> is missing."),
        [p] => p.clone(),
        _ => bail!("setfattr: Too many arguments."),
    };
    match (name, remove) {
        (Some(_), Some(_)) => {
            bail!("setfattr: Can not specify both '-n name' and '-x name' option.")
        }
        (None, None) => bail!("setfattr: Must specify '-n name' or '-x name' option."),
        (Some(n), None) => {
            let v = match value {
                Some(v) => decode_value(&v).map_err(|e| anyhow!("setfattr: {e}"))?,
                None => Vec::new(),
            };
            c.set_xattr(&path, &n, &v, XAttrFlags::EITHER)
                .await
                .map_err(|e| cmd_err("setfattr", &path, e))?;
        }
        (None, Some(x)) => c
            .remove_xattr(&path, &x)
            .await
            .map_err(|e| cmd_err("setfattr", &path, e))?,
    }
    Ok(0)
}

/// `-getfattr [-R] {-n NAME | -d} [-e ENCODING] PATH`.
pub async fn getfattr(c: &MetaClient, rest: &[String]) -> anyhow::Result<u8> {
    let mut args = rest.to_vec();
    let name = take(&mut args, "-n")?;
    let enc = match take(&mut args, "-e")? {
        Some(e) => Encoding::parse(&e)
            .map_err(|_| anyhow!("getfattr: Invalid/unsupported encoding option specified: {e}"))?,
        None => Encoding::Text,
    };
    let flag = |args: &mut Vec<String>, f: &str| match args.iter().position(|a| a == f) {
        Some(i) => {
            args.remove(i);
            true
        }
        None => false,
    };
    let recursive = flag(&mut args, "-R");
    let dump = flag(&mut args, "-d");
    if name.is_none() && !dump {
        bail!("getfattr: Must specify '-n name' or '-d' option.");
    }
    let target = match args.as_slice() {
        [] => bail!("getfattr: <path> is missing."),
        [p] => p.clone(),
        _ => bail!("getfattr: Too many arguments."),
    };
    for (path, _) in expand(c, std::slice::from_ref(&target), recursive).await? {
        println!("# file: {path}");
        let names: Vec<String> = name.iter().cloned().collect();
        let mut xs = c
            .xattrs(&path, &names)
            .await
            .map_err(|e| cmd_err("getfattr", &path, e))?;
        xs.sort_by(|a, b| a.name.cmp(&b.name));
        for x in xs {
            if x.value.is_empty() {
                println!("{}", x.name);
            } else {
                println!("{}={}", x.name, encode_value(&x.value, enc));
            }
        }
    }
    Ok(0)
}
