//! The JSON of the namespace features, field for field as Hadoop's
//! `JsonUtil` writes it and `JsonUtilClient` reads it: quota usage, ACL
//! status, extended attributes, snapshot listings and difference reports.

use crate::json::file_status;
use serde_json::{json, Map, Value};
use tdfs_proto::acl::AclStatus;
use tdfs_proto::meta::{ContentSummary, FileStatus};
use tdfs_proto::quota::QuotaUsage;
use tdfs_proto::snapshot::listing::{ListingEntry, ListingPage};
use tdfs_proto::snapshot::{SnapshotDiffReport, SnapshotInfo, SnapshottableDir, DOT_SNAPSHOT};
use tdfs_proto::xattr::{encode_value, Encoding, XAttr};

/// Java's `-1`: no quota set (`HdfsConstants.QUOTA_RESET`).
fn quota(q: Option<u64>) -> Value {
    q.map_or(json!(-1), |q| json!(q))
}

/// The fields a content summary and a quota usage share (`typeQuota` lists
/// only the storage types with a quota, as `JsonUtil.toJsonMap(QuotaUsage)`).
fn quota_fields(q: &QuotaUsage) -> Map<String, Value> {
    let mut types = Map::new();
    for (t, quota, consumed) in &q.type_quotas {
        types.insert(t.clone(), json!({"consumed": consumed, "quota": quota}));
    }
    let mut m = Map::new();
    m.insert("quota".into(), quota(q.ns_quota));
    m.insert("spaceConsumed".into(), json!(q.space_consumed));
    m.insert("spaceQuota".into(), quota(q.space_quota));
    m.insert("typeQuota".into(), Value::Object(types));
    m
}

/// GETQUOTAUSAGE.
pub fn quota_usage(q: &QuotaUsage) -> Value {
    let mut m = quota_fields(q);
    m.insert("fileAndDirectoryCount".into(), json!(q.file_and_dir_count));
    json!({ "QuotaUsage": m })
}

/// GETCONTENTSUMMARY: the counts with the directory's quotas.
pub fn content_summary(s: &ContentSummary, q: &QuotaUsage) -> Value {
    let mut m = quota_fields(q);
    // The summary's own total: quota usage may count what the summary
    // walked differently (snapshots), and Hadoop reads this one.
    m.insert("spaceConsumed".into(), json!(s.space_consumed));
    m.insert("directoryCount".into(), json!(s.directory_count));
    m.insert("fileCount".into(), json!(s.file_count));
    m.insert("length".into(), json!(s.length));
    json!({ "ContentSummary": m })
}

/// GETACLSTATUS (`JsonUtil.toJsonString(AclStatus)`).
pub fn acl_status(a: &AclStatus) -> Value {
    let entries: Vec<String> = a.entries.iter().map(|e| e.to_string()).collect();
    json!({"AclStatus": {
        "entries": entries,
        "group": a.group,
        "owner": a.owner,
        "permission": format!("{:o}", a.mode & 0o1777),
        "stickyBit": a.mode & 0o1000 != 0,
    }})
}

/// GETXATTRS: each value in the requested encoding.
pub fn xattrs(list: &[XAttr], enc: Encoding) -> Value {
    let list: Vec<Value> = list
        .iter()
        .map(|x| json!({"name": x.name, "value": encode_value(&x.value, enc)}))
        .collect();
    json!({ "XAttrs": list })
}

/// LISTXATTRS: the names as a JSON array *inside a string*, as Hadoop.
pub fn xattr_names(names: &[String]) -> Value {
    json!({ "XAttrNames": Value::from(names.to_vec()).to_string() })
}

