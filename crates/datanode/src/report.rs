//! Keeping the metadata nodes informed: one reporter per metadata node
//! (registration, the full report in pages, incremental reports), the fan
//! out of store changes to every reporter, and the long poll through which
//! the leader hands this node commands.

use crate::block_store::BlockStore;
use crate::commands::Exec;
use crate::node::{Change, DatanodeConfig};
use crate::transfer::{StoreEvent, TransferCtx};
use std::sync::Arc;
use std::time::Duration;
use tdfs_proto::event::EventKind;
use tdfs_proto::meta::{DatanodeRequest, DatanodeResponse, ReplicaReport, Request, Response};
use tdfs_proto::{BlockId, DatanodeId, FsError};
use tdfs_rpc::{EventBus, RpcClient, Shutdown};
use tokio::sync::{mpsc, Notify};

pub(crate) async fn fan_out(
    mut events: mpsc::UnboundedReceiver<StoreEvent>,
    mut changes: mpsc::UnboundedReceiver<Change>,
    outs: Vec<mpsc::UnboundedSender<Change>>,
    bus: Arc<EventBus>,
) {
    loop {
        let c = tokio::select! {
            e = events.recv() => match e {
                Some(StoreEvent::Finalized(r)) => Change::Added(r),
                Some(StoreEvent::Quarantined { id, gen }) => Change::Corrupt(id, gen),
                None => return,
            },
            c = changes.recv() => match c { Some(c) => c, None => return },
        };
        let datanode = DatanodeId(bus.node().to_string());
        bus.publish(match &c {
            Change::Added(r) => EventKind::ReplicaFinalized {
                datanode,
                block: r.id,
                gen: r.gen,
            },
            Change::Removed(b, gen) => EventKind::ReplicaDeleted {
                datanode,
                block: *b,
                gen: *gen,
            },
            Change::Corrupt(b, gen) => EventKind::ReplicaQuarantined {
                datanode,
                block: *b,
                gen: *gen,
            },
        });
        for o in &outs {
            let _ = o.send(c.clone());
        }
    }
}

type MetaConn = RpcClient<Request, Response>;

async fn call(
    conn: &MetaConn,
    req: DatanodeRequest,
    timeout: Duration,
) -> Result<DatanodeResponse, FsError> {
    match conn.call(Request::Datanode(req), timeout).await {
        Ok(Response::Datanode(r)) => Ok(r),
        Ok(other) => Err(FsError::Protocol(format!("unexpected reply {other:?}"))),
        Err(e) => Err(e.into_fs()),
    }
}

/// Replicas per full-report page: a page stays far below the frame limit
/// (about 70 bytes a replica), and the metadata node applies one under its
/// soft-state lock in a few milliseconds (`tdfs-policy`'s `idle_leader`
/// example: 50,000-replica pages held it 32 ms at the median, 89 ms at most).
pub const REPORT_PAGE: usize = 10_000;

/// Sends the full report in pages of increasing block ids.
async fn full_report(
    conn: &MetaConn,
    id: &DatanodeId,
    store: &BlockStore,
    page_len: usize,
) -> Result<DatanodeResponse, FsError> {
    let mut blocks = store.replicas();
    blocks.sort_unstable_by_key(|r| r.id);
    // Sorted by block; each page carries those in its range.
    let quarantined = store.quarantined();
    let mut lo: BlockId = 0;
    let report: u64 = rand::random();
    let pages: Vec<&[ReplicaReport]> = if blocks.is_empty() {
        vec![&[]]
    } else {
        blocks.chunks(page_len.max(1)).collect()
    };
    let n = pages.len();
    let mut last_reply = DatanodeResponse::Ok;
    for (i, page) in pages.into_iter().enumerate() {
        let last = i + 1 == n;
        let hi = if last {
            u64::MAX
        } else {
            page.last().map_or(0, |r| r.id)
        };
        let in_range: Vec<(BlockId, u64)> = quarantined
            .iter()
            .filter(|(b, _)| (lo..=hi).contains(b))
            .copied()
            .collect();
        lo = hi.saturating_add(1);
        last_reply = call(
            conn,
            DatanodeRequest::FullReport {
                id: id.clone(),
                usage: store.usage(),
                report,
                page: i as u32,
                hi,
                last,
                blocks: page.to_vec(),
                quarantined: in_range,
            },
            Duration::from_secs(30),
        )
        .await?;
        if last_reply == DatanodeResponse::Reregister {
            break;
        }
    }
    Ok(last_reply)
}

