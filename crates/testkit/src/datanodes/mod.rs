//! In-process datanodes on loopback sockets for the transfer tests, stores
//! on in-memory disks ([`store`]) and a fake metadata node ([`meta`]).

pub mod meta;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use tdfs_datanode::block_store::{BlockStore, StoreConfig};
use tdfs_datanode::transfer::{handle_stream, StoreEvent, TransferCtx};
use tdfs_proto::meta::{BlockInfo, BlockToken, DatanodeAddr};
use tdfs_proto::FsError;
use tdfs_rpc::{serve, ClusterKey, Handler, Peer, ServerConfig, Shutdown};
use tdfs_transfer::{Finish, WriteAck, CHUNK};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

struct TestHandler(Arc<TransferCtx>);

impl Handler<(), ()> for TestHandler {
    async fn handle(&self, _peer: &Peer, _req: ()) -> Result<(), FsError> {
        Err(FsError::Unsupported(
            "test datanode serves streams only".into(),
        ))
    }

    async fn stream(&self, peer: Peer, stream: TcpStream) {
        handle_stream(self.0.clone(), peer, stream).await
    }
}

/// One datanode: a store in a temporary directory behind a real server.
pub struct Node {
    pub addr: DatanodeAddr,
    pub store: Arc<BlockStore>,
    pub ctx: Arc<TransferCtx>,
    pub events: mpsc::UnboundedReceiver<StoreEvent>,
    pub dir: tempfile::TempDir,
    _stop: watch::Sender<bool>,
}

impl Node {
    pub fn data_path(&self, id: u64, gen: u64) -> PathBuf {
        self.dir
            .path()
            .join("current")
            .join(format!("blk_{id}_{gen}.data"))
    }
}

pub async fn start_node(capacity: Option<u64>, key: Option<ClusterKey>) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.capacity = capacity;
    // TDFS_TEST_FSYNC=0 turns fsync off (to measure its share by hand).
    cfg.fsync = std::env::var("TDFS_TEST_FSYNC").map_or(true, |v| v != "0");
    let store = BlockStore::open(cfg).unwrap();
    let (tx, events) = mpsc::unbounded_channel();
    let ctx = Arc::new(TransferCtx {
        store: store.clone(),
        key: key.clone(),
        connector: tdfs_rpc::Connector::direct(),
        events: tx,
        clock: tdfs_rpc::Clock::real(),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, shutdown) = Shutdown::new();
    let config = ServerConfig {
        key,
        ..ServerConfig::default()
    };
    tokio::spawn(serve::<(), (), _>(
        listener,
        Arc::new(TestHandler(ctx.clone())),
        config,
        shutdown,
    ));
    Node {
        addr: DatanodeAddr {
            id: store.datanode_id().clone(),
            addr,
            http: None,
        },
        store,
        ctx,
        events,
        dir,
        _stop: stop,
    }
}

pub async fn start_nodes(n: usize) -> Vec<Node> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(start_node(None, None).await);
    }
    v
}

/// Deterministic test bytes (`crate::data`).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    crate::data::bytes(seed, len)
}

pub use crate::data::sha;

pub fn info(id: u64, gen: u64, len: u64) -> BlockInfo {
    BlockInfo {
        id,
        gen,
        len,
        sha256: None,
    }
}

/// Writes `data` as block `id`/`gen` down `pipeline`; returns the ack.
pub async fn write_block(
    pipeline: &[DatanodeAddr],
    id: u64,
    gen: u64,
    data: &[u8],
    key: Option<&ClusterKey>,
) -> Result<WriteAck, FsError> {
    write_block_with_token(pipeline, id, gen, data, key, None).await
}

/// [`write_block`] showing the head `token`.
pub async fn write_block_with_token(
    pipeline: &[DatanodeAddr],
    id: u64,
    gen: u64,
    data: &[u8],
    key: Option<&ClusterKey>,
    token: Option<BlockToken>,
) -> Result<WriteAck, FsError> {
    let block = info(id, gen, data.len() as u64);
    let mut w = tdfs_transfer::BlockWriter::open_with_token(
        &tdfs_rpc::Connector::direct(),
        pipeline,
        block,
        key,
        token,
    )
    .await?;
    for c in data.chunks(CHUNK) {
        if w.send_chunk(c).await.is_err() {
            break;
        }
    }
    w.finish(Finish {
        len: data.len() as u64,
        sha256: sha(data),
    })
    .await
}

/// Reads `[offset, offset+len)` of a block from one node.
pub async fn read(
    node: &DatanodeAddr,
    id: u64,
    gen: u64,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>, FsError> {
    let mut out = Vec::new();
    let n = tdfs_transfer::read_block(&node.addr, None, id, gen, offset, len, &mut out).await?;
    assert_eq!(n as usize, out.len());
    Ok(out)
}
