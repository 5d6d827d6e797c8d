//! t83's raw `ClientNamenodeProtocol` calls: what dfsadmin and the
//! snapshot tools send (not in Hadoop's client jars), with Hadoop's
//! exception classes.

use super::*;

/// One raw Hadoop IPC call on a fresh connection to the leader: the
/// reply's header and body.
async fn ipc(
    c: &LocalCluster,
    method: &str,
    req: &dyn ErasedMessage,
) -> (RpcResponseHeaderProto, Bytes) {
    let addr = &c.meta_hdfs[&c.leader().unwrap().config().id];
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let id = rand::random::<[u8; 16]>();
    s.write_all(&client_hello("root", &id)).await.unwrap();
    s.write_all(&call_frame(1, &id, method, req)).await.unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).await.unwrap();
    parse_reply(Bytes::from(buf)).unwrap()
}

/// A call that must succeed; its response decoded.
pub async fn ok_call<R: Message + Default>(
    c: &LocalCluster,
    method: &str,
    req: &dyn ErasedMessage,
) -> R {
    let (h, body) = ipc(c, method, req).await;
    assert_eq!(h.status, RpcStatusProto::Success as i32, "{method}: {h:?}");
    R::decode_length_delimited(body).unwrap()
}

/// A call that must fail with `class`; its message.
async fn failed_call(
    c: &LocalCluster,
    method: &str,
    req: &dyn ErasedMessage,
    class: &str,
) -> String {
    let (h, _) = ipc(c, method, req).await;
    assert_eq!(
        h.exception_class_name.as_deref(),
        Some(class),
        "{method}: {h:?}"
    );
    h.error_msg.unwrap_or_default()
}

/// What dfsadmin and the snapshot tools call, which FsShell cannot.
pub async fn raw_namenode_calls(c: &LocalCluster) {
    let d: p::GetServerDefaultsResponseProto =
        ok_call(c, "getServerDefaults", &p::GetServerDefaultsRequestProto {}).await;
    assert_eq!(d.server_defaults.trash_interval, Some(TRASH_MS / 60_000));
    let allow = p::AllowSnapshotRequestProto {
        snapshot_root: "/h/snap".into(),
    };
    let _: p::AllowSnapshotResponseProto = ok_call(c, "allowSnapshot", &allow).await;
    let q = p::SetQuotaRequestProto {
        path: "/h/q".into(),
        namespace_quota: 2,
        storagespace_quota: u64::MAX,
        storage_type: None,
    };
    let _: p::SetQuotaResponseProto = ok_call(c, "setQuota", &q).await;
    let q = p::SetQuotaRequestProto {
        path: "/h/q".into(),
        namespace_quota: i64::MAX as u64,
        storagespace_quota: 5000,
        storage_type: Some(p::StorageTypeProto::Disk as i32),
    };
    let _: p::SetQuotaResponseProto = ok_call(c, "setQuota", &q).await;
    let u: p::GetQuotaUsageResponseProto = ok_call(
        c,
        "getQuotaUsage",
        &p::GetQuotaUsageRequestProto {
            path: "/h/q".into(),
        },
    )
    .await;
    assert_eq!(
        (
            u.usage.quota,
            u.usage.space_quota,
            u.usage.file_and_directory_count
        ),
        (2, u64::MAX, 1)
    );
    let t = &u.usage.type_quota_infos.unwrap().type_quota_info[0];
    assert_eq!(
        (t.r#type, t.quota),
        (Some(p::StorageTypeProto::Disk as i32), 5000)
    );
    failed_call(
        c,
        "allowSnapshot",
        &p::AllowSnapshotRequestProto {
            snapshot_root: "/nope".into(),
        },
        "java.io.FileNotFoundException",
    )
    .await;
    let bad = p::ModifyAclEntriesRequestProto {
        src: "/h/acl".into(),
        acl_spec: vec![p::AclEntryProto {
            r#type: 42,
            scope: 0,
            permissions: 7,
            name: None,
        }],
    };
    failed_call(
        c,
        "modifyAclEntries",
        &bad,
        "org.apache.hadoop.HadoopIllegalArgumentException",
    )
    .await;
}

pub async fn raw_snapshot_reads(c: &LocalCluster) {
    let l: p::GetSnapshottableDirListingResponseProto = ok_call(
        c,
        "getSnapshottableDirListing",
        &p::GetSnapshottableDirListingRequestProto {},
    )
    .await;
    let l = l.snapshottable_dir_list.unwrap().snapshottable_dir_listing;
    assert_eq!(l.len(), 1);
    assert_eq!(
        (
            l[0].parent_fullpath.as_slice(),
            l[0].dir_status.path.as_slice()
        ),
        (&b"/h"[..], &b"snap"[..])
    );
    let s: p::GetSnapshotListingResponseProto = ok_call(
        c,
        "getSnapshotListing",
        &p::GetSnapshotListingRequestProto {
            snapshot_root: "/h/snap".into(),
        },
    )
    .await;
    let s = s.snapshot_list.unwrap().snapshot_listing;
    assert_eq!((s.len(), s[0].dir_status.path.as_slice()), (2, &b"a"[..]));
    let r = p::GetSnapshotDiffReportRequestProto {
        snapshot_root: "/h/snap".into(),
        from_snapshot: "a".into(),
        to_snapshot: "b".into(),
    };
    let r: p::GetSnapshotDiffReportResponseProto = ok_call(c, "getSnapshotDiffReport", &r).await;
    let e = &r.diff_report.diff_report_entries;
    assert!(
        e.iter()
            .any(|e| e.modification_label == "-" && e.fullpath == b"f"),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|e| e.modification_label == "M" && e.fullpath.is_empty()),
        "{e:?}"
    );
    let del = p::DeleteSnapshotRequestProto {
        snapshot_root: "/h/snap".into(),
        snapshot_name: "zz".into(),
    };
    failed_call(
        c,
        "deleteSnapshot",
        &del,
        "org.apache.hadoop.hdfs.protocol.SnapshotException",
    )
    .await;
}
