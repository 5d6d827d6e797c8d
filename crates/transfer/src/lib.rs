//! The block data-transfer protocol, spoken by clients and datanodes and by
//! datanodes among themselves: a connection opened with `Channel::Stream`
//! carries one operation. Control messages are ordinary frames
//! (length-prefixed bincode, capped at [`MAX_CONTROL_FRAME`]); block bytes
//! travel as raw packets, never as one giant bincode value.
//!
//! ```text
//! write:  C -> D1  frame(Op::Write{block, downstream})       D1 -> D2 -> D3 likewise
//!         C -> D1  packet* ; packet with len 0 ends the data
//!         C -> D1  frame(Finish{len, sha256})
//!         D1 -> C  frame(WriteAck{statuses})   one status per pipeline node, in order
//! read:   C -> D   frame(Op::Read{block, gen, offset, len})
//!         D -> C   frame(ReadReply{..})  then packets covering [offset, offset+len), then a 0-length packet
//! sum:    C -> D   frame(Op::BlockChecksum{block, gen})
//!         D -> C   frame(ChecksumReply{..})
//! ```
//!
//! On a connection where both ends proved the cluster key, every control
//! frame carries a MAC trailer (see `tdfs_rpc::session`); packets do not:
//! a write's data is authenticated by the SHA-256 in its MACed `Finish`,
//! which every datanode checks before finalizing. A caller without the key
//! shows a block token instead.
//!
//! A packet is `[u32 len][u32 crc32c(data)][data]`, `len <= MAX_PACKET`.
//! Writes send packets of exactly [`CHUNK`] bytes (the last may be shorter),
//! and datanodes keep each chunk's CRC32C beside the block, so a read
//! serves every chunk with the checksum computed when it was written: the
//! reader detects corruption on disk as well as on the wire.
//!
//! This crate holds what both ends share: the wire types ([`wire`]), the
//! framing with its deadlines ([`frame`]), the sending side of a write
//! ([`BlockWriter`]) and the receiving side of a read ([`read_block`]). The
//! datanode's server side (receiving, forwarding, serving, copying) lives in
//! `tdfs-datanode`. Every network read and write has a deadline.

pub mod frame;
pub mod reader;
pub mod wire;
pub mod writer;

pub use frame::{
    connect, connect_session, packet_header, parse_packet_header, read_control, read_control_mac,
    read_packet_header, timed, timed_io, write_control, write_control_mac, CONNECT_TIMEOUT,
    IO_TIMEOUT,
};
pub use reader::{block_checksum, read_block, read_block_with_token};
pub use wire::{
    BlockChecksum, ChecksumReply, Finish, NodeStatus, Op, ReadReply, WriteAck, CHUNK,
    MAX_CONTROL_FRAME, MAX_PACKET, PACKET_HEADER,
};
pub use writer::{first_error, BlockWriter, ACK_TIMEOUT_PER_NODE, SEND_TIMEOUT_PER_NODE};
