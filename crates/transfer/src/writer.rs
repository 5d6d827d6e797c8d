//! [`BlockWriter`]: sends one block down a pipeline of datanodes and
//! collects the pipeline's acknowledgement. Clients write blocks with it;
//! datanodes forward a block downstream and copy replicas with it.

use crate::frame::{connect_session, read_control_mac, timed_io, IO_TIMEOUT};
use crate::packet_header;
use crate::wire::{Finish, Op, WriteAck, CHUNK};
use std::io;
use std::time::Duration;
use tdfs_proto::codec::encode_frame;
use tdfs_proto::meta::{BlockInfo, BlockToken, DatanodeAddr};
use tdfs_proto::{DatanodeId, FsError};
use tdfs_rpc::session::seal;
use tdfs_rpc::{ClusterKey, Connector, LinkReadHalf, LinkWriteHalf, SessionKeys};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};

/// A [`BlockWriter`] waits this long per pipeline node for a send to go
/// through. A node further down has fewer nodes after it and so a shorter
/// timeout than the writer upstream of it: a stuck node is given up by its
/// upstream neighbour before the writers above time out in turn.
pub const SEND_TIMEOUT_PER_NODE: Duration = Duration::from_secs(10);
/// Likewise for the acknowledgement, which waits for every node of the
/// pipeline to finalize (fsync) the block.
pub const ACK_TIMEOUT_PER_NODE: Duration = Duration::from_secs(40);
/// Send buffer of a [`BlockWriter`].
const WRITE_BUF: usize = 1 << 20;

/// The first failure in an acknowledgement.
pub fn first_error(ack: &WriteAck) -> Option<FsError> {
    ack.statuses.iter().find_map(|s| s.result.clone().err())
}

/// Sends one block down a pipeline of datanodes: `open`, `send_chunk` for
/// every [`CHUNK`] of data (the last may be shorter), then `finish`.
///
/// When `send_chunk` fails, stop sending and call `finish`: it returns the
/// pipeline's acknowledgement if the head node answered (for instance with
/// `NoSpace` for itself), or the connection error.
pub struct BlockWriter {
    /// The block being written (its `len` was reserved on every node).
    block: BlockInfo,
    /// The pipeline's first node, named in errors.
    head: DatanodeId,
    /// Its address, named in errors.
    addr: String,
    /// Where acknowledgements arrive (also early ones, from a failed head).
    rd: LinkReadHalf,
    /// Where packets go, buffered so that many leave per system call.
    wr: BufWriter<LinkWriteHalf>,
    /// Bytes sent so far.
    sent: u64,
    /// A short chunk was sent: it must have been the last.
    last_short: bool,
    /// The first send failure; later sends return it at once.
    failed: Option<FsError>,
    /// An acknowledgement received before `finish` (the head gave up).
    early: Option<WriteAck>,
    /// Deadline of one send, scaled by the pipeline's length.
    send_timeout: Duration,
    /// Deadline of the acknowledgement, scaled likewise.
    ack_timeout: Duration,
    /// Frame keys of a key-proved connection.
    keys: Option<SessionKeys>,
}

impl std::fmt::Debug for BlockWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockWriter")
            .field("block", &self.block.id)
            .field("head", &self.head)
            .field("addr", &self.addr)
            .field("sent", &self.sent)
            .finish()
    }
}

impl BlockWriter {
    /// Connects to `pipeline[0]` and asks it to receive `block` (its `len` is
    /// the expected length, reserved on every node) and forward it to the
    /// rest of the pipeline. Connects directly (tests and tools; clients
    /// and datanodes use [`open_with_token`](Self::open_with_token) with
    /// their connector).
    pub async fn open(
        pipeline: &[DatanodeAddr],
        block: BlockInfo,
        key: Option<&ClusterKey>,
    ) -> Result<BlockWriter, FsError> {
        Self::open_with_token(&Connector::direct(), pipeline, block, key, None).await
    }

    /// Like [`open`](Self::open) through `connector`, showing the head
    /// `token` (needed by a writer without the cluster key on a keyed
    /// cluster).
    pub async fn open_with_token(
        connector: &Connector,
        pipeline: &[DatanodeAddr],
        block: BlockInfo,
        key: Option<&ClusterKey>,
        token: Option<BlockToken>,
    ) -> Result<BlockWriter, FsError> {
        let Some(head) = pipeline.first() else {
            return Err(FsError::InvalidArgument("empty write pipeline".into()));
        };
        let (stream, mut keys) = connect_session(connector, &head.addr, key).await?;
        let (rd, wr) = stream.into_split();
        let mut wr = BufWriter::with_capacity(WRITE_BUF, wr);
        let op = Op::Write {
            block: block.clone(),
            downstream: pipeline[1..].to_vec(),
            token,
        };
        let mut frame = encode_frame(&op)?;
        seal(keys.as_mut().map(|k| &mut k.send), &mut frame)?;
        timed_io(
            SEND_TIMEOUT_PER_NODE * pipeline.len() as u32,
            wr.write_all(&frame),
        )
        .await?;
        // Let the head open its replica and its downstream connection while
        // the first chunk is being prepared.
        timed_io(IO_TIMEOUT, wr.flush()).await?;
        Ok(BlockWriter {
            block,
            head: head.id.clone(),
            addr: head.addr.clone(),
            rd,
            wr,
            sent: 0,
            last_short: false,
            failed: None,
            early: None,
            send_timeout: SEND_TIMEOUT_PER_NODE * pipeline.len() as u32,
            ack_timeout: ACK_TIMEOUT_PER_NODE * pipeline.len() as u32,
            keys,
        })
    }

