//! `tdfs dfsadmin`, `tdfs fsck` and `tdfs haadmin`.

use crate::opts::ClientOpts;
use anyhow::{anyhow, bail, Context};
use serde_json::json;
use std::collections::BTreeMap;
use tdfs_client::MetaClient;
use tdfs_proto::meta::{AdminRequest, AdminResponse, ClusterReport};
use tdfs_proto::DatanodeId;

async fn report(c: &MetaClient) -> anyhow::Result<ClusterReport> {
    match c.admin(AdminRequest::Report).await? {
        AdminResponse::Report(r) => Ok(r),
        other => bail!("unexpected reply {other:?}"),
    }
}

/// `tdfs dfsadmin -report [--json] | -decommission ID | -recommission ID`,
/// the snapshot switches and the quota commands.
pub async fn dfsadmin(args: Vec<String>) -> anyhow::Result<u8> {
    let o = ClientOpts::parse(args)?;
    let c = o.client()?;
    let rest = &o.rest;
    match rest.first().map(|s| s.trim_start_matches('-')) {
        Some("report") => {
            let r = report(&c).await?;
            let capacity: u64 = r.datanodes.iter().map(|d| d.capacity).sum();
            let used: u64 = r.datanodes.iter().map(|d| d.used).sum();
            let remaining: u64 = r.datanodes.iter().map(|d| d.remaining).sum();
            if o.json {
                let dns: Vec<_> = r
                    .datanodes
                    .iter()
                    .map(|d| {
                        json!({"id": d.id.0, "addr": d.addr, "http": d.http, "state": d.state,
                               "admin_state": d.admin_state, "capacity": d.capacity, "used": d.used,
                               "remaining": d.remaining, "blocks": d.blocks,
                               "last_contact_ms": d.last_contact_ms})
                    })
                    .collect();
                let doc = json!({"leader": r.leader, "capacity": capacity, "used": used,
                                 "remaining": remaining, "datanodes": dns});
                println!("{doc}");
            } else {
                println!("Configured Capacity: {capacity}");
                println!("DFS Used: {used}");
                println!("DFS Remaining: {remaining}");
                println!(
                    "Leader: {}",
                    r.leader
                        .map(|l| l.to_string())
                        .unwrap_or_else(|| "none".into())
                );
                let live = r.datanodes.iter().filter(|d| d.state == "live").count();
                println!("\nDatanodes ({} total, {live} live):", r.datanodes.len());
                for d in &r.datanodes {
                    println!(
                        "\nName: {} ({})\nState: {}\nAdmin state: {}\nCapacity: {}\nDFS Used: {}\nDFS Remaining: {}\nBlocks: {}\nLast contact: {} ms ago",
                        d.addr, d.id, d.state, d.admin_state, d.capacity, d.used, d.remaining, d.blocks, d.last_contact_ms
                    );
                }
            }
            Ok(0)
        }
        Some(cmd @ ("decommission" | "recommission")) => {
            let id = rest
                .get(1)
                .with_context(|| format!("usage: tdfs dfsadmin -{cmd} DATANODE_ID"))?;
            let id = DatanodeId(id.clone());
            let req = if cmd == "decommission" {
                AdminRequest::Decommission { id: id.clone() }
            } else {
                AdminRequest::Recommission { id: id.clone() }
            };
            c.admin(req).await?;
            println!("{cmd} of {id} requested");
            Ok(0)
        }
        Some(cmd @ ("allowSnapshot" | "disallowSnapshot")) => {
            crate::snap::allow(&c, cmd == "allowSnapshot", &rest[1..]).await
        }
        Some(cmd @ ("setQuota" | "clrQuota" | "setSpaceQuota" | "clrSpaceQuota")) => {
            crate::quota::dfsadmin(&c, cmd, &rest[1..]).await
        }
        _ => bail!("usage: tdfs dfsadmin -report [--json] | -decommission ID | -recommission ID | -allowSnapshot DIR | -disallowSnapshot DIR | -setQuota N DIR... | -clrQuota DIR... | -setSpaceQuota BYTES [-storageType T] DIR... | -clrSpaceQuota [-storageType T] DIR..."),
    }
}

