//! The namespace features in HDFS's protobuf shapes (`acl.proto`,
//! `xattr.proto`, `hdfs.proto`), as `PBHelperClient` builds and reads them.

use super::convert::file_status;
use crate::proto::hdfs::acl_entry_proto::{AclEntryScopeProto, AclEntryTypeProto};
use crate::proto::hdfs::x_attr_proto::XAttrNamespaceProto;
use crate::proto::hdfs::{
    AclEntryProto, AclStatusProto, ContentSummaryProto, FsPermissionProto, QuotaUsageProto,
    SnapshotDiffReportCursorProto, SnapshotDiffReportEntryProto,
    SnapshotDiffReportListingEntryProto, SnapshotDiffReportListingProto, SnapshotDiffReportProto,
    SnapshotStatusProto, SnapshottableDirectoryStatusProto, StorageTypeProto,
    StorageTypeQuotaInfoProto, StorageTypeQuotaInfosProto, XAttrProto, XAttrSetFlagProto,
};
use tdfs_proto::acl::{AclEntry, AclKind, AclScope, AclStatus};
use tdfs_proto::meta::{ContentSummary, FileStatus};
use tdfs_proto::quota::{QuotaChange, QuotaUsage};
use tdfs_proto::snapshot::listing::{ListingEntry, ListingPage};
use tdfs_proto::snapshot::{SnapshotDiffReport, SnapshotInfo, SnapshottableDir};
use tdfs_proto::xattr::{split_name, XAttr, XAttrFlags, XAttrNs};
use tdfs_proto::FsError;

/// Java's `-1` as the unsigned field carries it (`QUOTA_RESET`).
const QUOTA_RESET: u64 = u64::MAX;
/// `Long.MAX_VALUE` (`QUOTA_DONT_SET`).
const QUOTA_DONT_SET: u64 = i64::MAX as u64;

pub fn acl_entry(e: &AclEntry) -> AclEntryProto {
    let kind = match e.kind {
        AclKind::User => AclEntryTypeProto::User,
        AclKind::Group => AclEntryTypeProto::Group,
        AclKind::Mask => AclEntryTypeProto::Mask,
        AclKind::Other => AclEntryTypeProto::Other,
    };
    let scope = match e.scope {
        AclScope::Access => AclEntryScopeProto::Access,
        AclScope::Default => AclEntryScopeProto::Default,
    };
    AclEntryProto {
        r#type: kind as i32,
        scope: scope as i32,
        permissions: e.perm as i32,
        name: e.name.clone(),
    }
}

/// An entry from the wire; an unknown enum value is a bad argument.
pub fn acl_entry_from(p: &AclEntryProto) -> Result<AclEntry, FsError> {
    let bad = |what: &str| FsError::InvalidArgument(format!("bad ACL entry {what} in {p:?}"));
    let kind = match AclEntryTypeProto::try_from(p.r#type).map_err(|_| bad("type"))? {
        AclEntryTypeProto::User => AclKind::User,
        AclEntryTypeProto::Group => AclKind::Group,
        AclEntryTypeProto::Mask => AclKind::Mask,
        AclEntryTypeProto::Other => AclKind::Other,
    };
    let scope = match AclEntryScopeProto::try_from(p.scope).map_err(|_| bad("scope"))? {
        AclEntryScopeProto::Access => AclScope::Access,
        AclEntryScopeProto::Default => AclScope::Default,
    };
    if !(0..=7).contains(&p.permissions) {
        return Err(bad("permissions"));
    }
    let name = p.name.as_deref().filter(|n| !n.is_empty());
    Ok(AclEntry::new(scope, kind, name, p.permissions as u8))
}

pub fn acl_entries_from(v: &[AclEntryProto]) -> Result<Vec<AclEntry>, FsError> {
    v.iter().map(acl_entry_from).collect()
}

pub fn acl_status(a: &AclStatus) -> AclStatusProto {
    AclStatusProto {
        owner: a.owner.clone(),
        group: a.group.clone(),
        sticky: a.mode & 0o1000 != 0,
        entries: a.entries.iter().map(acl_entry).collect(),
        permission: Some(FsPermissionProto {
            perm: (a.mode & 0o1777) as u32,
        }),
    }
}

