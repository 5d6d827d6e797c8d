//! Errors that cross the wire. Every variant is typed so that callers can
//! branch on it (retry on `NotLeader`, report on `ChecksumMismatch`, ...).

use serde::{Deserialize, Serialize};

/// An error returned by a tdfs node to its caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum FsError {
    /// This metadata node is not the Raft leader; `leader` is its best guess.
    #[error("not the leader (leader hint: {})", fmt_hint(.leader))]
    NotLeader { leader: Option<(u64, String)> },
    /// The path names nothing. The message contains "does not exist", which
    /// WebHDFS clients match on.
    #[error("File does not exist: {0}")]
    FileNotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("parent path is not a directory: {0}")]
    NotADirectory(String),
    #[error("{0} is a directory")]
    IsADirectory(String),
    #[error("directory is not empty: {0}")]
    DirectoryNotEmpty(String),
    #[error("Permission denied: user={user}, access={access}, inode=\"{path}\"")]
    PermissionDenied {
        user: String,
        access: String,
        path: String,
    },
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The file is open for writing by another client.
    #[error("{path} is being written by client {holder}")]
    LeaseConflict { path: String, holder: String },
    /// The caller's lease on the file is gone (expired and recovered).
    #[error("no lease on {0}: the file is not open for writing by this client")]
    LeaseExpired(String),
    #[error("checksum mismatch on block {block}: {detail}")]
    ChecksumMismatch { block: u64, detail: String },
    /// No datanode can take a new block.
    #[error("could not place block: {0}")]
    NoDatanodes(String),
    #[error("block {0} is not known")]
    BlockNotFound(u64),
    #[error("not enough space: {0}")]
    NoSpace(String),
    /// The cluster cannot serve now (no quorum, shutting down); retry later.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("deadline exceeded after {0} ms")]
    Timeout(u64),
    /// The peer broke the protocol (bad frame, bad handshake, too large).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The peer has not proved knowledge of the cluster key.
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    #[error("operation not supported: {0}")]
    Unsupported(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("i/o error: {0}")]
    Io(String),
    /// A name, space or storage-type quota of `path` would be exceeded;
    /// the message is HDFS's (clients and scripts match on it).
    #[error("{}", quota_message(.kind, .path, *.quota, *.usage))]
    QuotaExceeded {
        kind: QuotaKind,
        path: String,
        quota: u64,
        /// What the directory would hold after the operation.
        usage: u64,
    },
    /// A snapshot operation was refused (no such snapshot, not
    /// snapshottable, nested, still has snapshots, ...).
    #[error("{0}")]
    Snapshot(String),
    /// A mutation addressed a path inside a read-only snapshot.
    #[error("Modification on a read-only snapshot is disallowed: {0}")]
    SnapshotReadOnly(String),
    /// An ACL spec or transformation is invalid.
    #[error("{0}")]
    Acl(String),
    /// An extended attribute operation was refused (exists, missing,
    /// too many).
    #[error("{0}")]
    XAttr(String),
    /// The file's last block is being recovered (a truncate inside a
    /// block); retry once the recovery finished.
    #[error("{0}")]
    RecoveryInProgress(String),
}

/// Which quota an operation would exceed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuotaKind {
    /// Files and directories (the directory itself counted).
    Namespace,
    /// Bytes times replication (a block being written counts whole).
    Space,
    /// Space on one storage type (tdfs stores everything as `DISK`).
    StorageType(String),
}

fn quota_message(kind: &QuotaKind, path: &str, quota: u64, usage: u64) -> String {
    match kind {
        QuotaKind::Namespace => format!(
            "The NameSpace quota (directories and files) of directory {path} is exceeded: quota={quota} file count={usage}"
        ),
        QuotaKind::Space => format!(
            "The DiskSpace quota of {path} is exceeded: quota = {quota} B = {} but diskspace consumed = {usage} B = {}",
            binary_size(quota),
            binary_size(usage)
        ),
        QuotaKind::StorageType(t) => format!(
            "Quota by storage type : {t} on path : {path} is exceeded. quota = {quota} B = {} but space consumed = {usage} B = {}",
            binary_size(quota),
            binary_size(usage)
        ),
    }
}

