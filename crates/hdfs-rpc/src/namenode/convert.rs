//! tdfs's namespace types in HDFS's shapes (as `PBHelperClient` builds and
//! reads them on the Java side).

use crate::proto::hdfs::datanode_info_proto::AdminState;
use crate::proto::hdfs::hdfs_file_status_proto::FileType;
use crate::proto::hdfs::{
    DatanodeIdProto, DatanodeInfoProto, ExtendedBlockProto, FsPermissionProto, HdfsFileStatusProto,
    LocatedBlockProto, LocatedBlocksProto, StorageTypeProto,
};
use std::collections::HashMap;
use tdfs_proto::meta::{
    BlockInfo, DatanodeAddr, DatanodeReport, FileStatus, LocatedBlock, LocatedBlocks,
};

/// The block pool id every block carries: one namespace, one pool.
pub const POOL_ID: &str = "BP-tdfs";

/// What Hadoop needs to know of a datanode beyond a block's location: its
/// DataTransferProtocol address and usage, from the leader's report.
#[derive(Clone, Debug, Default)]
pub struct DatanodeDirectory {
    by_id: HashMap<String, DatanodeReport>,
}

impl DatanodeDirectory {
    pub fn new(report: &[DatanodeReport]) -> Self {
        DatanodeDirectory {
            by_id: report.iter().map(|d| (d.id.0.clone(), d.clone())).collect(),
        }
    }

    fn get(&self, id: &str) -> Option<&DatanodeReport> {
        self.by_id.get(id)
    }

    /// A known datanode as `DatanodeInfoProto`.
    pub fn info(&self, id: &str, now_ms: u64) -> Option<DatanodeInfoProto> {
        self.get(id).map(|d| datanode_info(d, now_ms))
    }
}

/// Splits `host:port` (IPv6 in brackets or not).
fn host_port(addr: &str) -> (String, u32) {
    match addr.rsplit_once(':') {
        Some((h, p)) => (
            h.trim_start_matches('[').trim_end_matches(']').to_string(),
            p.parse().unwrap_or(0),
        ),
        None => (addr.to_string(), 0),
    }
}

/// A datanode as Hadoop names it. The xfer port is the datanode's HDFS
/// (DataTransferProtocol) port; a datanode without one gets port 0, which a
/// client cannot reach — data transfer for Hadoop clients needs it.
pub fn datanode_id(
    id: &str,
    addr: &str,
    hdfs: Option<&str>,
    http: Option<&str>,
) -> DatanodeIdProto {
    let (host, _) = host_port(hdfs.unwrap_or(addr));
    let xfer = hdfs.map(|h| host_port(h).1).unwrap_or(0);
    DatanodeIdProto {
        ip_addr: host.clone(),
        host_name: host,
        datanode_uuid: id.to_string(),
        xfer_port: xfer,
        info_port: http.map(|h| host_port(h).1).unwrap_or(0),
        ipc_port: 0,
        info_secure_port: None,
    }
}

fn admin_state(s: &str) -> AdminState {
    match s {
        "decommissioning" => AdminState::DecommissionInprogress,
        "decommissioned" => AdminState::Decommissioned,
        _ => AdminState::Normal,
    }
}

/// A datanode report row as `DatanodeInfoProto`.
pub fn datanode_info(d: &DatanodeReport, now_ms: u64) -> DatanodeInfoProto {
    DatanodeInfoProto {
        id: datanode_id(&d.id.0, &d.addr, d.hdfs.as_deref(), d.http.as_deref()),
        capacity: Some(d.capacity),
        dfs_used: Some(d.used),
        remaining: Some(d.remaining),
        block_pool_used: Some(d.used),
        last_update: Some(now_ms.saturating_sub(d.last_contact_ms)),
        admin_state: Some(admin_state(&d.admin_state) as i32),
        num_blocks: Some(d.blocks.min(u32::MAX as u64) as u32),
        location: Some("/default-rack".into()),
        ..Default::default()
    }
}

fn location(a: &DatanodeAddr, dir: &DatanodeDirectory, now_ms: u64) -> DatanodeInfoProto {
    match dir.get(&a.id.0) {
        Some(d) => datanode_info(d, now_ms),
        None => DatanodeInfoProto {
            id: datanode_id(&a.id.0, &a.addr, None, a.http.as_deref()),
            location: Some("/default-rack".into()),
            ..Default::default()
        },
    }
}

pub fn extended_block(b: &BlockInfo) -> ExtendedBlockProto {
    ExtendedBlockProto {
        pool_id: POOL_ID.into(),
        block_id: b.id,
        generation_stamp: b.gen,
        num_bytes: Some(b.len),
    }
}

