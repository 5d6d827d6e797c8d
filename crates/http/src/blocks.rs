//! The JSON of block-level answers, field for field as Hadoop's `JsonUtil`
//! writes them and `JsonUtilClient` reads them: block locations (both
//! GETFILEBLOCKLOCATIONS and the older GET_BLOCK_LOCATIONS, which Hadoop's
//! client falls back to), file checksums, server defaults and the file
//! system's size.

use crate::error::WebError;
use serde_json::{json, Value};
use tdfs_client::FileChecksum;
use tdfs_proto::meta::{DatanodeAddr, LocatedBlock, LocatedBlocks};
use tdfs_transfer::CHUNK;

/// Every datanode is in this rack (tdfs has no rack awareness yet).
const RACK: &str = "/default-rack";

/// `DataChecksum.Type.CRC32C.id`: the checksum tdfs stores per chunk.
const CHECKSUM_TYPE_CRC32C: u32 = 2;

/// What GETSERVERDEFAULTS reports: the namespace's defaults for new files
/// and the trash interval, which Hadoop's `-rm` asks for before it deletes
/// (moving to trash when it is not 0).
#[derive(Clone, Debug)]
pub struct ServerDefaults {
    pub block_size: u64,
    pub replication: u16,
    /// Minutes (HDFS's `fs.trash.interval`); 0 = no trash.
    pub trash_interval_minutes: u64,
}

pub fn server_defaults(d: &ServerDefaults) -> Value {
    json!({"FsServerDefaults": {
        "blockSize": d.block_size,
        "bytesPerChecksum": CHUNK,
        "writePacketSize": CHUNK,
        "replication": d.replication,
        "fileBufferSize": 4096,
        "encryptDataTransfer": false,
        "trashInterval": d.trash_interval_minutes,
        "checksumType": CHECKSUM_TYPE_CRC32C,
        "keyProviderUri": "",
        "defaultStoragePolicyId": 0,
    }})
}

/// `host` and `port` of a datanode's transfer address.
fn host_port(d: &DatanodeAddr) -> (&str, u16) {
    match d.addr.rsplit_once(':') {
        Some((h, p)) => (
            h.trim_start_matches('[').trim_end_matches(']'),
            p.parse().unwrap_or(0),
        ),
        None => (d.addr.as_str(), 0),
    }
}