/// `tdfs fsck [PATH] [-list-corruptfileblocks] [--json]`: exit 0 when
/// HEALTHY, 1 otherwise; the listing exits 0 once it could list (as HDFS).
pub async fn fsck(args: Vec<String>) -> anyhow::Result<u8> {
    let o = ClientOpts::parse(args)?;
    let c = o.client()?;
    let mut path = None;
    let mut list = false;
    for a in &o.rest {
        match a.trim_start_matches('-') {
            "list-corruptfileblocks" => list = true,
            _ if !a.starts_with('-') && path.is_none() => path = Some(a.clone()),
            // HDFS's report flags (-files, -blocks, ...) change nothing here.
            _ => {}
        }
    }
    let path = path.unwrap_or_else(|| "/".into());
    let r = c.fsck(&path).await?;
    if list {
        list_corrupt(&path, &r, o.json);
        return Ok(0);
    }
    let healthy = r.missing == 0 && r.corrupt == 0;
    let status = if healthy { "HEALTHY" } else { "CORRUPT" };
    if o.json {
        let doc = json!({"status": status, "path": path, "files": r.files,
            "directories": r.directories, "blocks": r.blocks, "total_size": r.total_size,
            "under_replicated": r.under_replicated, "over_replicated": r.over_replicated,
            "missing": r.missing, "corrupt": r.corrupt, "bad_files": r.bad_files});
        println!("{doc}");
    } else {
        for f in &r.bad_files {
            println!("{f}: MISSING OR CORRUPT BLOCKS");
        }
        println!("Status: {status}");
        println!(" Total size:\t{} B", r.total_size);
        println!(" Total dirs:\t{}", r.directories);
        println!(" Total files:\t{}", r.files);
        println!(" Total blocks:\t{}", r.blocks);
        println!(" Under-replicated blocks:\t{}", r.under_replicated);
        println!(" Over-replicated blocks:\t{}", r.over_replicated);
        println!(" Missing blocks:\t{}", r.missing);
        println!(" Corrupt blocks:\t{}", r.corrupt);
        println!("\nThe filesystem under path '{path}' is {status}");
    }
    Ok(if healthy { 0 } else { 1 })
}

/// `fsck PATH -list-corruptfileblocks`: the blocks whose every replica is
/// corrupt, with their file and the datanodes keeping the bad copies; the
/// text is HDFS's listing (`blk_ID<TAB>PATH` lines between its two lines).
fn list_corrupt(path: &str, r: &tdfs_proto::meta::FsckReport, as_json: bool) {
    if as_json {
        let files: Vec<_> = r
            .corrupt_blocks
            .iter()
            .map(|b| {
                let locs: Vec<&str> = b.locations.iter().map(|d| d.0.as_str()).collect();
                json!({"path": b.path, "block": b.block, "locations": locs})
            })
            .collect();
        println!("{}", json!({ "corrupt_files": files }));
        return;
    }
    let n = r.corrupt_blocks.len();
    if n == 0 {
        println!("The filesystem under path '{path}' has no CORRUPT files");
        return;
    }
    println!("The list of corrupt files under path '{path}' are:");
    for b in &r.corrupt_blocks {
        println!("blk_{}\t{}", b.block, b.path);
    }
    println!("The filesystem under path '{path}' has {n} CORRUPT files");
}

/// Collects every metadata node's state, marking the unreachable ones.
async fn all_states(c: &MetaClient) -> anyhow::Result<Vec<serde_json::Value>> {
    // Learn the membership from the most authoritative node that answers:
    // the leader, else the one furthest along (a removed node's view is stale).
    let mut best: Option<tdfs_proto::meta::NodeState> = None;
    for addr in &c.config().meta {
        if let Ok(s) = c.node_state(addr).await {
            let rank =
                |n: &tdfs_proto::meta::NodeState| (n.role == "leader", n.term, n.applied_index);
            if best.as_ref().is_none_or(|b| rank(&s) > rank(b)) {
                best = Some(s);
            }
        }
    }
    let mut members: BTreeMap<u64, String> = BTreeMap::new();
    if let Some(s) = &best {
        for (id, a) in s.voters.iter().chain(s.learners.iter()) {
            members.insert(*id, a.clone());
        }
    }
    if members.is_empty() {
        bail!("no metadata node answered");
    }
    let mut out = Vec::new();
    for (id, addr) in members {
        let v = match c.node_state(&addr).await {
            Ok(s) => json!({"id": id, "addr": addr, "http": s.http, "role": s.role, "term": s.term,
                            "leader": s.leader, "last_log_index": s.last_log_index,
                            "applied_index": s.applied_index, "alarm": s.alarm}),
            Err(_) => json!({"id": id, "addr": addr, "role": "unreachable", "term": 0}),
        };
        out.push(v);
    }
    Ok(out)
}

