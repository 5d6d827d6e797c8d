//! Snapshot commands: `dfs -createSnapshot/-deleteSnapshot/-renameSnapshot`,
//! `dfsadmin -allowSnapshot/-disallowSnapshot`, `lsSnapshottableDir` and
//! `snapshotDiff`, with HDFS's output.

use crate::dfs::cmd_err;
use crate::fmt::date_minutes;
use crate::opts::ClientOpts;
use anyhow::bail;
use tdfs_client::MetaClient;
use tdfs_proto::perm::format_mode;

/// `-createSnapshot DIR [NAME]`, `-deleteSnapshot DIR NAME`,
/// `-renameSnapshot DIR OLD NEW`.
pub async fn snapshot_cmd(c: &MetaClient, cmd: &str, rest: &[String]) -> anyhow::Result<u8> {
    match (cmd, rest) {
        ("createSnapshot", [dir]) | ("createSnapshot", [dir, _]) => {
            let p = c
                .create_snapshot(dir, rest.get(1).map(String::as_str))
                .await
                .map_err(|e| cmd_err("createSnapshot", dir, e))?;
            println!("Created snapshot {p}");
        }
        ("createSnapshot", []) => bail!("createSnapshot: <snapshotDir> is missing."),
        ("deleteSnapshot", [dir, name]) => c
            .delete_snapshot(dir, name)
            .await
            .map_err(|e| cmd_err("deleteSnapshot", dir, e))?,
        ("renameSnapshot", [dir, old, new]) => c
            .rename_snapshot(dir, old, new)
            .await
            .map_err(|e| cmd_err("renameSnapshot", dir, e))?,
        ("deleteSnapshot", _) => bail!("usage: tdfs dfs -deleteSnapshot DIR NAME"),
        ("renameSnapshot", _) => bail!("usage: tdfs dfs -renameSnapshot DIR OLD NEW"),
        _ => bail!("{cmd}: Too many arguments."),
    }
    Ok(0)
}

/// `dfsadmin -allowSnapshot DIR` / `-disallowSnapshot DIR`.
pub async fn allow(c: &MetaClient, allow: bool, rest: &[String]) -> anyhow::Result<u8> {
    let [dir] = rest else {
        bail!(
            "usage: tdfs dfsadmin -{}allowSnapshot <snapshotDir>",
            if allow { "" } else { "dis" }
        );
    };
    if allow {
        c.allow_snapshot(dir).await?;
        println!("Allowing snapshot on {dir} succeeded");
    } else {
        c.disallow_snapshot(dir).await?;
        println!("Disallowing snapshot on {dir} succeeded");
    }
    Ok(0)
}

/// `tdfs lsSnapshottableDir`: HDFS's `SnapshottableDirectoryStatus.print`.
pub async fn ls_snapshottable(args: Vec<String>) -> anyhow::Result<u8> {
    let o = ClientOpts::parse(args)?;
    let c = o.client()?;
    let dirs = c.snapshottable_dirs().await?;
    if dirs.is_empty() {
        println!();
        return Ok(0);
    }
    let w = |f: &dyn Fn(&tdfs_proto::snapshot::SnapshottableDir) -> String| {
        dirs.iter().map(|d| f(d).len()).max().unwrap_or(0)
    };
    let (wr, wo, wg, wl) = (
        w(&|d| d.status.replication.to_string()),
        w(&|d| d.status.owner.clone()),
        w(&|d| d.status.group.clone()),
        1,
    );
    let (wn, wq) = (w(&|d| d.snapshots.to_string()), w(&|d| d.quota.to_string()));
    for d in &dirs {
        let s = &d.status;
        println!(
            "{} {:>wr$} {:<wo$} {:<wg$} {:>wl$} {} {:>wn$} {:>wq$} {}",
            format_mode(true, s.mode),
            s.replication,
            s.owner,
            s.group,
            0,
            date_minutes(s.mtime),
            d.snapshots,
            d.quota,
            d.path
        );
    }
    Ok(0)
}

/// `tdfs snapshotDiff DIR FROM TO` ("." or "" is the current state).
pub async fn snapshot_diff(args: Vec<String>) -> anyhow::Result<u8> {
    let o = ClientOpts::parse(args)?;
    let [dir, from, to] = o.rest.as_slice() else {
        bail!("usage: tdfs snapshotDiff <snapshotDir> <from> <to>");
    };
    let c = o.client()?;
    let r = c
        .snapshot_diff(dir, from, to)
        .await
        .map_err(|e| cmd_err("snapshotDiff", dir, e))?;
    println!("{r}");
    Ok(0)
}
