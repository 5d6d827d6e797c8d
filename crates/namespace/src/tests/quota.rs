//! Name and space quotas: every kind of violation, usage after deletes.

use super::*;
use tdfs_proto::quota::QuotaChange;
use tdfs_proto::QuotaKind;

const MB: u64 = 1 << 20;

fn set_quota(t: &mut T, p: &str, ns: QuotaChange, space: QuotaChange) -> Result<Outcome, FsError> {
    t.root(LogOp::SetQuota {
        path: p.into(),
        namespace: ns,
        space,
    })
}

fn kind_of(r: Result<Outcome, FsError>) -> (QuotaKind, String, u64, u64) {
    match r {
        Err(FsError::QuotaExceeded {
            kind,
            path,
            quota,
            usage,
        }) => (kind, path, quota, usage),
        other => panic!("expected a quota violation, got {other:?}"),
    }
}

fn mkdir_as(t: &mut T, p: &str) -> Result<Outcome, FsError> {
    t.root(LogOp::Mkdirs {
        path: p.into(),
        mode: 0o755,
        parents: true,
    })
}

#[test]
fn name_quota_counts_the_directory_itself() {
    let mut t = T::new();
    t.mkdir("/q");
    set_quota(&mut t, "/q", QuotaChange::Set(3), QuotaChange::Keep).unwrap();
    mkdir_as(&mut t, "/q/a").unwrap();
    t.file("/q/f", 0);
    let (kind, path, quota, usage) = kind_of(t.create(ROOT_USER, "/q/g"));
    assert_eq!(
        (kind, path.as_str(), quota, usage),
        (QuotaKind::Namespace, "/q", 3, 4)
    );
    // mkdir -p of two levels is refused as a whole, nothing created.
    assert!(matches!(
        mkdir_as(&mut t, "/q/a/b/c"),
        Err(FsError::QuotaExceeded { .. })
    ));
    assert!(t.ns.stat(ROOT_USER, "/q/a/b").is_err());
    let msg = t.create(ROOT_USER, "/q/g").unwrap_err().to_string();
    assert_eq!(
        msg,
        "The NameSpace quota (directories and files) of directory /q is exceeded: quota=3 file count=4"
    );
    assert_eq!(
        t.create(ROOT_USER, "/q/g").unwrap_err().hadoop_exception(),
        "NSQuotaExceededException"
    );
    // Usage after deletes: removing a file makes room again.
    t.root(LogOp::Delete {
        path: "/q/f".into(),
        recursive: false,
    })
    .unwrap();
    let u = t.ns.quota_usage(ROOT_USER, "/q").unwrap();
    assert_eq!((u.file_and_dir_count, u.ns_quota), (2, Some(3)));
    t.create(ROOT_USER, "/q/g").unwrap();
    // Clearing lifts it.
    set_quota(&mut t, "/q", QuotaChange::Clear, QuotaChange::Keep).unwrap();
    t.file("/q/h", 0);
    assert_eq!(t.ns.quota_usage(ROOT_USER, "/q").unwrap().ns_quota, None);
}

#[test]
fn space_quota_charges_a_whole_block_per_replica_while_writing() {
    let mut t = T::new();
    t.mkdir("/s");
    set_quota(&mut t, "/s", QuotaChange::Keep, QuotaChange::Set(4 * MB)).unwrap();
    // One block of 1 MiB at replication 3 reserves 3 MiB: fits once.
    t.create(ROOT_USER, "/s/a").unwrap();
    let b = t.add_block("/s/a", None);
    // A second open block would need 6 MiB, minus what the first gives back.
    let r = t.root(LogOp::AddBlock {
        path: "/s/a".into(),
        previous: Some(BlockInfo {
            len: MB,
            sha256: Some([1; 32]),
            ..b.clone()
        }),
        targets: vec![],
    });
    let (kind, _, quota, usage) = kind_of(r);
    assert_eq!((kind, quota, usage), (QuotaKind::Space, 4 * MB, 6 * MB));
    // Committing 100 bytes leaves 300 bytes charged.
    t.root(LogOp::Complete {
        path: "/s/a".into(),
        last: Some(BlockInfo {
            len: 100,
            sha256: Some([1; 32]),
            ..b
        }),
    })
    .unwrap();
    assert_eq!(
        t.ns.quota_usage(ROOT_USER, "/s").unwrap().space_consumed,
        300
    );
    t.file_of(ROOT_USER, "/s/b", &[MB / 2]).unwrap();
    // Append needs room for a whole block: 300 + 1.5 MiB + 3 MiB > 4 MiB.
    let r = t.as_user(
        ROOT_USER,
        LogOp::Append {
            path: "/s/b".into(),
        },
    );
    assert_eq!(kind_of(r).0, QuotaKind::Space);
    // setrep raising the charge past the quota is refused; lowering is fine.
    let up = t.root(LogOp::SetReplication {
        path: "/s/b".into(),
        replication: 10,
    });
    assert_eq!(kind_of(up).0, QuotaKind::Space);
    t.root(LogOp::SetReplication {
        path: "/s/b".into(),
        replication: 1,
    })
    .unwrap();
    assert_eq!(
        t.ns.quota_usage(ROOT_USER, "/s").unwrap().space_consumed,
        300 + MB / 2
    );
    let msg = t
        .root(LogOp::SetReplication {
            path: "/s/b".into(),
            replication: 100,
        })
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("The DiskSpace quota of /s is exceeded: quota = 4194304 B = 4 MB"),
        "{msg}"
    );
}