/// `tdfs haadmin ...`.
pub async fn haadmin(args: Vec<String>) -> anyhow::Result<u8> {
    let o = ClientOpts::parse(args)?;
    let c = o.client()?;
    let rest = &o.rest;
    let usage = "usage: tdfs haadmin -getAllServiceState [--json] | -addMeta ID HOST:PORT | -removeMeta ID | -transferLeader ID";
    let id_arg = |i: usize| -> anyhow::Result<u64> {
        rest.get(i)
            .ok_or_else(|| anyhow!("{usage}"))?
            .parse()
            .map_err(|_| anyhow!("metadata node id must be a number"))
    };
    match rest.first().map(|s| s.trim_start_matches('-')) {
        Some("getAllServiceState") => {
            let states = all_states(&c).await?;
            if o.json {
                println!("{}", serde_json::Value::Array(states));
            } else {
                for s in states {
                    println!(
                        "{:<24} {:<12} term {}",
                        s["addr"].as_str().unwrap_or(""),
                        s["role"].as_str().unwrap_or(""),
                        s["term"]
                    );
                    if let Some(a) = s["alarm"].as_str() {
                        println!("  CONSISTENCY ALARM: {a}");
                    }
                }
            }
            Ok(0)
        }
        Some("getServiceState") => {
            let id = id_arg(1)?;
            let states = all_states(&c).await?;
            let s = states
                .iter()
                .find(|s| s["id"] == id)
                .with_context(|| format!("no metadata node {id}"))?;
            println!("{}", s["role"].as_str().unwrap_or(""));
            Ok(0)
        }
        Some("addMeta") => {
            let id = id_arg(1)?;
            let addr = rest.get(2).with_context(|| usage.to_string())?.clone();
            c.admin(AdminRequest::AddMeta {
                id,
                addr: addr.clone(),
            })
            .await?;
            println!("metadata node {id} at {addr} added");
            Ok(0)
        }
        Some("removeMeta") => {
            let id = id_arg(1)?;
            c.admin(AdminRequest::RemoveMeta { id }).await?;
            println!("metadata node {id} removed");
            Ok(0)
        }
        Some("transferLeader") => {
            let id = id_arg(1)?;
            c.admin(AdminRequest::TransferLeader { id }).await?;
            println!("leadership transferred to {id}");
            Ok(0)
        }
        _ => bail!("{usage}"),
    }
}

/// `tdfs balancer [-threshold PCT] [-wait SECS]`: exit 0 once balanced.
pub async fn balancer(args: Vec<String>) -> anyhow::Result<u8> {
    let o = ClientOpts::parse(args)?;
    let mut threshold = 10.0f64;
    let mut wait = 600u32;
    let mut it = o.rest.iter();
    while let Some(a) = it.next() {
        match a.trim_start_matches('-') {
            "threshold" => {
                let v = it.next().context("-threshold needs a percentage")?;
                threshold = v.parse().with_context(|| format!("bad threshold {v:?}"))?;
                if !(0.0..=100.0).contains(&threshold) || threshold < 0.01 {
                    bail!("-threshold must be between 0.01 and 100");
                }
            }
            "wait" => {
                let v = it.next().context("-wait needs seconds")?;
                wait = v.parse().with_context(|| format!("bad wait {v:?}"))?;
            }
            other => bail!("unknown balancer option -{other}"),
        }
    }
    let c = o.client()?;
    // One long call: the leader balances and answers when done.
    let mut cfg = c.config().clone();
    cfg.attempt_timeout = std::time::Duration::from_secs(wait as u64 + 30);
    cfg.deadline = cfg.attempt_timeout + std::time::Duration::from_secs(30);
    let c = MetaClient::new(cfg)?;
    let started = std::time::Instant::now();
    let r = c
        .admin(AdminRequest::Balance {
            threshold_bp: (threshold * 100.0).round() as u32,
            wait_secs: wait,
        })
        .await?;
    let AdminResponse::Balanced { balanced, moves } = r else {
        bail!("unexpected reply {r:?}");
    };
    let secs = started.elapsed().as_secs_f64();
    if balanced {
        println!("The cluster is balanced (threshold {threshold}%) after {secs:.1} s; at most {moves} moves were in flight at once.");
        Ok(0)
    } else {
        println!("The cluster is not balanced within {wait} s (threshold {threshold}%).");
        Ok(1)
    }
}
