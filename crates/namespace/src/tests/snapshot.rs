//! Snapshots around deletes, renames, appends and truncates; their blocks
//! kept until the last snapshot that holds them goes; diffs; persistence.

use super::*;

const MB: u64 = 1 << 20;

fn allow(t: &mut T, p: &str) {
    t.root(LogOp::AllowSnapshot { path: p.into() }).unwrap();
}

fn snapshot(t: &mut T, p: &str, name: &str) {
    let out = t
        .root(LogOp::CreateSnapshot {
            path: p.into(),
            name: Some(name.into()),
        })
        .unwrap();
    assert_eq!(out, Outcome::Path(format!("{p}/.snapshot/{name}")));
}

fn delete_snapshot(t: &mut T, p: &str, name: &str) {
    t.root(LogOp::DeleteSnapshot {
        path: p.into(),
        name: name.into(),
    })
    .unwrap();
}

fn rm(t: &mut T, p: &str) {
    t.root(LogOp::Delete {
        path: p.into(),
        recursive: true,
    })
    .unwrap();
}

fn mv(t: &mut T, src: &str, dst: &str) {
    t.root(LogOp::Rename {
        src: src.into(),
        dst: dst.into(),
        into_dir: false,
    })
    .unwrap();
}

fn len(t: &T, p: &str) -> u64 {
    t.ns.stat(ROOT_USER, p).unwrap().length
}

fn diff(t: &T, p: &str, from: &str, to: &str) -> String {
    t.ns.snapshot_diff(ROOT_USER, p, from, to)
        .unwrap()
        .to_string()
}

#[test]
fn creating_a_snapshot_copies_nothing() {
    let mut t = T::new();
    t.mkdir("/big");
    for i in 0..2000 {
        t.file(&format!("/big/f{i}"), 0);
    }
    allow(&mut t, "/big");
    let inodes = t.ns.inode_count();
    snapshot(&mut t, "/big", "s1");
    assert_eq!(t.ns.inode_count(), inodes);
    assert!(
        t.ns.snap.diffs.is_empty(),
        "no diff until something changes"
    );
    let l =
        t.ns.list(ROOT_USER, "/big/.snapshot/s1", None, 10_000)
            .unwrap();
    assert_eq!(l.entries.len(), 2000);
    // One change records one diff for the file and one for its directory.
    t.root(LogOp::SetPermission {
        path: "/big/f7".into(),
        mode: 0o600,
    })
    .unwrap();
    assert_eq!(t.ns.snap.diffs.len(), 1);
    assert_eq!(
        t.ns.stat(ROOT_USER, "/big/.snapshot/s1/f7").unwrap().mode,
        0o644
    );
    assert_eq!(t.ns.stat(ROOT_USER, "/big/f7").unwrap().mode, 0o600);
}

#[test]
fn a_deleted_file_reads_back_until_its_last_snapshot_goes() {
    let mut t = T::new();
    t.mkdir("/d/sub");
    t.file("/d/sub/f", 2);
    t.file("/d/g", 1);
    allow(&mut t, "/d");
    snapshot(&mut t, "/d", "s1");
    let blocks = t.block_ids("/d/sub/f");
    rm(&mut t, "/d/sub");
    t.reclaim_all();
    assert!(t.ns.stat(ROOT_USER, "/d/sub").is_err());
    assert_eq!(len(&t, "/d/.snapshot/s1/sub/f"), 2 * MB);
    assert_eq!(t.block_ids("/d/.snapshot/s1/sub/f"), blocks);
    assert_eq!(t.names("/d/.snapshot/s1"), vec!["g", "sub"]);
    assert_eq!(t.names("/d"), vec!["g"]);
    assert!(t.removed().is_empty(), "no block leaves while s1 holds it");
    for b in &blocks {
        assert!(t.ns.block(*b).is_some_and(|r| r.committed));
    }
    // A second snapshot after the delete does not hold it; deleting s1 frees it.
    snapshot(&mut t, "/d", "s2");
    assert!(t.ns.stat(ROOT_USER, "/d/.snapshot/s2/sub").is_err());
    delete_snapshot(&mut t, "/d", "s1");
    t.reclaim_all();
    assert_eq!(t.removed(), blocks);
    assert!(t.ns.block(blocks[0]).is_none());
    assert!(t.ns.stat(ROOT_USER, "/d/.snapshot/s1/sub/f").is_err());
    assert_eq!(t.names("/d/.snapshot/s2"), vec!["g"]);
    assert!(t.ns.snap.diffs.values().all(|v| !v.is_empty()));
}

