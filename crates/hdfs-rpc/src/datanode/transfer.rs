//! TRANSFER_BLOCK: a client asks this datanode to copy its finalized
//! replica to other datanodes (as Hadoop's client does when it adds a node
//! to a pipeline). The copy is a WRITE_BLOCK in stage `TRANSFER_FINALIZED`
//! to the first target (which forwards it to the rest), answered once.

use super::read::{open, send_packets, BYTES_PER_CHECKSUM};
use super::wire::{read_message, send, send_message};
use super::write::xfer_addr;
use super::{error_response, ReplicaSource, Server, IO_TIMEOUT};
use crate::dtp::{self, op_response};
use crate::proto::hdfs::op_write_block_proto::BlockConstructionStage as Stage;
use crate::proto::hdfs::{
    BlockOpResponseProto, ChecksumProto, ChecksumTypeProto, OpTransferBlockProto,
    OpWriteBlockProto, Status,
};
use std::sync::Arc;
use std::time::Duration;
use tdfs_proto::meta::AccessMode;
use tdfs_proto::FsError;
use tokio::io::{AsyncWrite, BufReader};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn transfer_block<W: AsyncWrite + Unpin>(
    server: &Server,
    w: &mut W,
    op: OpTransferBlockProto,
) -> Result<bool, FsError> {
    let h = &op.header.base_header;
    let (id, gen) = (h.block.block_id, h.block.generation_stamp);
    let token = h.token.as_ref();
    let checked = server
        .check_token(token, id, &[gen], AccessMode::Write)
        .or_else(|_| server.check_token(token, id, &[gen], AccessMode::Read));
    let done = match checked {
        Ok(()) if op.targets.is_empty() => Err(FsError::InvalidArgument(format!(
            "block {id}: a transfer needs at least one target"
        ))),
        Ok(()) => match open(server, id, gen).await {
            Ok(src) => push(server, &src, &op).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let resp = match &done {
        Ok(()) => op_response(Status::Success, None),
        Err(e) => {
            tracing::info!("hdfs transfer of block {id} gen {gen} failed: {e}");
            error_response(e)
        }
    };
    send_message(w, &resp, IO_TIMEOUT).await?;
    Ok(done.is_ok())
}

/// Sends the whole replica to `op.targets` (through the server's
/// connector) and reads their answer.
async fn push(
    server: &Server,
    src: &Arc<dyn ReplicaSource>,
    op: &OpTransferBlockProto,
) -> Result<(), FsError> {
    let addr = xfer_addr(&op.targets[0]);
    let s = server
        .cfg
        .connector
        .connect_stream(&addr, CONNECT_TIMEOUT)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::TimedOut => FsError::Timeout(CONNECT_TIMEOUT.as_millis() as u64),
            _ => FsError::Io(format!("cannot reach {addr}: {e}")),
        })?;
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    let len = src.len();
    let mut header = op.header.clone();
    header.base_header.block.num_bytes = Some(len);
    let sum = ChecksumProto {
        r#type: ChecksumTypeProto::ChecksumCrc32c as i32,
        bytes_per_checksum: BYTES_PER_CHECKSUM,
    };
    let write = OpWriteBlockProto {
        header,
        targets: op.targets[1..].to_vec(),
        stage: Stage::TransferFinalized as i32,
        pipeline_size: op.targets.len() as u32,
        min_bytes_rcvd: len,
        max_bytes_rcvd: len,
        latest_generation_stamp: op.header.base_header.block.generation_stamp,
        requested_checksum: sum,
        storage_type: op.target_storage_types.first().copied(),
        target_storage_types: op.target_storage_types.iter().skip(1).copied().collect(),
        ..Default::default()
    };
    let req = dtp::encode_op(&dtp::OpRequest::WriteBlock(Box::new(write)));
    send(&mut w, &req, IO_TIMEOUT).await?;
    send_packets(src, &mut w, &sum, 0, len).await?;
    let a: BlockOpResponseProto = read_message(&mut r, IO_TIMEOUT, "transfer answer").await?;
    if a.status == Status::Success as i32 {
        Ok(())
    } else {
        Err(FsError::Io(format!(
            "{addr} refused the transfer: {}",
            a.message.unwrap_or_default()
        )))
    }
}
