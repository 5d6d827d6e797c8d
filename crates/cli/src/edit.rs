//! `dfs -truncate [-w] LENGTH PATH...` and `dfs -concat TARGET SRC...`.

use crate::dfs::{cmd_err, need_args, Parsed};
use anyhow::bail;
use std::time::Duration;
use tdfs_client::MetaClient;

/// How long `-truncate -w` waits for a block recovery.
const RECOVERY_WAIT: Duration = Duration::from_secs(300);

pub async fn truncate(c: &MetaClient, p: Parsed) -> anyhow::Result<u8> {
    need_args(&p, 2, "-truncate [-w] LENGTH PATH...")?;
    let (len, paths) = p.args.split_first().expect("checked");
    let Ok(len) = len.parse::<u64>() else {
        bail!("truncate: Illegal length, a non-negative integer expected");
    };
    let mut waiting = Vec::new();
    for t in paths {
        let done = c
            .truncate(t, len)
            .await
            .map_err(|e| cmd_err("truncate", t, e))?;
        if done {
            println!("Truncated {t} to length: {len}");
        } else if p.has("w") {
            waiting.push(t);
        } else {
            println!(
                "Truncating {t} to length: {len}. Wait for block recovery to complete before further updating this file."
            );
        }
    }
    for t in waiting {
        println!("Waiting for {t} ...");
        c.wait_closed(t, RECOVERY_WAIT)
            .await
            .map_err(|e| cmd_err("truncate", t, e))?;
        println!("Truncated {t} to length: {len}");
    }
    Ok(0)
}

pub async fn concat(c: &MetaClient, p: Parsed) -> anyhow::Result<u8> {
    if p.args.is_empty() {
        bail!("concat: Target path not specified. <target path> <src path> <src path> ...");
    }
    need_args(&p, 2, "-concat TARGET SRC...")?;
    let (target, sources) = p.args.split_first().expect("checked");
    c.concat(target, sources)
        .await
        .map_err(|e| cmd_err("concat", target, e))?;
    Ok(0)
}