fn http_port(d: &DatanodeAddr) -> u16 {
    d.http
        .as_deref()
        .and_then(|h| h.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(0)
}

/// One `BlockLocation` (what `FileSystem.getFileBlockLocations` returns;
/// Spark plans its splits and locality from it).
fn block_location(lb: &LocatedBlock) -> Value {
    let locs = &lb.locations;
    let hosts: Vec<&str> = locs.iter().map(|d| host_port(d).0).collect();
    let names: Vec<&str> = locs.iter().map(|d| d.addr.as_str()).collect();
    let topology: Vec<String> = locs.iter().map(|d| format!("{RACK}/{}", d.addr)).collect();
    let ids: Vec<&str> = locs.iter().map(|d| d.id.0.as_str()).collect();
    json!({
        "cachedHosts": [],
        "corrupt": false,
        "hosts": hosts,
        "length": lb.block.len,
        "names": names,
        "offset": lb.offset,
        "storageIds": ids,
        "storageTypes": vec!["DISK"; locs.len()],
        "topologyPaths": topology,
    })
}

/// GETFILEBLOCKLOCATIONS: `{"BlockLocations": {"BlockLocation": [...]}}`.
pub fn block_locations(lbs: &LocatedBlocks) -> Value {
    let list: Vec<Value> = lbs.blocks.iter().map(block_location).collect();
    json!({"BlockLocations": {"BlockLocation": list}})
}

/// A `DatanodeInfo` as `JsonUtilClient.toDatanodeInfo` reads it (`ipAddr`,
/// `xferPort`, `infoPort` and `ipcPort` are required).
fn datanode_info(d: &DatanodeAddr) -> Value {
    let (host, port) = host_port(d);
    json!({
        "adminState": "NORMAL",
        "hostName": host,
        "infoPort": http_port(d),
        "infoSecurePort": 0,
        "ipAddr": host,
        "ipcPort": 0,
        "name": d.addr,
        "networkLocation": RACK,
        "storageID": d.id.0,
        "xferPort": port,
    })
}

fn located_block(lb: &LocatedBlock) -> Value {
    json!({
        "block": {
            "blockId": lb.block.id,
            "blockPoolId": "tdfs",
            "generationStamp": lb.block.gen,
            "numBytes": lb.block.len,
        },
        // An empty token, as HDFS sends without block tokens.
        "blockToken": {"urlString": "AAAAAA"},
        "cachedLocations": [],
        "isCorrupt": false,
        "locations": lb.locations.iter().map(datanode_info).collect::<Vec<_>>(),
        "startOffset": lb.offset,
        "storageTypes": vec!["DISK"; lb.locations.len()],
    })
}

/// GET_BLOCK_LOCATIONS: `{"LocatedBlocks": {...}}`, HDFS's `LocatedBlocks`.
pub fn located_blocks(lbs: &LocatedBlocks) -> Value {
    let blocks: Vec<Value> = lbs.blocks.iter().map(located_block).collect();
    let last = lbs.blocks.last().map(located_block);
    json!({"LocatedBlocks": {
        "fileLength": lbs.file_length,
        "isLastBlockComplete": !lbs.under_construction,
        "isUnderConstruction": lbs.under_construction,
        "lastLocatedBlock": last,
        "locatedBlocks": blocks,
    }})
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The MD5-of-MD5-of-CRC32C form (`MD5MD5CRC32CastagnoliFileChecksum`):
/// the only one Hadoop's WebHDFS client parses (it decodes every reply as
/// an MD5MD5CRC32 checksum), so the default.
pub fn md5_checksum(c: &FileChecksum) -> Value {
    let b = c.md5_bytes();
    json!({"FileChecksum": {
        "algorithm": c.md5_algorithm(),
        "bytes": hex(&b),
        "length": b.len(),
    }})
}

/// The composite form (`CompositeCrcFileChecksum`, 4 big-endian bytes):
/// the CRC32C of the file's bytes, what HDFS reports with
/// `dfs.checksum.combine.mode=COMPOSITE_CRC`.
pub fn composite_checksum(c: &FileChecksum) -> Value {
    json!({"FileChecksum": {
        "algorithm": FileChecksum::COMPOSITE,
        "bytes": hex(&c.crc32c.to_be_bytes()),
        "length": 4,
    }})
}

/// Which form GETFILECHECKSUM answers: `checksumcombinemode` named as
/// HDFS's `dfs.checksum.combine.mode` (a tdfs extension of the API;
/// Hadoop's client sends none and gets the MD5 form it parses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumMode {
    Md5Md5Crc,
    CompositeCrc,
}

impl ChecksumMode {
    pub fn parse(v: Option<&str>) -> Result<ChecksumMode, WebError> {
        match v {
            None | Some("") => Ok(ChecksumMode::Md5Md5Crc),
            Some(m) if m.eq_ignore_ascii_case("MD5MD5CRC") => Ok(ChecksumMode::Md5Md5Crc),
            Some(m) if m.eq_ignore_ascii_case("COMPOSITE_CRC") => Ok(ChecksumMode::CompositeCrc),
            Some(m) => Err(WebError::illegal(format!(
                "Invalid value for webhdfs parameter \"checksumcombinemode\": {m} \
                 (MD5MD5CRC or COMPOSITE_CRC)"
            ))),
        }
    }
}

pub fn file_checksum(c: &FileChecksum, mode: ChecksumMode) -> Value {
    match mode {
        ChecksumMode::Md5Md5Crc => md5_checksum(c),
        ChecksumMode::CompositeCrc => composite_checksum(c),
    }
}

/// GETSTATUS: the file system's size, as `FsStatus`.
pub fn fs_status(capacity: u64, used: u64, remaining: u64) -> Value {
    json!({"FsStatus": {"capacity": capacity, "used": used, "remaining": remaining}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use tdfs_proto::meta::BlockInfo;
    use tdfs_proto::DatanodeId;

    fn lbs() -> LocatedBlocks {
        let dn = |i: u16| DatanodeAddr {
            id: DatanodeId(format!("dn{i}")),
            addr: format!("127.0.0.1:{}", 9000 + i),
            http: Some(format!("127.0.0.1:{}", 9100 + i)),
        };
        LocatedBlocks {
            file_length: 15,
            under_construction: false,
            blocks: vec![LocatedBlock {
                block: BlockInfo {
                    id: 42,
                    gen: 3,
                    len: 15,
                    sha256: None,
                },
                offset: 0,
                locations: vec![dn(1), dn(2)],
                token: None,
            }],
        }
    }

    #[test]
    fn block_locations_carry_what_hadoop_reads() {
        let v = block_locations(&lbs());
        let b = &v["BlockLocations"]["BlockLocation"][0];
        assert_eq!(b["hosts"], json!(["127.0.0.1", "127.0.0.1"]));
        assert_eq!(b["names"], json!(["127.0.0.1:9001", "127.0.0.1:9002"]));
        assert_eq!(b["topologyPaths"][0], "/default-rack/127.0.0.1:9001");
        assert_eq!(
            (b["offset"].as_u64(), b["length"].as_u64()),
            (Some(0), Some(15))
        );
        for k in ["corrupt", "cachedHosts", "storageIds", "storageTypes"] {
            assert!(b.get(k).is_some(), "{k}");
        }
        let v = located_blocks(&lbs());
        let l = &v["LocatedBlocks"];
        assert_eq!(l["isLastBlockComplete"], true);
        let d = &l["locatedBlocks"][0]["locations"][1];
        assert_eq!(
            (d["xferPort"].as_u64(), d["infoPort"].as_u64()),
            (Some(9002), Some(9102))
        );
        assert_eq!(l["locatedBlocks"][0]["block"]["blockId"], 42);
    }

    #[test]
    fn checksums_in_hadoops_two_forms() {
        let c = FileChecksum {
            length: 10,
            crc32c: 0xe3069283,
            bytes_per_crc: 65536,
            crc_per_block: 0,
            md5: [0xab; 16],
        };
        let v = composite_checksum(&c);
        assert_eq!(
            v,
            json!({"FileChecksum": {"algorithm": "COMPOSITE-CRC32C", "bytes": "e3069283", "length": 4}})
        );
        let v = md5_checksum(&c);
        assert_eq!(v["FileChecksum"]["algorithm"], "MD5-of-0MD5-of-65536CRC32C");
        assert_eq!(v["FileChecksum"]["length"], 28);
        assert!(ChecksumMode::parse(Some("nope")).is_err());
        assert_eq!(
            ChecksumMode::parse(Some("composite_crc")).unwrap(),
            ChecksumMode::CompositeCrc
        );
        assert!(v["FileChecksum"]["bytes"]
            .as_str()
            .unwrap()
            .starts_with("00010000"));
    }
}