#[test]
fn rename_into_a_quota_directory_is_checked_against_its_quota_only() {
    let mut t = T::new();
    t.mkdir("/q");
    t.mkdir("/src/d");
    t.file("/src/d/f", 1);
    set_quota(&mut t, "/q", QuotaChange::Set(2), QuotaChange::Keep).unwrap();
    // The moved subtree counts 2 (d and f): /q would hold 3.
    let r = t.root(LogOp::Rename {
        src: "/src/d".into(),
        dst: "/q/d".into(),
        into_dir: false,
    });
    let (kind, path, quota, usage) = kind_of(r);
    assert_eq!(
        (kind, path.as_str(), quota, usage),
        (QuotaKind::Namespace, "/q", 2, 3)
    );
    assert!(t.ns.stat(ROOT_USER, "/src/d/f").is_ok(), "nothing moved");
    // A space quota is checked the same way.
    set_quota(&mut t, "/q", QuotaChange::Clear, QuotaChange::Set(MB)).unwrap();
    let r = t.root(LogOp::Rename {
        src: "/src/d/f".into(),
        dst: "/q/f".into(),
        into_dir: false,
    });
    assert_eq!(kind_of(r).0, QuotaKind::Space);
    // Moving within a quota directory changes nothing and is allowed even
    // when the directory is over its quota.
    t.mkdir("/q/x");
    set_quota(&mut t, "/q", QuotaChange::Set(1), QuotaChange::Clear).unwrap();
    t.root(LogOp::Rename {
        src: "/q/x".into(),
        dst: "/q/y".into(),
        into_dir: false,
    })
    .unwrap();
}

#[test]
fn quotas_are_for_the_superuser_and_directories() {
    let mut t = T::new();
    t.mkdir("/d");
    t.file("/d/f", 0);
    let r = t.as_user(
        "bob",
        LogOp::SetQuota {
            path: "/d".into(),
            namespace: QuotaChange::Set(5),
            space: QuotaChange::Keep,
        },
    );
    assert!(matches!(r, Err(FsError::PermissionDenied { .. })));
    assert!(matches!(
        set_quota(&mut t, "/d/f", QuotaChange::Set(5), QuotaChange::Keep),
        Err(FsError::FileNotFound(_))
    ));
    assert!(set_quota(&mut t, "/d", QuotaChange::Set(0), QuotaChange::Keep).is_err());
    assert!(set_quota(&mut t, "/", QuotaChange::Clear, QuotaChange::Keep).is_err());
}

#[test]
fn a_disk_type_quota_is_enforced_like_a_space_quota() {
    let mut t = T::new();
    t.mkdir("/t");
    t.root(LogOp::SetTypeQuota {
        path: "/t".into(),
        storage_type: "disk".into(),
        quota: QuotaChange::Set(MB),
    })
    .unwrap();
    t.create(ROOT_USER, "/t/a").unwrap();
    let r = t.root(LogOp::AddBlock {
        path: "/t/a".into(),
        previous: None,
        targets: vec![],
    });
    assert_eq!(kind_of(r).0, QuotaKind::StorageType("DISK".into()));
    let u = t.ns.quota_usage(ROOT_USER, "/t").unwrap();
    assert_eq!(u.type_quotas, vec![("DISK".to_string(), MB, 0)]);
    assert!(t
        .root(LogOp::SetTypeQuota {
            path: "/t".into(),
            storage_type: "FLOPPY".into(),
            quota: QuotaChange::Set(1),
        })
        .is_err());
}