fn namespace(ns: XAttrNs) -> XAttrNamespaceProto {
    match ns {
        XAttrNs::User => XAttrNamespaceProto::User,
        XAttrNs::Trusted => XAttrNamespaceProto::Trusted,
        XAttrNs::System => XAttrNamespaceProto::System,
        XAttrNs::Security => XAttrNamespaceProto::Security,
        XAttrNs::Raw => XAttrNamespaceProto::Raw,
    }
}

/// `user.a` as `XAttrProto` (namespace plus the name after the prefix).
pub fn xattr(name: &str, value: Option<&[u8]>) -> Result<XAttrProto, FsError> {
    let (ns, rest) = split_name(name)?;
    Ok(XAttrProto {
        namespace: namespace(ns) as i32,
        name: rest.to_string(),
        value: value.map(<[u8]>::to_vec),
    })
}

pub fn xattrs(list: &[XAttr]) -> Result<Vec<XAttrProto>, FsError> {
    list.iter()
        .map(|x| xattr(&x.name, Some(&x.value)))
        .collect()
}

/// The prefixed name of an `XAttrProto` (`XAttrHelper.getPrefixedName`).
pub fn xattr_name(p: &XAttrProto) -> Result<String, FsError> {
    let ns = XAttrNamespaceProto::try_from(p.namespace).map_err(|_| {
        FsError::InvalidArgument(format!("unknown xattr namespace {}", p.namespace))
    })?;
    let ns = match ns {
        XAttrNamespaceProto::User => XAttrNs::User,
        XAttrNamespaceProto::Trusted => XAttrNs::Trusted,
        XAttrNamespaceProto::System => XAttrNs::System,
        XAttrNamespaceProto::Security => XAttrNs::Security,
        XAttrNamespaceProto::Raw => XAttrNs::Raw,
    };
    Ok(format!("{}{}", ns.prefix(), p.name))
}

/// `XAttrSetFlagProto` bits; none set means neither (HDFS then refuses
/// both creating and replacing).
pub fn xattr_flags(bits: Option<u32>) -> XAttrFlags {
    let b = bits.unwrap_or(0);
    XAttrFlags {
        create: b & XAttrSetFlagProto::XattrCreate as u32 != 0,
        replace: b & XAttrSetFlagProto::XattrReplace as u32 != 0,
    }
}

/// A quota from Java's long: −1 clears, `Long.MAX_VALUE` keeps.
pub fn quota_change(v: u64) -> QuotaChange {
    match v {
        QUOTA_RESET => QuotaChange::Clear,
        QUOTA_DONT_SET => QuotaChange::Keep,
        n => QuotaChange::Set(n),
    }
}

pub fn storage_type_name(t: i32) -> Result<&'static str, FsError> {
    StorageTypeProto::try_from(t)
        .map(|t| match t {
            StorageTypeProto::Disk => "DISK",
            StorageTypeProto::Ssd => "SSD",
            StorageTypeProto::Archive => "ARCHIVE",
            StorageTypeProto::RamDisk => "RAM_DISK",
            StorageTypeProto::Provided => "PROVIDED",
            StorageTypeProto::Nvdimm => "NVDIMM",
        })
        .map_err(|_| FsError::InvalidArgument(format!("unknown storage type {t}")))
}

fn type_quotas(q: &QuotaUsage) -> Option<StorageTypeQuotaInfosProto> {
    let infos: Vec<StorageTypeQuotaInfoProto> = q
        .type_quotas
        .iter()
        .filter_map(|(t, quota, consumed)| {
            let t = StorageTypeProto::from_str_name(t)?;
            Some(StorageTypeQuotaInfoProto {
                r#type: Some(t as i32),
                quota: *quota,
                consumed: *consumed,
            })
        })
        .collect();
    (!infos.is_empty()).then_some(StorageTypeQuotaInfosProto {
        type_quota_info: infos,
    })
}

pub fn quota_usage(q: &QuotaUsage) -> QuotaUsageProto {
    QuotaUsageProto {
        file_and_directory_count: q.file_and_dir_count,
        quota: q.ns_quota.unwrap_or(QUOTA_RESET),
        space_consumed: q.space_consumed,
        space_quota: q.space_quota.unwrap_or(QUOTA_RESET),
        type_quota_infos: type_quotas(q),
    }
}

