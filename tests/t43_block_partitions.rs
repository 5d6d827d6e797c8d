//! Block streams through the transport connector: the in-process cluster's
//! fault rules cut client ↔ datanode and datanode ↔ datanode data links as
//! they cut RPC, streams already open included. A client cut from
//! replicas reads from the others and writes around a pipeline head it
//! lost; a datanode cut from its peers (still reaching the metadata nodes)
//! leaves a pipeline it was in the middle of, and its blocks are copied
//! from and to other nodes; a one-way cut on a pipeline link is recovered
//! from like a full one, without waiting for a timeout; healed links carry
//! streams again.

use std::sync::Arc;
use std::time::Duration;
use tdfs_client::{CreateOptions, FileWriter, MetaClient};
use tdfs_local::{LocalCluster, LocalConfig};
use tdfs_proto::meta::{LocatedBlock, MetaRequest};
use tdfs_proto::{DatanodeId, FsError};
use tdfs_rpc::{Connector, Sel};
use tdfs_testkit::files::*;
use tdfs_testkit::procs::wait_for;
use tdfs_transfer::SEND_TIMEOUT_PER_NODE;

const BS: u64 = 1 << 20;

/// Fast timers; the balancer off so that nothing but the test moves data.
fn fast(cfg: &mut LocalConfig) {
    cfg.tweak_meta = Some(Arc::new(|m| {
        m.superuser = "root".into();
        m.heartbeat_ms = 50;
        m.election_min_ms = 150;
        m.election_max_ms = 300;
        m.balance_threshold_pct = None;
    }));
}

/// The pipeline (datanode ids) of the last block of an open file, from the leader.
fn last_block_targets(cl: &LocalCluster, path: &str) -> Vec<DatanodeId> {
    let leader = cl.leader().expect("a leader");
    leader.inspect(|ns, _| {
        let id = ns.lookup("root", path).unwrap();
        ns.open_file(id).map(|f| f.targets).unwrap_or_default()
    })
}

fn ids(cl: &LocalCluster) -> Vec<String> {
    cl.datanodes
        .iter()
        .filter_map(|d| d.id.as_ref().map(|i| i.0.clone()))
        .collect()
}

/// Opens `path` (replication 3) and writes half a block: the pipeline of
/// block 0 is open, its streams connected.
async fn half_written(c: &Arc<MetaClient>, path: &str, data: &[u8]) -> FileWriter {
    let opts = CreateOptions {
        create_parents: true,
        replication: Some(3),
        ..Default::default()
    };
    let mut w = FileWriter::create(c.clone(), path, opts).await.unwrap();
    w.write(&data[..BS as usize / 2]).await.unwrap();
    w
}

/// Writes the rest and closes, within the smallest configured transfer
/// timeout: recovering from a cut must not wait one out.
async fn finish_quickly(mut w: FileWriter, data: &[u8]) {
    let done = async {
        w.write(&data[BS as usize / 2..]).await?;
        w.close().await
    };
    let n = tokio::time::timeout(SEND_TIMEOUT_PER_NODE, done)
        .await
        .expect("the write recovered without waiting for a timeout")
        .unwrap();
    assert_eq!(n, data.len() as u64);
}

/// Block 0 of `path` once it has `n` replicas.
async fn first_block(c: &MetaClient, path: &str, n: usize) -> LocatedBlock {
    wait_replicas(c, path, n).await.blocks.remove(0)
}