/// Keeps one metadata node informed: registration and a full report, then
/// incremental reports as replicas change; starts over whenever the node
/// asks (`Reregister`, here or on the poller's connection).
pub(crate) async fn reporter(
    addr: String,
    cfg: DatanodeConfig,
    ctx: Arc<TransferCtx>,
    mut changes: mpsc::UnboundedReceiver<Change>,
    resync: Arc<Notify>,
    mut shutdown: Shutdown,
) {
    let store = ctx.store.clone();
    let id = store.datanode_id().clone();
    let retry = Duration::from_millis(300);
    loop {
        if shutdown.is_shutdown() {
            return;
        }
        let conn = match MetaConn::connect_via(
            &cfg.connector,
            &addr,
            cfg.key.as_ref(),
            Duration::from_secs(2),
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("metadata node {addr} unreachable: {e}");
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(retry) => continue,
                }
            }
        };
        // Register and send everything; changes queued before the snapshot
        // of the inventory are covered by it.
        while changes.try_recv().is_ok() {}
        let registered = async {
            let reg = DatanodeRequest::Register {
                id: id.clone(),
                addr: cfg.addr.clone(),
                http: cfg.http.clone(),
                hdfs: cfg.hdfs.clone(),
            };
            call(&conn, reg, Duration::from_secs(10)).await?;
            full_report(&conn, &id, &store, cfg.report_page).await
        }
        .await;
        match registered {
            Ok(DatanodeResponse::Reregister) => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("registration with {addr} failed: {e}");
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(retry) => continue,
                }
            }
        }
        tracing::info!("registered with metadata node {addr}");
        loop {
            let req = tokio::select! {
                _ = shutdown.wait() => return,
                _ = resync.notified() => break,
                c = changes.recv() => {
                    let Some(c) = c else { return };
                    let mut batch = vec![c];
                    while let Ok(c) = changes.try_recv() {
                        batch.push(c);
                    }
                    incremental(&id, batch)
                }
            };
            match call(&conn, req, Duration::from_secs(10)).await {
                Ok(DatanodeResponse::Reregister) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!("report to {addr} failed: {e}");
                    break;
                }
            }
        }
    }
}

fn incremental(id: &DatanodeId, batch: Vec<Change>) -> DatanodeRequest {
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut corrupt = Vec::new();
    for c in batch {
        match c {
            Change::Added(r) => added.push(r),
            Change::Removed(b, g) => removed.push((b, g)),
            Change::Corrupt(b, g) => corrupt.push((b, g)),
        }
    }
    DatanodeRequest::IncrementalReport {
        id: id.clone(),
        added,
        removed,
        corrupt,
    }
}

/// Holds one long poll at a metadata node for the leader's commands; asks
/// the reporter to start over when the node wants a fresh registration.
pub(crate) async fn poller(
    addr: String,
    cfg: DatanodeConfig,
    exec: Arc<Exec>,
    resync: Arc<Notify>,
    mut shutdown: Shutdown,
) {
    let id = exec.ctx.store.datanode_id().clone();
    let wait_ms = cfg.poll_wait.as_millis().min(u32::MAX as u128) as u32;
    let mut conn: Option<MetaConn> = None;
    loop {
        if shutdown.is_shutdown() {
            return;
        }
        let c = match conn.as_ref().filter(|c| !c.is_closed()) {
            Some(c) => c.clone(),
            None => match MetaConn::connect_via(
                &cfg.connector,
                &addr,
                cfg.key.as_ref(),
                Duration::from_secs(2),
            )
            .await
            {
                Ok(c) => {
                    conn = Some(c.clone());
                    c
                }
                Err(_) => {
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    }
                }
            },
        };
        let req = DatanodeRequest::Poll {
            id: id.clone(),
            usage: exec.ctx.store.usage(),
            wait_ms,
        };
        let r = tokio::select! {
            _ = shutdown.wait() => return,
            r = call(&c, req, cfg.poll_wait + Duration::from_secs(10)) => r,
        };
        match r {
            Ok(DatanodeResponse::Commands { term, commands }) => exec.admit(term, commands).await,
            Ok(DatanodeResponse::Reregister) => {
                resync.notify_one();
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
            Ok(DatanodeResponse::Ok) => {}
            Err(e) => {
                tracing::debug!("poll of {addr} failed: {e}");
                conn = None;
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}