pub fn content_summary(s: &ContentSummary, q: &QuotaUsage) -> ContentSummaryProto {
    ContentSummaryProto {
        length: s.length,
        file_count: s.file_count,
        directory_count: s.directory_count,
        quota: q.ns_quota.unwrap_or(QUOTA_RESET),
        space_consumed: s.space_consumed,
        space_quota: q.space_quota.unwrap_or(QUOTA_RESET),
        type_quota_infos: type_quotas(q),
        ..Default::default()
    }
}

/// The parent of a canonical path.
fn parent(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

pub fn snapshottable_dir(d: &SnapshottableDir) -> SnapshottableDirectoryStatusProto {
    SnapshottableDirectoryStatusProto {
        dir_status: file_status(&d.status, d.status.name.as_bytes()),
        snapshot_quota: d.quota,
        snapshot_number: d.snapshots,
        parent_fullpath: parent(&d.path).as_bytes().to_vec(),
    }
}

/// A snapshot as the status of its root named by the snapshot, dated by
/// its creation, under the snapshottable directory (`SnapshotStatus`).
pub fn snapshot_status(dir: &str, root: &FileStatus, s: &SnapshotInfo) -> SnapshotStatusProto {
    let mut st = root.clone();
    st.name = s.name.clone();
    st.mtime = s.ctime;
    st.snapshot_enabled = false;
    SnapshotStatusProto {
        dir_status: file_status(&st, s.name.as_bytes()),
        snapshot_id: s.id,
        parent_fullpath: dir.as_bytes().to_vec(),
        is_deleted: false,
    }
}

pub fn snapshot_diff(r: &SnapshotDiffReport) -> SnapshotDiffReportProto {
    SnapshotDiffReportProto {
        snapshot_root: r.root.clone(),
        from_snapshot: r.from.clone(),
        to_snapshot: r.to.clone(),
        diff_report_entries: r
            .entries
            .iter()
            .map(|e| SnapshotDiffReportEntryProto {
                fullpath: e.source.as_bytes().to_vec(),
                modification_label: e.kind.label().to_string(),
                target_path: e.target.as_ref().map(|t| t.as_bytes().to_vec()),
            })
            .collect(),
    }
}

fn listing_entry(e: &ListingEntry) -> SnapshotDiffReportListingEntryProto {
    SnapshotDiffReportListingEntryProto {
        fullpath: e.path.as_bytes().to_vec(),
        dir_id: e.dir_id,
        is_reference: e.is_reference,
        target_path: e.target.as_ref().map(|t| t.as_bytes().to_vec()),
        file_id: Some(e.file_id),
    }
}

pub fn snapshot_diff_listing(p: &ListingPage) -> SnapshotDiffReportListingProto {
    let list = |v: &[ListingEntry]| v.iter().map(listing_entry).collect();
    SnapshotDiffReportListingProto {
        modified_entries: list(&p.modified),
        created_entries: list(&p.created),
        deleted_entries: list(&p.deleted),
        is_from_earlier: p.is_from_earlier,
        cursor: Some(SnapshotDiffReportCursorProto {
            start_path: p.last_path.as_bytes().to_vec(),
            index: p.last_index,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tdfs_proto::acl::parse_spec;

    #[test]
    fn acl_and_xattr_round_trip() {
        for e in parse_spec("user:bob:rw-,group::r-x,default:mask::rwx,other::---", true).unwrap() {
            assert_eq!(acl_entry_from(&acl_entry(&e)).unwrap(), e);
        }
        let bad = AclEntryProto {
            r#type: 9,
            scope: 0,
            permissions: 7,
            name: None,
        };
        assert!(acl_entry_from(&bad).is_err());
        let x = xattr("trusted.k", Some(b"v")).unwrap();
        assert_eq!(x.namespace, XAttrNamespaceProto::Trusted as i32);
        assert_eq!(xattr_name(&x).unwrap(), "trusted.k");
        assert_eq!(xattr_flags(Some(3)), XAttrFlags::EITHER);
        assert_eq!(quota_change(u64::MAX), QuotaChange::Clear);
        assert_eq!(quota_change(i64::MAX as u64), QuotaChange::Keep);
        assert_eq!(quota_change(5), QuotaChange::Set(5));
    }
}
