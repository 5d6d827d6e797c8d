//! The JSON bodies of WebHDFS, field for field as Hadoop writes them.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tdfs_proto::meta::{ContentSummary, FileStatus};

/// A JSON response with Hadoop's content type.
pub fn response(code: StatusCode, v: &Value) -> Response {
    let mut r = (code, v.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub fn ok(v: &Value) -> Response {
    response(StatusCode::OK, v)
}

/// One `FileStatus` object; `suffix` is the name relative to the listed
/// directory (empty for GETFILESTATUS). `fileId` is the inode id; the
/// flags `aclBit`, `encBit`, `ecBit` and `snapshotEnabled` appear only when
/// true, as Hadoop writes them, and tdfs sets none of them yet (no ACLs,
/// encryption, erasure coding or snapshots). Directories have length,
/// block size and replication 0, as in HDFS.
pub fn file_status(st: &FileStatus, suffix: &str) -> Value {
    let dir = st.is_dir();
    json!({
        "accessTime": st.atime,
        "blockSize": if dir { 0 } else { st.block_size },
        "childrenNum": if dir { st.children } else { 0 },
        "fileId": st.inode,
        "group": st.group,
        "length": if dir { 0 } else { st.length },
        "modificationTime": st.mtime,
        "owner": st.owner,
        "pathSuffix": suffix,
        "permission": format!("{:o}", st.mode & 0o1777),
        "replication": if dir { 0 } else { st.replication },
        "storagePolicy": 0,
        "type": if dir { "DIRECTORY" } else { "FILE" },
    })
}

pub fn file_statuses(entries: &[FileStatus]) -> Value {
    let list: Vec<Value> = entries.iter().map(|e| file_status(e, &e.name)).collect();
    json!({"FileStatuses": {"FileStatus": list}})
}

pub fn directory_listing(entries: &[FileStatus], remaining: u64) -> Value {
    let list: Vec<Value> = entries.iter().map(|e| file_status(e, &e.name)).collect();
    json!({"DirectoryListing": {
        "partialListing": {"FileStatuses": {"FileStatus": list}},
        "remainingEntries": remaining,
    }})
}

pub fn content_summary(s: &ContentSummary) -> Value {
    json!({"ContentSummary": {
        "directoryCount": s.directory_count,
        "fileCount": s.file_count,
        "length": s.length,
        "quota": -1,
        "spaceConsumed": s.space_consumed,
        "spaceQuota": -1,
        "typeQuota": {},
    }})
}

/// GETQUOTAUSAGE: the usage half of a content summary (no quotas in tdfs).
pub fn quota_usage(s: &ContentSummary) -> Value {
    json!({"QuotaUsage": {
        "fileAndDirectoryCount": s.file_count + s.directory_count,
        "quota": -1,
        "spaceConsumed": s.space_consumed,
        "spaceQuota": -1,
        "typeQuota": {},
    }})
}

pub fn boolean(b: bool) -> Value {
    json!({ "boolean": b })
}

pub fn path(p: &str) -> Value {
    json!({ "Path": p })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tdfs_proto::meta::FileKind;

    #[test]
    fn file_status_has_hadoops_fields() {
        let st = FileStatus {
            name: "f".into(),
            inode: 7,
            kind: FileKind::File,
            length: 10,
            replication: 3,
            block_size: 1 << 20,
            mtime: 5,
            atime: 4,
            owner: "alice".into(),
            group: "supergroup".into(),
            mode: 0o1644,
            children: 0,
            under_construction: false,
        };
        let v = file_status(&st, "f");
        assert_eq!(v["permission"], "1644");
        assert_eq!(v["type"], "FILE");
        assert_eq!(v["length"], 10);
        assert_eq!(v["pathSuffix"], "f");
        for k in [
            "accessTime",
            "blockSize",
            "childrenNum",
            "fileId",
            "group",
            "modificationTime",
            "owner",
            "replication",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
    }
}