#[test]
fn blocks_are_freed_only_after_the_last_referencing_snapshot() {
    let mut t = T::new();
    t.mkdir("/d");
    t.file("/d/f", 1);
    allow(&mut t, "/d");
    snapshot(&mut t, "/d", "s1");
    snapshot(&mut t, "/d", "s2");
    let blocks = t.block_ids("/d/f");
    rm(&mut t, "/d/f");
    delete_snapshot(&mut t, "/d", "s2");
    t.reclaim_all();
    assert!(t.removed().is_empty(), "s1 still holds the file");
    assert_eq!(len(&t, "/d/.snapshot/s1/f"), MB);
    delete_snapshot(&mut t, "/d", "s1");
    t.reclaim_all();
    assert_eq!(t.removed(), blocks);
    let before = t.ns.inode_count();
    assert_eq!(before, 2, "the root and /d are left");
}

#[test]
fn renames_after_a_snapshot_keep_the_old_names_there() {
    let mut t = T::new();
    t.mkdir("/d/a");
    t.mkdir("/other");
    t.file("/d/a/x", 1);
    t.file("/d/y", 1);
    allow(&mut t, "/d");
    snapshot(&mut t, "/d", "s1");
    mv(&mut t, "/d/a", "/d/b");
    mv(&mut t, "/d/y", "/other/y");
    // The moved file changes after leaving: the snapshot keeps the old state.
    t.append(ROOT_USER, "/other/y", &[10]).unwrap();
    assert_eq!(t.names("/d/.snapshot/s1"), vec!["a", "y"]);
    assert_eq!(len(&t, "/d/.snapshot/s1/a/x"), MB);
    assert_eq!(len(&t, "/d/.snapshot/s1/y"), MB);
    assert_eq!(len(&t, "/other/y"), MB + 10);
    assert!(t.ns.stat(ROOT_USER, "/d/.snapshot/s1/b").is_err());
    assert_eq!(t.names("/d"), vec!["b"]);
    assert_eq!(
        diff(&t, "/d", "s1", "."),
        "Difference between snapshot s1 and current directory under directory /d:\nM\t.\nR\t./a -> ./b\n-\t./y\n"
    );
    assert_eq!(
        diff(&t, "/d", ".", "s1"),
        "Difference between current directory and snapshot s1 under directory /d:\nM\t.\nR\t./b -> ./a\n+\t./y\n"
    );
}

#[test]
fn appends_and_truncates_after_a_snapshot_read_back_as_before() {
    let mut t = T::new();
    t.mkdir("/d");
    t.file_of(ROOT_USER, "/d/f", &[MB, MB, 100]).unwrap();
    t.file_of(ROOT_USER, "/d/g", &[MB, 500]).unwrap();
    allow(&mut t, "/d");
    snapshot(&mut t, "/d", "s1");
    let f_blocks = t.block_ids("/d/f");
    t.append(ROOT_USER, "/d/f", &[7]).unwrap();
    let appended = *t.block_ids("/d/f").last().unwrap();
    assert_eq!(len(&t, "/d/f"), 2 * MB + 107);
    assert_eq!(len(&t, "/d/.snapshot/s1/f"), 2 * MB + 100);
    assert_eq!(t.block_ids("/d/.snapshot/s1/f"), f_blocks);
    // Truncate at a block boundary: the dropped blocks stay for s1.
    t.events.clear();
    let r = t.root(LogOp::Truncate {
        path: "/d/f".into(),
        length: MB,
    });
    assert_eq!(r, Ok(Outcome::Bool(true)));
    assert_eq!(
        t.removed(),
        vec![appended],
        "only the block no snapshot holds leaves"
    );
    assert_eq!(len(&t, "/d/f"), MB);
    assert_eq!(t.block_ids("/d/.snapshot/s1/f"), f_blocks);
    // Truncate inside a block a snapshot holds: copy-on-truncate.
    let g_blocks = t.block_ids("/d/g");
    let r = t.root(LogOp::Truncate {
        path: "/d/g".into(),
        length: 10,
    });
    assert_eq!(r, Ok(Outcome::Bool(false)));
    let now = t.block_ids("/d/g");
    assert_eq!(now.len(), 1);
    assert!(!g_blocks.contains(&now[0]), "a new block for the cut copy");
    assert!(t.ns.stat(ROOT_USER, "/d/g").unwrap().under_construction);
    assert_eq!(t.block_ids("/d/.snapshot/s1/g"), g_blocks);
    let pending = t.ns.pending_truncates();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].truncation.source.id, g_blocks[0]);
    assert!(t.removed().is_empty());
    assert_eq!(
        diff(&t, "/d", "s1", "."),
        "Difference between snapshot s1 and current directory under directory /d:\nM\t./f\nM\t./g\n"
    );
    // Deleting the snapshot frees what only it held.
    delete_snapshot(&mut t, "/d", "s1");
    let mut gone = t.removed();
    gone.sort_unstable();
    let mut want: Vec<u64> = f_blocks[1..].to_vec();
    want.push(g_blocks[0]);
    want.extend(&g_blocks[1..]);
    want.sort_unstable();
    assert_eq!(gone, want);
}