/// An `ExtendedBlockProto` back as a tdfs block (no digest: Hadoop's
/// client has none; the datanodes' reports carry it).
pub fn block_info(b: &ExtendedBlockProto) -> BlockInfo {
    BlockInfo {
        id: b.block_id,
        gen: b.generation_stamp,
        len: b.num_bytes.unwrap_or(0),
        sha256: None,
    }
}

pub fn located_block(lb: &LocatedBlock, dir: &DatanodeDirectory, now_ms: u64) -> LocatedBlockProto {
    let n = lb.locations.len();
    LocatedBlockProto {
        b: extended_block(&lb.block),
        offset: lb.offset,
        locs: lb
            .locations
            .iter()
            .map(|a| location(a, dir, now_ms))
            .collect(),
        corrupt: false,
        block_token: lb
            .token
            .as_ref()
            .map(crate::token::encode)
            .unwrap_or_else(crate::token::empty),
        is_cached: vec![false; n],
        storage_types: vec![StorageTypeProto::Disk as i32; n],
        storage_i_ds: lb
            .locations
            .iter()
            .map(|a| format!("DS-{}", a.id.0))
            .collect(),
        block_indices: None,
        block_tokens: Vec::new(),
    }
}

pub fn located_blocks(
    lbs: &LocatedBlocks,
    dir: &DatanodeDirectory,
    now_ms: u64,
) -> LocatedBlocksProto {
    let blocks: Vec<LocatedBlockProto> = lbs
        .blocks
        .iter()
        .map(|b| located_block(b, dir, now_ms))
        .collect();
    let last_block = lbs
        .under_construction
        .then(|| blocks.last().cloned())
        .flatten();
    LocatedBlocksProto {
        file_length: lbs.file_length,
        under_construction: lbs.under_construction,
        is_last_block_complete: !lbs.under_construction,
        last_block,
        blocks,
        file_encryption_info: None,
        ec_policy: None,
    }
}

/// A file status; `name` is the path field: the child's name in a listing,
/// empty for `getFileInfo` (the client knows the path it asked for).
pub fn file_status(s: &FileStatus, name: &[u8]) -> HdfsFileStatusProto {
    let dir = s.is_dir();
    HdfsFileStatusProto {
        file_type: if dir {
            FileType::IsDir
        } else {
            FileType::IsFile
        } as i32,
        path: name.to_vec(),
        length: if dir { 0 } else { s.length },
        permission: FsPermissionProto {
            perm: s.mode as u32,
        },
        owner: s.owner.clone(),
        group: s.group.clone(),
        modification_time: s.mtime,
        access_time: s.atime,
        symlink: None,
        block_replication: Some(if dir { 0 } else { s.replication as u32 }),
        blocksize: Some(if dir { 0 } else { s.block_size }),
        locations: None,
        file_id: Some(s.inode),
        children_num: Some(if dir {
            s.children.min(i32::MAX as u64) as i32
        } else {
            0
        }),
        file_encryption_info: None,
        storage_policy: Some(0),
        ec_policy: None,
        // HdfsFileStatusProto.Flags: HAS_ACL = 1, SNAPSHOT_ENABLED = 8.
        flags: Some(u32::from(s.has_acl) | (u32::from(s.snapshot_enabled) << 3)),
        namespace: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tdfs_proto::meta::FileKind;

    #[test]
    fn directories_and_files_as_hadoop_reads_them() {
        let s = FileStatus {
            name: "d".into(),
            inode: 16390,
            kind: FileKind::Dir,
            length: 0,
            replication: 3,
            block_size: 1 << 20,
            mtime: 5,
            atime: 6,
            owner: "alice".into(),
            group: "supergroup".into(),
            mode: 0o755,
            children: 4,
            under_construction: false,
            has_acl: false,
            snapshot_enabled: false,
        };
        let p = file_status(&s, b"d");
        assert_eq!(p.file_type, FileType::IsDir as i32);
        assert_eq!((p.block_replication, p.blocksize), (Some(0), Some(0)));
        assert_eq!((p.children_num, p.file_id), (Some(4), Some(16390)));
        assert_eq!(p.permission.perm, 0o755);
        let f = FileStatus {
            kind: FileKind::File,
            length: 10,
            ..s
        };
        let p = file_status(&f, b"");
        assert_eq!(p.file_type, FileType::IsFile as i32);
        assert_eq!((p.length, p.block_replication), (10, Some(3)));
        assert!(p.path.is_empty());
    }

    #[test]
    fn datanode_ids_carry_the_hdfs_port() {
        let d = datanode_id(
            "dn1",
            "127.0.0.1:7000",
            Some("127.0.0.1:7001"),
            Some("127.0.0.1:7002"),
        );
        assert_eq!(
            (d.ip_addr.as_str(), d.xfer_port, d.info_port),
            ("127.0.0.1", 7001, 7002)
        );
        let d = datanode_id("dn1", "[::1]:7000", None, None);
        assert_eq!((d.ip_addr.as_str(), d.xfer_port), ("::1", 0));
    }
}
