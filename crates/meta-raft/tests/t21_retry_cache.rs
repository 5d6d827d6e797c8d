//! The replicated retry cache: a mutation resent with the same call id is
//! answered with the first attempt's result instead of being applied again,
//! also by a new leader after the old one died.

use std::time::Duration;
use tdfs_proto::ids::CallId;
use tdfs_proto::meta::{MetaRequest, MetaResponse};
use tdfs_proto::FsError;
use tdfs_rpc::RpcError;
use tdfs_testkit::cluster::*;

const T: Duration = Duration::from_secs(5);

fn rename(src: &str, dst: &str) -> MetaRequest {
    MetaRequest::Rename {
        src: src.into(),
        dst: dst.into(),
        into_dir: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_call_id_gets_the_first_answer() {
    let cluster = Cluster::start(1).await;
    let leader = cluster.wait_leader(&[1], Duration::from_secs(10)).await;
    let c = cluster.client(leader).await;
    let x = client_id();
    let id = |seq| Some(CallId { client: x, seq });

    let r = meta(&c, id(1), mkdirs("/r", true), T).await;
    assert_eq!(r.unwrap(), MetaResponse::Bool(true));

    // mkdir without parents: the retry is answered from the cache, not
    // re-applied (which would be AlreadyExists).
    let first = meta(&c, id(2), mkdirs("/r/a", false), T).await.unwrap();
    assert_eq!(first, MetaResponse::Bool(true));
    for _ in 0..3 {
        let again = meta(&c, id(2), mkdirs("/r/a", false), T).await.unwrap();
        assert_eq!(again, first);
    }
    // The same operation under a fresh call id is applied, and fails.
    let fresh = meta(&c, id(3), mkdirs("/r/a", false), T).await;
    assert!(
        matches!(fresh, Err(RpcError::Remote(FsError::AlreadyExists(_)))),
        "{fresh:?}"
    );
    // Another client's call with the same sequence number is its own call.
    let other = CallId {
        client: x.wrapping_add(1),
        seq: 2,
    };
    let r = meta(&c, Some(other), mkdirs("/r/a", false), T).await;
    assert!(
        matches!(r, Err(RpcError::Remote(FsError::AlreadyExists(_)))),
        "{r:?}"
    );

    // Rename: re-applying would fail with FileNotFound (the source is gone).
    let first = meta(&c, id(4), rename("/r/a", "/r/b"), T).await.unwrap();
    assert_eq!(first, MetaResponse::Bool(true));
    let again = meta(&c, id(4), rename("/r/a", "/r/b"), T).await.unwrap();
    assert_eq!(again, first);
    let fresh = meta(&c, id(5), rename("/r/a", "/r/b"), T).await;
    assert!(
        matches!(fresh, Err(RpcError::Remote(FsError::FileNotFound(_)))),
        "{fresh:?}"
    );
    let node = cluster.node(leader);
    assert!(!exists(node, "/r/a"));
    assert!(has_dir(node, "/r/b"));

    // Errors are cached too: the retry of a failed call gets the same
    // failure even after the state changed so that it would now succeed.
    let failed = meta(&c, id(6), mkdirs("/r/b", false), T).await;
    assert!(
        matches!(failed, Err(RpcError::Remote(FsError::AlreadyExists(_)))),
        "{failed:?}"
    );
    let del = MetaRequest::Delete {
        path: "/r/b".into(),
        recursive: false,
    };
    assert_eq!(
        meta(&c, id(7), del, T).await.unwrap(),
        MetaResponse::Bool(true)
    );
    let again = meta(&c, id(6), mkdirs("/r/b", false), T).await;
    assert_eq!(
        again.map_err(RpcError::into_fs),
        failed.map_err(RpcError::into_fs)
    );
    assert!(!exists(node, "/r/b"), "a cached failure was re-applied");

    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_failover_is_answered_by_the_new_leader() {
    let mut cluster = Cluster::start(3).await;
    let all = cluster.live();
    let old = cluster.wait_leader(&all, Duration::from_secs(10)).await;
    let x = client_id();
    let id = |seq| Some(CallId { client: x, seq });

    let c = cluster.client(old).await;
    assert_eq!(
        meta(&c, id(1), mkdirs("/f", true), T).await.unwrap(),
        MetaResponse::Bool(true)
    );
    let mkdir_reply = meta(&c, id(2), mkdirs("/f/a", false), T).await.unwrap();
    assert_eq!(mkdir_reply, MetaResponse::Bool(true));
    let rename_reply = meta(&c, id(3), rename("/f/a", "/f/b"), T).await.unwrap();
    assert_eq!(rename_reply, MetaResponse::Bool(true));
    drop(c);

    // The leader dies right after answering.
    cluster.stop(old).await;
    let rest = cluster.live();
    let new = cluster.wait_leader(&rest, Duration::from_secs(10)).await;
    // Ready: it has taken office (its log clock's base is set).
    wait_until(T, "the new leader to be ready", || {
        cluster.node(new).leader_ready()
    })
    .await;
    assert_ne!(new, old);

    // The client, not having seen the replies, retries with the same call
    // ids on the new leader: same answers, nothing applied twice.
    let again = cluster
        .write(&rest, id(2).unwrap(), mkdirs("/f/a", false), T)
        .await;
    assert_eq!(again, Ok(mkdir_reply));
    let again = cluster
        .write(&rest, id(3).unwrap(), rename("/f/a", "/f/b"), T)
        .await;
    assert_eq!(again, Ok(rename_reply));
    let node = cluster.node(new);
    assert!(!exists(node, "/f/a"), "the mkdir was applied a second time");
    assert!(has_dir(node, "/f/b"));

    // Fresh call ids are applied and fail as they should.
    let fresh = cluster
        .write(
            &rest,
            CallId { client: x, seq: 4 },
            mkdirs("/f/b", false),
            T,
        )
        .await;
    assert!(matches!(fresh, Err(FsError::AlreadyExists(_))), "{fresh:?}");
    let fresh = cluster
        .write(
            &rest,
            CallId { client: x, seq: 5 },
            rename("/f/a", "/f/b"),
            T,
        )
        .await;
    assert!(matches!(fresh, Err(FsError::FileNotFound(_))), "{fresh:?}");

    // The old leader comes back with the same cache and the same answers.
    cluster.restart(old).await;
    let all = cluster.live();
    let leader = cluster.wait_leader(&all, Duration::from_secs(10)).await;
    let r = cluster
        .write(&all, CallId { client: x, seq: 6 }, mkdirs("/f/c", false), T)
        .await;
    assert_eq!(r, Ok(MetaResponse::Bool(true)));
    wait_until(T, "the restarted node to catch up", || {
        has_dir(cluster.node(old), "/f/c")
    })
    .await;
    let cached = |id: u64, seq: u64| {
        cluster
            .node(id)
            .inspect(|ns, _| ns.retry_result(CallId { client: x, seq }))
    };
    for seq in 1..=6 {
        let on_leader = cached(leader, seq);
        assert!(
            on_leader.is_some(),
            "call {seq} is not cached on the leader"
        );
        assert_eq!(
            cached(old, seq),
            on_leader,
            "retry cache entry {seq} differs"
        );
    }

    cluster.shutdown().await;
}

/// Issue 11, item 4: a retry is answered from the cache across a forward
/// step of the leader's wall clock (past the 15-minute client expiry) and
/// a failover to nodes whose wall clocks are 30 minutes behind. Expiry runs
/// on the log tick, which only the leaders' monotonic clocks advance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_clock_step_does_not_expire_the_retry_cache() {
    const MIN: i64 = 60_000;
    let mut cluster = Cluster::start(3).await;
    println!("seed {}", cluster.seed);
    let all = cluster.live();
    let old = cluster.wait_leader(&all, Duration::from_secs(10)).await;
    let (x, y) = (client_id(), client_id().wrapping_add(1));
    let call = |client, seq| CallId { client, seq };
    cluster.mkdir(&all, call(x, 1), "/w").await;
    // Applied; its reply is taken as lost.
    let first = cluster
        .write(&all, call(x, 2), mkdirs("/w/a", false), T)
        .await;
    assert_eq!(first, Ok(MetaResponse::Bool(true)));
    let tick_at_call = cluster.node(old).inspect(|ns, _| ns.tick());

    // The leader's wall clock steps 30 minutes forward; another client's
    // call is stamped with it (the old log clock took the step and swept).
    cluster.node(old).clock().set_wall_offset_ms(30 * MIN);
    cluster.mkdir(&all, call(y, 1), "/y1").await;

    // Leadership moves to a node whose wall clock is 30 minutes behind.
    let rest: Vec<u64> = all.iter().copied().filter(|i| *i != old).collect();
    for id in &rest {
        cluster.node(*id).clock().set_wall_offset_ms(-30 * MIN);
    }
    cluster.stop(old).await;
    let new = cluster.wait_leader(&rest, Duration::from_secs(10)).await;
    // Ready: it has taken office (its log clock's base is set).
    wait_until(T, "the new leader to be ready", || {
        cluster.node(new).leader_ready()
    })
    .await;
    // Its monotonic clock then runs two minutes (a jump of the seam), so
    // the log tick passes a sweep (every 60 s of log time) before the retry.
    cluster.node(new).clock().set_offset_ms(2 * MIN);
    cluster.mkdir(&rest, call(y, 2), "/y2").await;
    let tick = cluster.node(new).inspect(|ns, _| ns.tick());
    assert!(
        tick >= tick_at_call + 2 * MIN as u64 && tick < tick_at_call + 15 * MIN as u64,
        "log tick {tick}, {tick_at_call} at the call"
    );
    cluster.mkdir(&rest, call(y, 3), "/y3").await;

    // The retry: the first answer, not a second application.
    let again = cluster
        .write(&rest, call(x, 2), mkdirs("/w/a", false), T)
        .await;
    assert_eq!(again, first, "the retried mkdir was applied a second time");
    let fresh = cluster
        .write(&rest, call(x, 3), mkdirs("/w/a", false), T)
        .await;
    assert!(matches!(fresh, Err(FsError::AlreadyExists(_))), "{fresh:?}");
    cluster.shutdown().await;
}