#[test]
fn snapshot_rules_follow_hdfs() {
    let mut t = T::new();
    t.mkdir("/a/b/c");
    allow(&mut t, "/a/b");
    for p in ["/a", "/a/b/c"] {
        let r = t.root(LogOp::AllowSnapshot { path: p.into() });
        assert!(
            matches!(r, Err(FsError::Snapshot(m)) if m.contains("Nested snapshottable")),
            "{p}"
        );
    }
    snapshot(&mut t, "/a/b", "s1");
    let dup = t.root(LogOp::CreateSnapshot {
        path: "/a/b".into(),
        name: Some("s1".into()),
    });
    assert!(matches!(dup, Err(FsError::Snapshot(_))));
    assert!(matches!(
        t.root(LogOp::DisallowSnapshot {
            path: "/a/b".into()
        }),
        Err(FsError::Snapshot(_))
    ));
    assert!(matches!(
        t.root(LogOp::Delete {
            path: "/a".into(),
            recursive: true
        }),
        Err(FsError::Snapshot(_))
    ));
    // Snapshots are read-only; `.snapshot` is a reserved name.
    let w = t.root(LogOp::Mkdirs {
        path: "/a/b/.snapshot/s1/x".into(),
        mode: 0o755,
        parents: false,
    });
    assert!(matches!(w, Err(FsError::SnapshotReadOnly(_))));
    assert!(matches!(
        t.create(ROOT_USER, "/a/.snapshot"),
        Err(FsError::InvalidPath { .. })
    ));
    // Only the owner (or the superuser) takes snapshots; only the superuser allows them.
    assert!(matches!(
        t.as_user(
            "bob",
            LogOp::CreateSnapshot {
                path: "/a/b".into(),
                name: None
            }
        ),
        Err(FsError::PermissionDenied { .. })
    ));
    t.root(LogOp::RenameSnapshot {
        path: "/a/b".into(),
        old: "s1".into(),
        new: "t1".into(),
    })
    .unwrap();
    assert_eq!(t.names("/a/b/.snapshot"), vec!["t1"]);
    let dirs = t.ns.snapshottable_dirs(ROOT_USER).unwrap();
    assert_eq!((dirs[0].path.as_str(), dirs[0].snapshots), ("/a/b", 1));
    assert!(t.ns.stat(ROOT_USER, "/a/b").unwrap().snapshot_enabled);
    // A default name is HDFS's `sYYYYMMDD-HHMMSS.mmm`.
    let out = t
        .root(LogOp::CreateSnapshot {
            path: "/a/b".into(),
            name: None,
        })
        .unwrap();
    let Outcome::Path(p) = out else { panic!() };
    assert!(p.starts_with("/a/b/.snapshot/s1970"), "{p}");
}

