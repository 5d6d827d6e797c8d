//! Quotas as HDFS has them: a name quota (files plus directories, the
//! directory itself counted) and space quotas (bytes times replication, in
//! total or per storage type) on a directory.

use serde::{Deserialize, Serialize};

/// The storage types HDFS accepts in a type quota. tdfs stores every
/// replica as `DISK`, so only a `DISK` quota ever sees usage.
pub const STORAGE_TYPES: [&str; 6] = ["RAM_DISK", "SSD", "DISK", "ARCHIVE", "PROVIDED", "NVDIMM"];

/// Checks (and canonicalizes) a storage type name.
pub fn storage_type(s: &str) -> Result<&'static str, crate::FsError> {
    let up = s.to_ascii_uppercase();
    STORAGE_TYPES
        .iter()
        .find(|t| **t == up)
        .copied()
        .ok_or_else(|| crate::FsError::InvalidArgument(format!("unknown storage type {s:?}")))
}

/// One quota in a `SetQuota` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuotaChange {
    /// Leave it as it is (HDFS's `QUOTA_DONT_SET`).
    Keep,
    /// Remove it (HDFS's `QUOTA_RESET`, `-clrQuota`).
    Clear,
    Set(u64),
}

/// GETQUOTAUSAGE and the quota half of `-count -q`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaUsage {
    /// Files and directories, the directory itself included.
    pub file_and_dir_count: u64,
    pub ns_quota: Option<u64>,
    pub space_consumed: u64,
    pub space_quota: Option<u64>,
    /// Per storage type with a quota set: (type, quota, consumed).
    pub type_quotas: Vec<(String, u64, u64)>,
}

/// What GETSERVERDEFAULTS and a shell deciding on trash need to know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerDefaults {
    pub block_size: u64,
    pub replication: u16,
    /// How long trashed files are kept, in ms (0: trash is off); HDFS's
    /// `fs.trash.interval` is this in minutes.
    pub trash_interval_ms: u64,
}
