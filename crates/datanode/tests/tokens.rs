//! Block tokens on a keyed cluster at every hop of a write pipeline and on
//! leader-ordered copies, over real loopback sockets: the token travels
//! with the pipeline, binds it, and each receiving datanode checks it —
//! a key-holding upstream node included.

use tdfs_datanode::transfer::replicate;
use tdfs_proto::meta::{AccessMode, BlockToken, DatanodeAddr};
use tdfs_proto::{DatanodeId, FsError};
use tdfs_rpc::auth::wall_ms;
use tdfs_rpc::ClusterKey;
use tdfs_testkit::datanodes::*;
use tdfs_transfer::{read_block, WriteAck, CHUNK};

fn key() -> ClusterKey {
    ClusterKey::new(b"0123456789abcdef0123".to_vec()).unwrap()
}

async fn keyed_nodes(n: usize) -> Vec<Node> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(start_node(None, Some(key())).await);
    }
    v
}

fn ids(addrs: &[&DatanodeAddr]) -> Vec<DatanodeId> {
    addrs.iter().map(|a| a.id.clone()).collect()
}

/// A write token for block `id`/`gen` bound to `pipeline`, as the metadata
/// node mints one.
fn token(id: u64, gen: u64, pipeline: &[&DatanodeAddr]) -> BlockToken {
    key().write_token(id, gen, "alice", wall_ms() + 60_000, ids(pipeline))
}

/// The refusal a write met: an error of the write itself or of a node's
/// status in the acknowledgement.
fn refusal(r: Result<WriteAck, FsError>) -> String {
    match r {
        Err(e) => e.to_string(),
        Ok(ack) => match ack.statuses.iter().find_map(|s| s.result.clone().err()) {
            Some(e) => {
                assert!(
                    matches!(e, FsError::Unauthenticated(_)),
                    "refused as unauthenticated: {e:?}"
                );
                e.to_string()
            }
            None => panic!("the write was accepted: {ack:?}"),
        },
    }
}

