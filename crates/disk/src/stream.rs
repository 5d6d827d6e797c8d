//! `std::io` adapters over a [`DiskFile`]: a reader that also seeks and a
//! writer, each keeping its own position, so the usual buffered readers and
//! writers (`BufReader`, `BufWriter`) and decoders that take `impl Read`
//! work on any disk.

use crate::DiskFile;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// Reads a [`DiskFile`] sequentially from a position (positional reads
/// underneath, so other users of the handle are not disturbed).
#[derive(Debug)]
pub struct FileReader<'a> {
    file: &'a dyn DiskFile,
    pos: u64,
}

impl<'a> FileReader<'a> {
    /// A reader at `pos`.
    pub fn at(file: &'a dyn DiskFile, pos: u64) -> Self {
        FileReader { file, pos }
    }

    /// Where the next read starts.
    pub fn position(&self) -> u64 {
        self.pos
    }
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for FileReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = seek_to(self.pos, || self.file.size(), to)?;
        Ok(self.pos)
    }
}

/// Writes a [`DiskFile`] sequentially from a position (positional writes;
/// not for files opened with `Open::Append`).
#[derive(Debug)]
pub struct FileWriter<'a> {
    file: &'a dyn DiskFile,
    pos: u64,
}

impl<'a> FileWriter<'a> {
    /// A writer at `pos`.
    pub fn at(file: &'a dyn DiskFile, pos: u64) -> Self {
        FileWriter { file, pos }
    }

    /// Where the next write goes (the bytes written so far, from 0).
    pub fn position(&self) -> u64 {
        self.pos
    }
}

impl Write for FileWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_all_at(buf, self.pos)?;
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The position `to` names, from `pos` and the file's size.
pub fn seek_to(pos: u64, size: impl FnOnce() -> io::Result<u64>, to: SeekFrom) -> io::Result<u64> {
    let (base, delta) = match to {
        SeekFrom::Start(n) => return Ok(n),
        SeekFrom::End(d) => (size()?, d),
        SeekFrom::Current(d) => (pos, d),
    };
    base.checked_add_signed(delta).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "seek to a negative or overflowing position",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Disk, MemDisk, Open};
    use std::path::Path;

    #[test]
    fn a_buffered_writer_and_reader_round_trip() {
        let disk = MemDisk::new();
        let f = disk.open(Path::new("/f"), Open::Truncate).unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        {
            let mut w = io::BufWriter::with_capacity(4096, FileWriter::at(f.as_ref(), 0));
            for piece in data.chunks(777) {
                w.write_all(piece).unwrap();
            }
            w.flush().unwrap();
            assert_eq!(w.get_ref().position(), data.len() as u64);
        }
        let mut back = Vec::new();
        io::BufReader::new(FileReader::at(f.as_ref(), 0))
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        let mut r = FileReader::at(f.as_ref(), 0);
        assert_eq!(r.seek(SeekFrom::End(-10)).unwrap(), 99_990);
        assert_eq!(r.seek(SeekFrom::Current(4)).unwrap(), 99_994);
        let mut tail = [0u8; 6];
        r.read_exact(&mut tail).unwrap();
        assert_eq!(&tail, &data[99_994..]);
        assert!(r.seek(SeekFrom::Current(-200_000)).is_err());
    }
}