    /// The block being written.
    pub fn block(&self) -> &BlockInfo {
        &self.block
    }

    /// The pipeline's first node.
    pub fn head(&self) -> &DatanodeId {
        &self.head
    }

    /// Bytes sent so far.
    pub fn bytes_sent(&self) -> u64 {
        self.sent
    }

    /// The acknowledgement the head sent before the end of the block, if it
    /// did (it failed).
    pub fn early_ack(&self) -> Option<&WriteAck> {
        self.early.as_ref()
    }

    /// Sends one chunk of 1..=[`CHUNK`] bytes; only the last may be shorter.
    pub async fn send_chunk(&mut self, data: &[u8]) -> Result<(), FsError> {
        let crc = crc32c::crc32c(data);
        self.send_chunk_with_crc(data, crc).await
    }

    /// Like [`send_chunk`](Self::send_chunk) with the chunk's CRC32C already
    /// known (a datanode forwarding a verified packet).
    pub async fn send_chunk_with_crc(&mut self, data: &[u8], crc: u32) -> Result<(), FsError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if data.is_empty() || data.len() > CHUNK {
            return Err(FsError::InvalidArgument(format!(
                "chunk of {} bytes (1..={CHUNK} allowed)",
                data.len()
            )));
        }
        if self.last_short {
            return Err(FsError::InvalidArgument(
                "only the last chunk of a block may be shorter than CHUNK".into(),
            ));
        }
        self.check_early().await?;
        let hdr = packet_header(data.len(), crc);
        let wr = &mut self.wr;
        let r = timed_io(self.send_timeout, async {
            wr.write_all(&hdr).await?;
            wr.write_all(data).await
        })
        .await;
        if let Err(e) = r {
            return Err(self.fail(e).await);
        }
        self.sent += data.len() as u64;
        self.last_short = data.len() < CHUNK;
        Ok(())
    }

    /// Notices an acknowledgement sent before the end of the block (the head
    /// failed) without waiting.
    async fn check_early(&mut self) -> Result<(), FsError> {
        let mut first = [0u8; 1];
        match self.rd.try_read(&mut first) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Ok(0) => {
                let e = FsError::Io(format!(
                    "datanode {} at {} closed the connection",
                    self.head, self.addr
                ));
                self.failed = Some(e.clone());
                Err(e)
            }
            Ok(_) => {
                let mut r = (&first[..]).chain(&mut self.rd);
                let mac = self.keys.as_mut().map(|k| &mut k.recv);
                let e = match read_control_mac::<_, WriteAck>(&mut r, IO_TIMEOUT, mac).await {
                    Ok(ack) => {
                        let e = first_error(&ack).unwrap_or_else(|| {
                            FsError::Protocol("datanode acknowledged before the end".into())
                        });
                        self.early = Some(ack);
                        e
                    }
                    Err(e) => e,
                };
                self.failed = Some(e.clone());
                Err(e)
            }
            Err(e) => {
                let e = FsError::from(e);
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Records a failed send; the head may have answered before closing,
    /// and its reason is better than a broken pipe.
    async fn fail(&mut self, e: FsError) -> FsError {
        let mac = self.keys.as_mut().map(|k| &mut k.recv);
        let e = match read_control_mac::<_, WriteAck>(&mut self.rd, Duration::from_secs(2), mac)
            .await
        {
            Ok(ack) => {
                let why = first_error(&ack).unwrap_or(e);
                self.early = Some(ack);
                why
            }
            Err(_) => e,
        };
        self.failed = Some(e.clone());
        e
    }

    /// Ends the block and waits for the pipeline's acknowledgement: one
    /// status per node that was reached, in pipeline order.
    pub async fn finish(mut self, fin: Finish) -> Result<WriteAck, FsError> {
        if let Some(ack) = self.early.take() {
            return Ok(ack);
        }
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let mut frame = encode_frame(&fin)?;
        seal(self.keys.as_mut().map(|k| &mut k.send), &mut frame)?;
        let wr = &mut self.wr;
        let r = timed_io(self.send_timeout, async {
            wr.write_all(&packet_header(0, 0)).await?;
            wr.write_all(&frame).await?;
            wr.flush().await
        })
        .await;
        if let Err(e) = r {
            let e = self.fail(e).await;
            return self.early.take().ok_or(e);
        }
        let mac = self.keys.as_mut().map(|k| &mut k.recv);
        let ack: WriteAck = read_control_mac(&mut self.rd, self.ack_timeout, mac).await?;
        if ack.statuses.is_empty() {
            return Err(FsError::Protocol(format!(
                "datanode {} sent an empty acknowledgement",
                self.head
            )));
        }
        Ok(ack)
    }
}
