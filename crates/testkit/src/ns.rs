//! Helpers for the namespace-feature tests: block ids and where their
//! replicas are, waits for a truncate's recovery and for blocks to be
//! freed, and the `tdfs` shell run against an in-process cluster.

use crate::procs::wait_for;
use std::collections::BTreeSet;
use std::time::Duration;
use tdfs_client::MetaClient;
use tdfs_local::LocalCluster;
use tdfs_proto::meta::FileStatus;
use tdfs_proto::BlockId;

/// Block ids of `path` as the namespace lists them.
pub async fn block_ids(c: &MetaClient, path: &str) -> Vec<BlockId> {
    let lbs = c.block_locations(path, 0, u64::MAX).await.unwrap();
    lbs.blocks.iter().map(|b| b.block.id).collect()
}

/// Every block id with a finalized replica on a running datanode.
pub fn stored_blocks(cl: &LocalCluster) -> BTreeSet<BlockId> {
    cl.datanodes
        .iter()
        .filter_map(|d| d.handle.as_ref())
        .flat_map(|d| d.store.replicas().into_iter().map(|r| r.id))
        .collect()
}

/// Waits until none of `ids` has a replica left on any datanode.
pub async fn wait_freed(cl: &LocalCluster, ids: &[BlockId], what: &str) {
    wait_for(what, Duration::from_secs(30), || async {
        let s = stored_blocks(cl);
        ids.iter().all(|b| !s.contains(b)).then_some(())
    })
    .await
}

/// Waits for a truncate's recovery to close the file; returns its status.
pub async fn wait_closed(c: &MetaClient, path: &str) -> FileStatus {
    c.wait_closed(path, Duration::from_secs(30)).await.unwrap();
    c.stat(path).await.unwrap()
}

/// Runs `tdfs dfs|dfsadmin ARGS` against the cluster as `user`.
pub fn tdfs(cl: &LocalCluster, user: &str, args: &[&str]) -> (i32, String, String) {
    let meta = cl
        .meta_addrs
        .values()
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    let (cmd, rest) = args.split_first().unwrap();
    let mut v = vec![*cmd, "--meta", &meta, "--user", user];
    v.extend_from_slice(rest);
    let r = crate::procs::run_tdfs(&v, &[]);
    println!("tdfs {args:?} -> {r:?}");
    r
}

/// `/user/U` owned by `U`.
pub fn home(cl: &LocalCluster, user: &str) {
    let h = format!("/user/{user}");
    assert_eq!(tdfs(cl, "root", &["dfs", "-mkdir", "-p", &h]).0, 0);
    assert_eq!(tdfs(cl, "root", &["dfs", "-chown", user, &h]).0, 0);
}
