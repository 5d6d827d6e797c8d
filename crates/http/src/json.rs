//! The JSON bodies of WebHDFS, field for field as Hadoop writes them.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tdfs_proto::meta::FileStatus;

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
/// flags `aclBit` and `snapshotEnabled` appear only when true, as Hadoop
/// writes them (tdfs has no encryption or erasure coding: no `encBit`,
/// `ecBit`). Directories have length, block size and replication 0, as in
/// HDFS.
pub fn file_status(st: &FileStatus, suffix: &str) -> Value {
    let dir = st.is_dir();
    let mut v = json!({
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
    });
    if st.has_acl {
        v["aclBit"] = json!(true);
    }
    if st.snapshot_enabled {
        v["snapshotEnabled"] = json!(true);
    }
    v
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
            has_acl: false,
            snapshot_enabled: false,
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
