//! Snapshots on the wire: the snapshots of a directory, the snapshottable
//! directories, and a snapshot difference report as HDFS prints it (and
//! as its paged listing, [`listing`], carries it).

use crate::meta::FileStatus;

pub mod listing;
use serde::{Deserialize, Serialize};

/// The path component that reaches a directory's snapshots.
pub const DOT_SNAPSHOT: &str = ".snapshot";
/// Snapshots a directory may hold (HDFS's default snapshot quota).
pub const DEFAULT_SNAPSHOT_QUOTA: u32 = 65536;

/// One snapshot of a directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Unique across the namespace, increasing with creation.
    pub id: u32,
    pub name: String,
    /// `DIR/.snapshot/NAME`.
    pub path: String,
    /// Creation time, ms since the epoch.
    pub ctime: u64,
}

/// A directory that allows snapshots (`lsSnapshottableDir`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshottableDir {
    pub path: String,
    pub status: FileStatus,
    pub snapshots: u32,
    pub quota: u32,
}

/// What changed for one path between two snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DiffType {
    Create,
    Modify,
    Delete,
    Rename,
}

impl DiffType {
    /// The label `hdfs snapshotDiff` prints.
    pub fn label(self) -> &'static str {
        match self {
            DiffType::Create => "+",
            DiffType::Modify => "M",
            DiffType::Delete => "-",
            DiffType::Rename => "R",
        }
    }

    /// The name WebHDFS's JSON carries.
    pub fn name(self) -> &'static str {
        match self {
            DiffType::Create => "CREATE",
            DiffType::Modify => "MODIFY",
            DiffType::Delete => "DELETE",
            DiffType::Rename => "RENAME",
        }
    }
}

/// One entry: paths relative to the snapshot root ("" is the root itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffEntry {
    pub kind: DiffType,
    pub source: String,
    /// The new path of a renamed entry.
    pub target: Option<String>,
    /// The inode's id.
    pub id: u64,
    /// Whether the inode is a directory.
    pub dir: bool,
    /// The id of the directory `source` is in (the root's own id for the
    /// root).
    pub parent: u64,
    /// The id of the directory `target` is in.
    pub target_parent: Option<u64>,
}

/// `snapshotDiff DIR FROM TO` (`from`/`to` empty: the current state).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDiffReport {
    pub root: String,
    pub from: String,
    pub to: String,
    /// Whether `from` is the earlier state (HDFS's `isFromEarlier`); the
    /// entries read from `from` to `to` either way.
    pub from_earlier: bool,
    pub entries: Vec<DiffEntry>,
}

fn rel(p: &str) -> String {
    if p.is_empty() {
        ".".to_string()
    } else {
        format!("./{p}")
    }
}

impl std::fmt::Display for SnapshotDiffReport {
    /// HDFS's `SnapshotDiffReport.toString()`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = |s: &str| {
            if s.is_empty() {
                "current directory".to_string()
            } else {
                format!("snapshot {s}")
            }
        };
        writeln!(
            f,
            "Difference between {} and {} under directory {}:",
            name(&self.from),
            name(&self.to),
            self.root
        )?;
        for e in &self.entries {
            write!(f, "{}\t{}", e.kind.label(), rel(&e.source))?;
            if let Some(t) = &e.target {
                write!(f, " -> {}", rel(t))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