fn assert_nothing_stored(nodes: &[&Node], id: u64) {
    for n in nodes {
        assert!(
            n.store.get(id).is_none(),
            "block {id} stored on {}",
            n.addr.id
        );
        assert_eq!(n.store.usage().pending, 0, "space left reserved");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_writes_the_whole_pipeline_and_reads_back() {
    let k = key();
    let nodes = keyed_nodes(3).await;
    let (a, b, c) = (&nodes[0].addr, &nodes[1].addr, &nodes[2].addr);
    let pipeline = vec![a.clone(), b.clone(), c.clone()];
    let data = pattern(2 * CHUNK + 7, 3);
    // A user without the key, and a key holder: both show the token.
    for (id, caller) in [(1, None), (2, Some(&k))] {
        let t = token(id, 1, &[a, b, c]);
        let ack = write_block_with_token(&pipeline, id, 1, &data, caller, Some(t))
            .await
            .unwrap();
        assert!(ack.statuses.iter().all(|s| s.result.is_ok()), "{ack:?}");
        assert_eq!(ack.statuses.len(), 3);
        for n in &nodes {
            assert_eq!(
                n.store.get(id).expect("stored everywhere").len,
                data.len() as u64
            );
        }
    }
    let mut out = Vec::new();
    read_block(&c.addr, Some(&k), 2, 1, 0, u64::MAX, &mut out)
        .await
        .unwrap();
    assert!(out == data);
    let wrong = ClusterKey::new(b"fedcba9876543210fedc".to_vec()).unwrap();
    let r = read_block(&b.addr, Some(&wrong), 2, 1, 0, 1, &mut out).await;
    assert!(matches!(r, Err(FsError::Unauthenticated(_))), "{r:?}");
}

/// A key-holding upstream (a datanode forwarding, as DN1 does to DN2) that
/// shows no token, a forged one, one for another pipeline or a read token is
/// refused by the second hop with a clear error, and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_hop_refuses_missing_forged_and_wrong_pipeline_tokens() {
    let k = key();
    let nodes = keyed_nodes(3).await;
    let (a, b, c) = (&nodes[0].addr, &nodes[1].addr, &nodes[2].addr);
    let data = pattern(CHUNK + 1, 5);
    let mut forged = token(10, 1, &[a, c]);
    forged.pipeline.insert(1, b.id.clone());
    let read = k.block_token(10, 1, AccessMode::Read, "alice", wall_ms() + 60_000);
    let cases: [(Option<BlockToken>, &str); 5] = [
        (None, "no token"),
        (Some(forged), "forged"),
        (
            Some(token(10, 1, &[a, c])),
            "does not include this datanode",
        ),
        (Some(token(10, 1, &[a, b])), "forwarding to"),
        (Some(read), "not Write"),
    ];
    for (t, want) in cases {
        // Into B, forwarding on to C where the last two cases apply.
        let pipeline = [b.clone(), c.clone()];
        let r = write_block_with_token(&pipeline, 10, 1, &data, Some(&k), t).await;
        let e = refusal(r);
        assert!(e.contains(want), "{want:?} in {e:?}");
        assert!(e.contains("block 10"), "{e}");
        assert_nothing_stored(&[&nodes[1], &nodes[2]], 10);
    }
    // The tail, directly: a token for [A, B] does not store on C.
    let r = write_block_with_token(
        std::slice::from_ref(c),
        10,
        1,
        &data,
        Some(&k),
        Some(token(10, 1, &[a, b])),
    )
    .await;
    assert!(refusal(r).contains("does not include this datanode"));
    assert_nothing_stored(&[&nodes[2]], 10);
}

/// A client with a token for `[A, B]` cannot make A forward the block to C.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_head_will_not_forward_outside_the_tokens_pipeline() {
    let nodes = keyed_nodes(3).await;
    let (a, b, c) = (&nodes[0].addr, &nodes[1].addr, &nodes[2].addr);
    let data = pattern(100, 6);
    let pipeline = [a.clone(), c.clone()];
    let r =
        write_block_with_token(&pipeline, 20, 1, &data, None, Some(token(20, 1, &[a, b]))).await;
    let e = refusal(r);
    assert!(
        e.contains(&format!("forwarding to {} is not allowed", c.id)),
        "{e}"
    );
    assert_nothing_stored(&[&nodes[0], &nodes[1], &nodes[2]], 20);
}

/// Leader-ordered copies carry the leader's token for their targets: without
/// it, or with one for other targets, the targets store nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_need_the_leaders_token_for_their_targets() {
    let nodes = keyed_nodes(3).await;
    let (a, b, c) = (&nodes[0].addr, &nodes[1].addr, &nodes[2].addr);
    let data = pattern(3 * CHUNK, 7);
    let ack = write_block_with_token(
        std::slice::from_ref(a),
        30,
        2,
        &data,
        None,
        Some(token(30, 2, &[a])),
    )
    .await;
    assert!(ack.unwrap().statuses[0].result.is_ok());
    let targets = [b.clone(), c.clone()];
    let src = &nodes[0].ctx;
    let e = refusal(replicate(src, &info(30, 2, 0), &targets, None).await);
    assert!(e.contains("no token"), "{e}");
    let e = refusal(replicate(src, &info(30, 2, 0), &targets, Some(token(30, 2, &[b]))).await);
    assert!(e.contains("forwarding to"), "{e}");
    let e = refusal(replicate(src, &info(30, 2, 0), &targets, Some(token(30, 1, &[b, c]))).await);
    assert!(e.contains("generation 1"), "{e}");
    assert_nothing_stored(&[&nodes[1], &nodes[2]], 30);
    let ack = replicate(src, &info(30, 2, 0), &targets, Some(token(30, 2, &[b, c])))
        .await
        .unwrap();
    assert!(ack.statuses.iter().all(|s| s.result.is_ok()), "{ack:?}");
    for n in &nodes[1..] {
        assert_eq!(n.store.get(30).expect("copied").sha256, sha(&data));
    }
}