/// Reads block `lb` from the datanode at `addr` through `connector`.
async fn read_via(connector: &Connector, addr: &str, lb: &LocatedBlock) -> Result<u64, FsError> {
    let mut sink = Vec::new();
    tdfs_transfer::read_block_with_token(
        connector,
        addr,
        None,
        lb.token.clone(),
        (lb.block.id, lb.block.gen),
        (0, u64::MAX),
        &mut sink,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cut_from_replicas_reads_from_the_others_and_writes_around_them() {
    let (_d, cl) = cluster(4, BS, fast).await;
    let c = cl.client("root");
    let net = cl.net.clone();
    let as_client = Connector::filtered("client", net.clone());
    let data = bytes(431, 3 * BS as usize);
    write(&c, "/r/f", &data, 100_000).await;
    let lb = first_block(&c, "/r/f", 3).await;
    let (x, y) = (&lb.locations[0], &lb.locations[1]);
    net.partition(&["client"], &[x.id.0.as_str(), y.id.0.as_str()]);
    // The cut applies to block streams, not only to RPC.
    let e = read_via(&as_client, &x.addr, &lb).await.unwrap_err();
    assert!(e.to_string().contains("cut"), "{e}");
    assert!(read_via(&Connector::direct(), &x.addr, &lb).await.is_ok());
    // Every block fails over to a replica the client reaches.
    assert_eq!(
        sha(&read(&c, "/r/f", 0, data.len() as u64).await),
        sha(&data)
    );
    net.heal();

    // A pipeline head lost mid-block (its open stream is cut): the block
    // is written again through a pipeline without it.
    let data2 = bytes(432, 2 * BS as usize + 77);
    let w = half_written(&c, "/w/f", &data2).await;
    let head = last_block_targets(&cl, "/w/f")[0].clone();
    net.partition(&["client"], &[head.0.as_str()]);
    finish_quickly(w, &data2).await;
    let lb2 = first_block(&c, "/w/f", 3).await;
    assert!(
        lb2.locations.iter().all(|l| l.id != head),
        "block 0 still on the lost head {head}: {:?}",
        lb2.locations
    );
    assert_eq!(
        sha(&read(&c, "/w/f", 0, data2.len() as u64).await),
        sha(&data2)
    );

    // Healed: the links carry block streams again, to every datanode.
    net.heal();
    read_via(&as_client, &x.addr, &lb).await.unwrap();
    let opts = CreateOptions {
        create_parents: true,
        replication: Some(4),
        ..Default::default()
    };
    let mut w = FileWriter::create(c.clone(), "/h/f", opts).await.unwrap();
    w.write(&data[..BS as usize]).await.unwrap();
    w.close().await.unwrap();
    let lb = first_block(&c, "/h/f", 4).await;
    for l in &lb.locations {
        read_via(&as_client, &l.addr, &lb).await.unwrap();
    }
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datanode_cut_from_its_peers_leaves_pipelines_and_copies() {
    let (_d, mut cl) = cluster(3, BS, fast).await;
    let c = cl.client("root");
    let net = cl.net.clone();
    // On all three datanodes.
    let pre = bytes(433, 2 * BS as usize);
    write(&c, "/pre/f", &pre, 100_000).await;
    wait_replicas(&c, "/pre/f", 3).await;

    // A pipeline whose middle node is cut from the other two mid-block.
    let data = bytes(434, BS as usize + 5000);
    let w = half_written(&c, "/w/f", &data).await;
    let t = last_block_targets(&cl, "/w/f");
    let m = t[1].clone();
    let peers: Vec<String> = ids(&cl).into_iter().filter(|i| *i != m.0).collect();
    net.partition(std::slice::from_ref(&m.0), &peers);
    finish_quickly(w, &data).await;
    let lb = first_block(&c, "/w/f", 2).await;
    assert!(lb.locations.iter().all(|l| l.id != m), "{:?}", lb.locations);
    assert_eq!(
        sha(&read(&c, "/w/f", 0, data.len() as u64).await),
        sha(&data)
    );

    // A new datanode, cut from `m` too: the blocks `m` holds are copied
    // to it from the others (a copy from `m` fails and is planned again
    // around it), and so is block 0 of /w/f, never to `m`.
    let slot = cl.add_datanode().await.unwrap();
    let fresh = cl.datanodes[slot].id.clone().unwrap();
    net.partition(&[m.0.as_str()], &[fresh.0.as_str()]);
    cl.wait_ready(Duration::from_secs(30)).await.unwrap();
    let set = |path: &str, n: u16| MetaRequest::SetReplication {
        path: path.into(),
        replication: n,
    };
    c.meta(set("/pre/f", 4)).await.unwrap();
    let lbs = wait_for("4 replicas of /pre/f", Duration::from_secs(90), || async {
        let l = c.block_locations("/pre/f", 0, u64::MAX).await.ok()?;
        l.blocks.iter().all(|b| b.locations.len() == 4).then_some(l)
    })
    .await;
    assert!(lbs
        .blocks
        .iter()
        .all(|b| b.locations.iter().any(|l| l.id == m)));
    let lb = first_block(&c, "/w/f", 3).await;
    assert!(
        lb.locations.iter().any(|l| l.id == fresh),
        "{:?}",
        lb.locations
    );
    assert!(lb.locations.iter().all(|l| l.id != m), "{:?}", lb.locations);

    // Healed: copies reach `m` again.
    net.heal();
    c.meta(set("/w/f", 4)).await.unwrap();
    let lb = first_block(&c, "/w/f", 4).await;
    assert!(lb.locations.iter().any(|l| l.id == m), "{:?}", lb.locations);
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_way_cut_on_a_pipeline_link_is_recovered_from_like_a_full_cut() {
    let (_d, cl) = cluster(4, BS, fast).await;
    let c = cl.client("root");
    let net = cl.net.clone();
    // Acknowledgements from the tail to the middle node are lost.
    let data = bytes(435, 2 * BS as usize);
    let w = half_written(&c, "/a/f", &data).await;
    let t = last_block_targets(&cl, "/a/f");
    net.cut_one_way(Sel::One(t[2].0.clone()), Sel::One(t[1].0.clone()));
    finish_quickly(w, &data).await;
    let lb = first_block(&c, "/a/f", 3).await;
    assert!(
        lb.locations.iter().all(|l| l.id != t[2]),
        "{:?}",
        lb.locations
    );
    assert_eq!(
        sha(&read(&c, "/a/f", 0, data.len() as u64).await),
        sha(&data)
    );
    net.heal();

    // Replies from the head to the client are lost.
    let data = bytes(436, 2 * BS as usize);
    let w = half_written(&c, "/b/f", &data).await;
    let head = last_block_targets(&cl, "/b/f")[0].clone();
    net.cut_one_way(Sel::One(head.0.clone()), Sel::One("client".into()));
    finish_quickly(w, &data).await;
    let lb = first_block(&c, "/b/f", 3).await;
    assert!(
        lb.locations.iter().all(|l| l.id != head),
        "{:?}",
        lb.locations
    );
    assert_eq!(
        sha(&read(&c, "/b/f", 0, data.len() as u64).await),
        sha(&data)
    );
    net.heal();
    cl.shutdown().await;
}
