//! The tdfs client library: finds the metadata leader, retries across
//! failovers with backoff and jitter, tags every mutation with a call id so a
//! retry is applied once, and offers the namespace operations.

pub mod checksum;
mod features;
pub mod file;
pub mod meta;

pub use checksum::{file_checksum, FileChecksum};
pub use file::{read_range, CreateOptions, FileWriter};
pub use meta::{ClientConfig, MetaClient};