#[test]
fn snapshots_round_trip_through_the_snapshot_stream() {
    let mut t = T::new();
    t.mkdir("/d/sub");
    t.file("/d/sub/f", 2);
    t.file("/d/g", 1);
    allow(&mut t, "/d");
    snapshot(&mut t, "/d", "s1");
    rm(&mut t, "/d/sub");
    mv(&mut t, "/d/g", "/d/h");
    t.root(LogOp::SetQuota {
        path: "/d".into(),
        namespace: tdfs_proto::quota::QuotaChange::Set(100),
        space: tdfs_proto::quota::QuotaChange::Keep,
    })
    .unwrap();
    t.root(LogOp::ChangeAcl {
        path: "/d/h".into(),
        change: tdfs_proto::acl::AclChange::Modify(
            tdfs_proto::acl::parse_spec("user:bob:r--", true).unwrap(),
        ),
    })
    .unwrap();
    t.root(LogOp::SetXAttr {
        path: "/d/h".into(),
        name: "user.k".into(),
        value: b"v".to_vec(),
        flags: tdfs_proto::xattr::XAttrFlags::EITHER,
    })
    .unwrap();
    let mut bytes = Vec::new();
    t.ns.freeze().write(&mut bytes).unwrap();
    let back = Namespace::read_snapshot(&mut bytes.as_slice()).unwrap();
    let mut again = Vec::new();
    back.freeze().write(&mut again).unwrap();
    assert_eq!(bytes, again, "the same state writes the same bytes");
    assert_eq!(
        back.stat(ROOT_USER, "/d/.snapshot/s1/sub/f")
            .unwrap()
            .length,
        2 * MB
    );
    assert!(back.stat(ROOT_USER, "/d/.snapshot/s1/g").is_ok());
    assert!(back.stat(ROOT_USER, "/d/h").unwrap().has_acl);
    assert_eq!(
        back.quota_usage(ROOT_USER, "/d").unwrap().ns_quota,
        Some(100)
    );
    assert_eq!(back.get_xattrs(ROOT_USER, "/d/h", &[]).unwrap().len(), 1);
    assert_eq!(
        back.snapshot_diff(ROOT_USER, "/d", "s1", ".").unwrap(),
        t.ns.snapshot_diff(ROOT_USER, "/d", "s1", ".").unwrap()
    );
    let mut blocks = 0;
    back.for_each_block(|_| blocks += 1);
    assert_eq!(
        blocks, 3,
        "the snapshot-only blocks are tracked after a reload"
    );
}

/// Every replica must give a new inode the same id whatever its history:
/// log operations (a truncate's commit, a reclaim step) and clients name
/// inodes by id. A member that loaded a snapshot and one that applied the
/// same log from the start hold the same free slots; they must also pick
/// the same one.
#[test]
fn a_loaded_namespace_allocates_the_same_inode_ids_as_the_one_it_came_from() {
    let mut t = T::new();
    t.mkdir("/d");
    for i in 0..6 {
        t.file(&format!("/d/f{i}"), 1);
    }
    // Freed in an order that is neither ascending nor descending.
    for i in [1, 4, 2] {
        t.root(LogOp::Delete {
            path: format!("/d/f{i}"),
            recursive: false,
        })
        .unwrap();
    }
    while t.ns.pending_reclaim() > 0 {
        t.sys(LogOp::Reclaim { budget: 1_000 }).unwrap();
    }
    let mut bytes = Vec::new();
    t.ns.freeze().write(&mut bytes).unwrap();
    let mut loaded = T::new();
    loaded.ns = Namespace::read_snapshot(&mut bytes.as_slice()).unwrap();
    loaded.now = t.now;
    loaded.seq = t.seq;
    for i in 0..4 {
        let p = format!("/d/g{i}");
        t.file(&p, 1);
        loaded.file(&p, 1);
        let (a, b) = (
            t.ns.stat(ROOT_USER, &p).unwrap().inode,
            loaded.ns.stat(ROOT_USER, &p).unwrap().inode,
        );
        assert_eq!(
            a, b,
            "{p}: inode id {a:#x} live, {b:#x} after a snapshot load"
        );
    }
    let mut again = Vec::new();
    loaded.ns.freeze().write(&mut again).unwrap();
    let mut live = Vec::new();
    t.ns.freeze().write(&mut live).unwrap();
    assert!(
        live == again,
        "the two replicas' states differ after the same operations"
    );
}
