//! A file's checksum from its blocks' checksums, which datanodes compute
//! from the chunk CRCs they stored (`Op::BlockChecksum`): no data is read.
//! Both of HDFS's forms come out of one pass: the composite CRC32C
//! (`COMPOSITE-CRC32C`, HDFS-13056: the CRC32C of the file's bytes, the
//! same whatever the block and chunk sizes) and `MD5-of-NMD5-of-BCRC32C`
//! (the MD5 of the blocks' MD5s of their chunk CRCs), the only form
//! Hadoop's WebHDFS client parses.

use crate::MetaClient;
use md5::{Digest, Md5};
use tdfs_proto::meta::LocatedBlock;
use tdfs_proto::FsError;
use tdfs_transfer::{block_checksum, BlockChecksum, CHUNK};

/// A file's checksums.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileChecksum {
    pub length: u64,
    /// The CRC32C of the file's bytes.
    pub crc32c: u32,
    /// Bytes per chunk CRC (the MD5 form's `bytesPerCRC`).
    pub bytes_per_crc: u32,
    /// Chunk CRCs in the first block when there are several blocks, else 0
    /// (HDFS's `crcPerBlock`).
    pub crc_per_block: u64,
    /// MD5 of the blocks' MD5-of-CRCs, in file order.
    pub md5: [u8; 16],
}

impl FileChecksum {
    /// Hadoop's name of the composite form.
    pub const COMPOSITE: &'static str = "COMPOSITE-CRC32C";

    /// Hadoop's name of the MD5 form (`MD5MD5CRC32CastagnoliFileChecksum`).
    pub fn md5_algorithm(&self) -> String {
        format!(
            "MD5-of-{}MD5-of-{}CRC32C",
            self.crc_per_block, self.bytes_per_crc
        )
    }

    /// The MD5 form's bytes as Hadoop serializes them: `bytesPerCRC` (4
    /// bytes), `crcPerBlock` (8), the MD5 (16), big-endian.
    pub fn md5_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(28);
        b.extend_from_slice(&self.bytes_per_crc.to_be_bytes());
        b.extend_from_slice(&self.crc_per_block.to_be_bytes());
        b.extend_from_slice(&self.md5);
        b
    }

    /// Combines block checksums in file order.
    ///
    /// The MD5 covers what Hadoop's `FileChecksumHelper` hashes:
    /// `MD5Hash.digest(md5out.getData())`, the whole backing array of its
    /// `DataOutputBuffer` (32 bytes, doubled as needed), so the block MD5s
    /// are followed by zeros up to that capacity (five blocks: 80 bytes of
    /// MD5s and 48 zeros). Real HDFS reports this value; so must tdfs for
    /// Hadoop's `-checksum` and distcp to agree with it.
    pub fn combine(blocks: &[BlockChecksum]) -> FileChecksum {
        let mut crc = 0u32;
        let mut md5 = Md5::new();
        for b in blocks {
            crc = crc32c::crc32c_combine(crc, b.crc32c, b.len as usize);
            md5.update(b.crc_md5);
        }
        md5.update(vec![
            0u8;
            hadoop_buffer_len(blocks.len() * 16) - blocks.len() * 16
        ]);
        FileChecksum {
            length: blocks.iter().map(|b| b.len).sum(),
            crc32c: crc,
            bytes_per_crc: blocks.first().map_or(CHUNK as u32, |b| b.bytes_per_crc),
            crc_per_block: match blocks {
                [first, _, ..] => first.crcs,
                _ => 0,
            },
            md5: md5.finalize().into(),
        }
    }
}

/// The capacity of Hadoop's `DataOutputBuffer` once `n` bytes are written:
/// 32, doubled until they fit.
pub fn hadoop_buffer_len(n: usize) -> usize {
    let mut cap = 32;
    while cap < n {
        cap *= 2;
    }
    cap
}

/// The checksums of the complete file `path`, asking one replica of each
/// block (the next one when a replica fails).
pub async fn file_checksum(c: &MetaClient, path: &str) -> Result<FileChecksum, FsError> {
    let st = c.stat(path).await?;
    if st.is_dir() {
        return Err(FsError::FileNotFound(format!("{path} is a directory")));
    }
    let lbs = c.block_locations(path, 0, st.length.max(1)).await?;
    let mut sums = Vec::with_capacity(lbs.blocks.len());
    for lb in &lbs.blocks {
        sums.push(one_block(c, path, lb).await?);
    }
    let sum = FileChecksum::combine(&sums);
    if sum.length != lbs.file_length {
        return Err(FsError::Unavailable(format!(
            "{path}: its blocks cover {} of {} bytes (being written?)",
            sum.length, lbs.file_length
        )));
    }
    Ok(sum)
}

