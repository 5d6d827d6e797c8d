//! Freeing deleted subtrees in `Reclaim` steps while a Raft snapshot may be
//! taken at any point: every intermediate state must load, and a member
//! that loaded it must end with the same bytes as one that did not.

use super::{ROOT_USER, T};
use crate::op::LogOp;
use crate::op::Outcome;
use crate::Namespace;
use tdfs_proto::meta::BlockInfo;

/// The namespace's snapshot stream.
fn bytes(ns: &Namespace) -> Vec<u8> {
    let mut b = Vec::new();
    ns.freeze().write(&mut b).unwrap();
    b
}

/// A copy of `t` loaded from its own snapshot stream (a restarted member).
fn reloaded(t: &T) -> T {
    let ns = Namespace::read_snapshot(&mut bytes(&t.ns).as_slice())
        .unwrap_or_else(|e| panic!("the snapshot of a valid state does not load: {e}"));
    T {
        ns,
        now: t.now,
        seq: t.seq,
        events: Vec::new(),
    }
}

/// Applies `op` to both and checks they answer alike.
fn both(a: &mut T, b: &mut T, op: LogOp) {
    let x = a.sys(op.clone());
    let y = b.sys(op.clone());
    assert_eq!(x, y, "{op:?}");
}

#[test]
fn a_snapshot_taken_in_the_middle_of_a_large_delete_loads() {
    let mut t = T::new();
    t.mkdir("/big/sub");
    for i in 0..1100 {
        t.file(&format!("/big/sub/f{i}"), 1);
    }
    t.root(LogOp::Delete {
        path: "/big".into(),
        recursive: true,
    })
    .unwrap();
    // `/big` and `/big/sub` freed, the files still queued.
    t.sys(LogOp::Reclaim { budget: 2 }).unwrap();
    assert!(t.ns.pending_reclaim() > 1000);
    let mut r = reloaded(&t);
    while t.ns.pending_reclaim() > 0 {
        both(&mut t, &mut r, LogOp::Reclaim { budget: 300 });
    }
    assert_eq!(r.ns.pending_reclaim(), 0);
    assert!(bytes(&t.ns) == bytes(&r.ns), "the members differ");
}

/// A file replaced while a snapshot saw it is kept by the snapshot; when the
/// snapshot goes it is queued for freeing, and a later delete of its
/// directory must not leave the new file pointing at a freed parent.
#[test]
fn a_replaced_file_freed_by_a_snapshot_deletion_then_its_directory_deleted() {
    let mut t = T::new();
    t.mkdir("/a/d");
    t.file("/a/d/f", 0);
    t.root(LogOp::AllowSnapshot { path: "/a".into() }).unwrap();
    t.root(LogOp::CreateSnapshot {
        path: "/a".into(),
        name: Some("s1".into()),
    })
    .unwrap();
    t.root(LogOp::Create {
        path: "/a/d/f".into(),
        overwrite: true,
        replication: 3,
        block_size: 1 << 20,
        mode: 0o644,
        create_parents: false,
    })
    .unwrap();
    t.root(LogOp::DeleteSnapshot {
        path: "/a".into(),
        name: "s1".into(),
    })
    .unwrap();
    let live = t.ns.inode_count();
    t.root(LogOp::Delete {
        path: "/a/d".into(),
        recursive: true,
    })
    .unwrap();
    // A small delete is freed at once; the old file, queued when the
    // snapshot went, waits for a reclaim step.
    assert_eq!(t.ns.inode_count(), live - 2);
    assert_eq!(t.ns.pending_reclaim(), 1);
    let mut r = reloaded(&t);
    both(&mut t, &mut r, LogOp::Reclaim { budget: 10 });
    assert_eq!(t.ns.inode_count(), live - 3);
    assert!(bytes(&t.ns) == bytes(&r.ns), "the members differ");
}

/// Commits the one truncation in progress, as the leader's recovery does.
fn commit_truncate(t: &mut T) {
    let p = t.ns.pending_truncates().pop().expect("a truncation");
    let block = BlockInfo {
        id: p.truncation.target,
        gen: p.truncation.gen,
        len: p.truncation.len,
        sha256: Some([7; 32]),
    };
    let r = t.sys(LogOp::CommitTruncate {
        file: p.file,
        block,
    });
    assert_eq!(r, Ok(Outcome::Bool(true)));
}

/// A file moved out of a snapshot and deleted in the middle of a truncate
/// is kept, detached; its old directory is freed. Committing the truncate
/// must not carry its usage to that (freed) directory.
#[test]
fn a_truncate_of_a_deleted_file_a_snapshot_keeps_commits() {
    let mut t = T::new();
    t.mkdir("/a");
    t.mkdir("/c/d");
    t.file_of(ROOT_USER, "/a/f", &[10, 10]).unwrap();
    t.root(LogOp::AllowSnapshot { path: "/a".into() }).unwrap();
    t.root(LogOp::CreateSnapshot {
        path: "/a".into(),
        name: Some("s1".into()),
    })
    .unwrap();
    t.root(LogOp::Rename {
        src: "/a/f".into(),
        dst: "/c/d/f".into(),
        into_dir: false,
    })
    .unwrap();
    let cut = t.root(LogOp::Truncate {
        path: "/c/d/f".into(),
        length: 15,
    });
    assert_eq!(cut, Ok(Outcome::Bool(false)));
    for p in ["/c/d/f", "/c/d"] {
        let r = t.root(LogOp::Delete {
            path: p.into(),
            recursive: true,
        });
        assert_eq!(r, Ok(Outcome::Bool(true)));
    }
    let before = (t.usage("/"), t.usage("/c"));
    commit_truncate(&mut t);
    assert_eq!((t.usage("/"), t.usage("/c")), before);
    let mut r = reloaded(&t);
    both(&mut t, &mut r, LogOp::Reclaim { budget: 10 });
    assert!(bytes(&t.ns) == bytes(&r.ns), "the members differ");
}
