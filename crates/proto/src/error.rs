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