async fn one_block(
    c: &MetaClient,
    path: &str,
    lb: &LocatedBlock,
) -> Result<BlockChecksum, FsError> {
    let mut last = None;
    for loc in &lb.locations {
        let r = block_checksum(
            &c.config().connector,
            &loc.addr,
            c.config().key.as_ref(),
            lb.token.clone(),
            (lb.block.id, lb.block.gen),
        )
        .await;
        match r {
            Ok(s) if s.len == lb.block.len => return Ok(s),
            Ok(s) => {
                last = Some(FsError::Unavailable(format!(
                    "replica of block {} on {} has {} bytes, the namespace says {}",
                    lb.block.id, loc.addr, s.len, lb.block.len
                )))
            }
            Err(e) => {
                tracing::info!("checksum of block {} from {}: {e}", lb.block.id, loc.addr);
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        FsError::Unavailable(format!(
            "could not obtain block {} of {path}: no live replica",
            lb.block.id
        ))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(data: &[u8]) -> BlockChecksum {
        let mut crc = 0;
        let mut md5 = Md5::new();
        let chunks: Vec<&[u8]> = data.chunks(CHUNK).collect();
        for ch in &chunks {
            let c = crc32c::crc32c(ch);
            crc = crc32c::crc32c_combine(crc, c, ch.len());
            md5.update(c.to_be_bytes());
        }
        BlockChecksum {
            len: data.len() as u64,
            bytes_per_crc: CHUNK as u32,
            crcs: chunks.len() as u64,
            crc32c: crc,
            crc_md5: md5.finalize().into(),
        }
    }

    #[test]
    fn composite_crc_is_the_crc32c_of_the_bytes_whatever_the_blocks() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 3) as u8).collect();
        let whole = crc32c::crc32c(&data);
        for bs in [CHUNK, 100_000, 200_000, data.len()] {
            let blocks: Vec<BlockChecksum> = data.chunks(bs).map(block).collect();
            let f = FileChecksum::combine(&blocks);
            assert_eq!((f.crc32c, f.length), (whole, data.len() as u64), "{bs}");
        }
        assert_eq!(FileChecksum::combine(&[]).crc32c, 0);
    }

    #[test]
    fn md5_form_names_its_layout_as_hadoop() {
        let data = vec![7u8; 3 * CHUNK + 10];
        let f = FileChecksum::combine(&[block(&data[..2 * CHUNK]), block(&data[2 * CHUNK..])]);
        assert_eq!(f.md5_algorithm(), "MD5-of-2MD5-of-65536CRC32C");
        let b = f.md5_bytes();
        assert_eq!(b.len(), 28);
        assert_eq!(&b[..4], &65536u32.to_be_bytes());
        assert_eq!(&b[4..12], &2u64.to_be_bytes());
        let one = FileChecksum::combine(&[block(&data)]);
        assert_eq!(one.md5_algorithm(), "MD5-of-0MD5-of-65536CRC32C");
    }

    /// Five block MD5s and the file MD5 Hadoop 3.5's client computed from
    /// them (over its 128-byte buffer: 80 bytes of MD5s, 48 zeros).
    #[test]
    fn md5_covers_hadoops_whole_buffer() {
        let blocks: Vec<BlockChecksum> = [
            "aa6c5497cadf8297d1139af8a0dd2502",
            "bda19f6aa7b121ec2aabdf1436ac8fb7",
            "f473ac30816c28c9dd5659346860b7e1",
            "f8c0eda04deba0d99d29ebe91be0465c",
            "33483354cfc394c90e35cdb6607c3e46",
        ]
        .iter()
        .map(|h| {
            let mut b = block(b"x");
            for (i, byte) in b.crc_md5.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap();
            }
            b
        })
        .collect();
        let hex: String = FileChecksum::combine(&blocks)
            .md5
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "c756661b4d4fbcb4904e87c8fb550a63");
        assert_eq!(
            [0, 1, 2, 3, 4, 5, 8, 9].map(hadoop_buffer_len),
            [32, 32, 32, 32, 32, 32, 32, 32]
        );
        assert_eq!(
            [16, 32, 48, 80, 129].map(hadoop_buffer_len),
            [32, 32, 64, 128, 256]
        );
    }
}
