//! Freeing deleted subtrees in `Reclaim` steps while a Raft snapshot may be
//! taken at any point: every intermediate state must load, and a member
//! that loaded it must end with the same bytes as one that did not.

use super::T;
use crate::op::LogOp;
use crate::Namespace;

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
