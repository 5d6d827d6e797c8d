//! Quotas in the shell: `dfs -count -q`/`-u` with HDFS's columns, and
//! `dfsadmin -setQuota/-clrQuota/-setSpaceQuota/-clrSpaceQuota`.

use crate::dfs::{cmd_err, need_args, Parsed};
use anyhow::{bail, Context};
use tdfs_client::MetaClient;
use tdfs_proto::quota::{QuotaChange, QuotaUsage};

const QUOTA_HEADER: &str = "       QUOTA       REM_QUOTA     SPACE_QUOTA REM_SPACE_QUOTA ";
const SUMMARY_HEADER: &str = "   DIR_COUNT   FILE_COUNT       CONTENT_SIZE ";

/// A byte count, or with `-h` Hadoop's human form (`1.5 M`).
fn size(n: u64, human: bool) -> String {
    if !human || n < 1024 {
        return n.to_string();
    }
    let units = ["K", "M", "G", "T", "P", "E"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", units[i - 1])
}

/// QUOTA REM_QUOTA SPACE_QUOTA REM_SPACE_QUOTA, `none`/`inf` when unset.
fn quota_columns(q: &QuotaUsage, human: bool) -> String {
    let (ns, rem) = match q.ns_quota {
        Some(n) => (
            n.to_string(),
            (n as i64 - q.file_and_dir_count as i64).to_string(),
        ),
        None => ("none".into(), "inf".into()),
    };
    let (sq, srem) = match q.space_quota {
        Some(n) => {
            let left = n as i64 - q.space_consumed as i64;
            let left = if left >= 0 {
                size(left as u64, human)
            } else {
                left.to_string()
            };
            (size(n, human), left)
        }
        None => ("none".into(), "inf".into()),
    };
    format!("{ns:>12} {rem:>15} {sq:>12} {srem:>15} ")
}

/// `-count [-q] [-u] [-h] [-v] PATH...`.
pub async fn count(c: &MetaClient, p: Parsed) -> anyhow::Result<u8> {
    need_args(&p, 1, "-count [-q] [-u] [-h] [-v] PATH...")?;
    let (q, u, h) = (p.has("q"), p.has("u"), p.has("h"));
    if p.has("v") {
        let head = match (q, u) {
            (_, true) => QUOTA_HEADER.to_string(),
            (true, _) => format!("{QUOTA_HEADER}{SUMMARY_HEADER}"),
            _ => SUMMARY_HEADER.to_string(),
        };
        println!("{head}PATHNAME");
    }
    for t in &p.args {
        let mut line = String::new();
        if q || u {
            let qu = c.quota_usage(t).await.map_err(|e| cmd_err("count", t, e))?;
            line.push_str(&quota_columns(&qu, h));
        }
        if !u {
            let s = c
                .content_summary(t)
                .await
                .map_err(|e| cmd_err("count", t, e))?;
            line.push_str(&format!(
                "{:>12} {:>12} {:>18} ",
                s.directory_count,
                s.file_count,
                size(s.length, h)
            ));
        }
        println!("{line}{t}");
    }
    Ok(0)
}

/// `dfsadmin -setQuota N DIR...`, `-clrQuota DIR...`,
/// `-setSpaceQuota BYTES [-storageType T] DIR...`,
/// `-clrSpaceQuota [-storageType T] DIR...`.
pub async fn dfsadmin(c: &MetaClient, cmd: &str, rest: &[String]) -> anyhow::Result<u8> {
    let mut args = rest.to_vec();
    let ty = match args.iter().position(|a| a == "-storageType") {
        Some(i) if i + 1 < args.len() => {
            args.remove(i);
            Some(args.remove(i))
        }
        Some(_) => bail!("{cmd}: -storageType needs a storage type"),
        None => None,
    };
    let change = match cmd {
        "setQuota" | "setSpaceQuota" => {
            let v = args.first().with_context(|| {
                format!("usage: tdfs dfsadmin -{cmd} <quota> <dirname>...<dirname>")
            })?;
            let n = if cmd == "setQuota" {
                v.parse::<u64>().ok().filter(|n| *n > 0)
            } else {
                crate::conf::parse_size(v).ok()
            };
            let Some(n) = n else {
                bail!("{cmd}: \"{v}\" is not a valid value for a quota.");
            };
            args.remove(0);
            QuotaChange::Set(n)
        }
        _ => QuotaChange::Clear,
    };
    if args.is_empty() {
        bail!(
            "usage: tdfs dfsadmin -{cmd} {}<dirname>...<dirname>",
            if cmd.starts_with("set") {
                "<quota> "
            } else {
                ""
            }
        );
    }
    let mut code = 0;
    for d in &args {
        let r = match (cmd, &ty) {
            ("setQuota" | "clrQuota", _) => c.set_quota(d, change, QuotaChange::Keep).await,
            (_, Some(t)) => c.set_type_quota(d, t, change).await,
            (_, None) => c.set_quota(d, QuotaChange::Keep, change).await,
        };
        if let Err(e) = r {
            eprintln!("tdfs: {}", cmd_err(cmd, d, e));
            code = 1;
        }
    }
    Ok(code)
}