/// A byte count as Hadoop's `TraditionalBinaryPrefix.long2String(n, "B", 2)`
/// prints it: `512 B`, `1 KB`, `1.50 MB`.
pub fn binary_size(n: u64) -> String {
    const SYMBOLS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut i = 0;
    while i + 1 < SYMBOLS.len() && n >= 1u64 << (10 * (i + 2)) {
        i += 1;
    }
    let shift = 10 * (i as u32 + 1);
    if n & ((1u64 << shift) - 1) == 0 {
        return format!("{} {}B", n >> shift, SYMBOLS[i]);
    }
    let mut v = format!("{:.2}", n as f64 / (1u64 << shift) as f64);
    let mut sym = SYMBOLS[i];
    if v.starts_with("1024") && i + 1 < SYMBOLS.len() {
        sym = SYMBOLS[i + 1];
        v = format!("{:.2}", n as f64 / (1u64 << (shift + 10)) as f64);
    }
    format!("{v} {sym}B")
}

fn fmt_hint(h: &Option<(u64, String)>) -> String {
    match h {
        Some((id, addr)) => format!("{id} at {addr}"),
        None => "unknown".to_string(),
    }
}

impl FsError {
    /// Whether a client should try again (possibly elsewhere) rather than
    /// report the error: the operation may not have been applied.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            FsError::NotLeader { .. } | FsError::Unavailable(_) | FsError::Timeout(_)
        )
    }

    /// The Hadoop exception class that WebHDFS reports for this error.
    pub fn hadoop_exception(&self) -> &'static str {
        match self {
            FsError::FileNotFound(_) => "FileNotFoundException",
            FsError::AlreadyExists(_) => "FileAlreadyExistsException",
            FsError::NotADirectory(_) => "ParentNotDirectoryException",
            FsError::IsADirectory(_) => "FileNotFoundException",
            FsError::DirectoryNotEmpty(_) => "PathIsNotEmptyDirectoryException",
            FsError::PermissionDenied { .. } => "AccessControlException",
            FsError::InvalidPath { .. } => "InvalidPathException",
            FsError::InvalidArgument(_) | FsError::Unsupported(_) => "IllegalArgumentException",
            FsError::LeaseConflict { .. } | FsError::LeaseExpired(_) => {
                "AlreadyBeingCreatedException"
            }
            FsError::NotLeader { .. } => "StandbyException",
            FsError::ChecksumMismatch { .. } => "ChecksumException",
            FsError::NoSpace(_) => "DiskQuotaExceededException",
            FsError::QuotaExceeded { kind, .. } => match kind {
                QuotaKind::Namespace => "NSQuotaExceededException",
                QuotaKind::Space => "DSQuotaExceededException",
                QuotaKind::StorageType(_) => "QuotaByStorageTypeExceededException",
            },
            FsError::Snapshot(_) => "SnapshotException",
            FsError::SnapshotReadOnly(_) => "SnapshotAccessControlException",
            FsError::Acl(_) => "AclException",
            FsError::RecoveryInProgress(_) => "RecoveryInProgressException",
            FsError::Unavailable(_) | FsError::Timeout(_) => "RetriableException",
            _ => "IOException",
        }
    }
}

impl From<std::io::Error> for FsError {
    fn from(e: std::io::Error) -> Self {
        FsError::Io(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_messages_are_hadoops() {
        assert_eq!(binary_size(512), "512 B");
        assert_eq!(binary_size(1024), "1 KB");
        assert_eq!(binary_size(3 << 20), "3 MB");
        assert_eq!(binary_size(1536 << 10), "1.50 MB");
        let e = FsError::QuotaExceeded {
            kind: QuotaKind::Namespace,
            path: "/q".into(),
            quota: 2,
            usage: 3,
        };
        assert_eq!(
            e.to_string(),
            "The NameSpace quota (directories and files) of directory /q is exceeded: quota=2 file count=3"
        );
        assert_eq!(e.hadoop_exception(), "NSQuotaExceededException");
        let e = FsError::QuotaExceeded {
            kind: QuotaKind::Space,
            path: "/q".into(),
            quota: 1024,
            usage: 3 << 20,
        };
        assert!(e
            .to_string()
            .contains("quota = 1024 B = 1 KB but diskspace consumed = 3145728 B = 3 MB"));
        assert_eq!(e.hadoop_exception(), "DSQuotaExceededException");
    }
}