/// The parent of a canonical path, as `Path.getParent` prints it.
fn parent(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

/// GETSNAPSHOTTABLEDIRECTORYLIST.
pub fn snapshottable_dirs(dirs: &[SnapshottableDir]) -> Value {
    let list: Vec<Value> = dirs
        .iter()
        .map(|d| {
            json!({
                "dirStatus": file_status(&d.status, &d.status.name),
                "parentFullPath": parent(&d.path),
                "snapshotNumber": d.snapshots,
                "snapshotQuota": d.quota,
            })
        })
        .collect();
    json!({ "SnapshottableDirectoryList": list })
}

/// GETSNAPSHOTLIST: each snapshot as the status of its root, named by the
/// snapshot and dated by its creation (`SnapshotStatus`).
pub fn snapshot_list(dir: &str, root: &FileStatus, snaps: &[SnapshotInfo]) -> Value {
    let list: Vec<Value> = snaps
        .iter()
        .map(|s| {
            let mut st = root.clone();
            st.name = s.name.clone();
            st.mtime = s.ctime;
            st.snapshot_enabled = false;
            let base = if dir == "/" { "" } else { dir };
            json!({
                "deletionStatus": "ACTIVE",
                "dirStatus": file_status(&st, &s.name),
                "fullPath": format!("{base}/{DOT_SNAPSHOT}/{}", s.name),
                "snapshotID": s.id,
            })
        })
        .collect();
    json!({ "SnapshotList": list })
}

/// GETSNAPSHOTDIFF.
pub fn snapshot_diff(r: &SnapshotDiffReport) -> Value {
    let list: Vec<Value> = r
        .entries
        .iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("sourcePath".into(), json!(e.source));
            if let Some(t) = &e.target {
                m.insert("targetPath".into(), json!(t));
            }
            m.insert("type".into(), json!(e.kind.name()));
            Value::Object(m)
        })
        .collect();
    json!({"SnapshotDiffReport": {
        "diffList": list,
        "fromSnapshot": r.from,
        "snapshotRoot": r.root,
        "toSnapshot": r.to,
    }})
}

/// GETSNAPSHOTDIFFLISTING, as Hadoop's `JsonUtil` writes a
/// `SnapshotDiffReportListing`.
pub fn snapshot_diff_listing(p: &ListingPage) -> Value {
    let list = |v: &[ListingEntry]| -> Vec<Value> {
        v.iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("dirId".into(), json!(e.dir_id));
                m.insert("fileId".into(), json!(e.file_id));
                m.insert("isReference".into(), json!(e.is_reference));
                m.insert("sourcePath".into(), json!(e.path));
                if let Some(t) = &e.target {
                    m.insert("targetPath".into(), json!(t));
                }
                Value::Object(m)
            })
            .collect()
    };
    json!({"SnapshotDiffReportListing": {
        "createList": list(&p.created),
        "deleteList": list(&p.deleted),
        "isFromEarlier": p.is_from_earlier,
        "lastIndex": p.last_index,
        "lastPath": p.last_path,
        "modifyList": list(&p.modified),
    }})
}

#[cfg(test)]
mod tests {
    use super::*;
    use tdfs_proto::acl::parse_spec;

    #[test]
    fn shapes_are_hadoops() {
        let q = QuotaUsage {
            file_and_dir_count: 3,
            ns_quota: Some(10),
            space_consumed: 7,
            space_quota: None,
            type_quotas: vec![("DISK".into(), 100, 7)],
        };
        let v = quota_usage(&q);
        assert_eq!(v["QuotaUsage"]["quota"], 10);
        assert_eq!(v["QuotaUsage"]["spaceQuota"], -1);
        assert_eq!(v["QuotaUsage"]["typeQuota"]["DISK"]["consumed"], 7);
        assert_eq!(v["QuotaUsage"]["fileAndDirectoryCount"], 3);
        let a = AclStatus {
            owner: "o".into(),
            group: "g".into(),
            mode: 0o1750,
            entries: parse_spec("user:bob:rw-,default:group::r-x", true).unwrap(),
        };
        let v = acl_status(&a);
        assert_eq!(v["AclStatus"]["permission"], "1750");
        assert_eq!(v["AclStatus"]["stickyBit"], true);
        assert_eq!(v["AclStatus"]["entries"][1], "default:group::r-x");
        let v = xattr_names(&["user.a".into(), "user.b".into()]);
        assert_eq!(v["XAttrNames"], "[\"user.a\",\"user.b\"]");
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
    }
}
