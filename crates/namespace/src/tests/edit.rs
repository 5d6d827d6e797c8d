//! Concat and truncate (without snapshots: see `snapshot.rs`).

use super::*;

const MB: u64 = 1 << 20;

fn concat(t: &mut T, target: &str, sources: &[&str]) -> Result<Outcome, FsError> {
    t.root(LogOp::Concat {
        target: target.into(),
        sources: sources.iter().map(|s| s.to_string()).collect(),
    })
}

#[test]
fn concat_moves_blocks_without_copying_and_removes_the_sources() {
    let mut t = T::new();
    t.mkdir("/c");
    t.file_of(ROOT_USER, "/c/t", &[MB, 10]).unwrap();
    t.file_of(ROOT_USER, "/c/a", &[MB]).unwrap();
    t.file_of(ROOT_USER, "/c/b", &[5, 6]).unwrap();
    let want: Vec<u64> = ["/c/t", "/c/a", "/c/b"]
        .iter()
        .flat_map(|p| t.block_ids(p))
        .collect();
    t.events.clear();
    concat(&mut t, "/c/t", &["/c/a", "/c/b"]).unwrap();
    assert_eq!(t.block_ids("/c/t"), want);
    assert_eq!(t.ns.stat(ROOT_USER, "/c/t").unwrap().length, 2 * MB + 21);
    assert_eq!(t.names("/c"), vec!["t"]);
    assert!(t.removed().is_empty(), "no block leaves");
    assert_eq!(t.usage("/c").files, 1);
    for b in &want {
        assert_eq!(
            t.ns.block(*b).unwrap().file,
            t.ns.lookup(ROOT_USER, "/c/t").unwrap()
        );
    }
}

#[test]
fn concat_preconditions_are_hdfs() {
    let mut t = T::new();
    t.mkdir("/c");
    t.mkdir("/elsewhere");
    t.file_of(ROOT_USER, "/c/t", &[MB]).unwrap();
    t.file_of(ROOT_USER, "/c/a", &[MB]).unwrap();
    t.file("/c/empty", 0);
    t.file_of(ROOT_USER, "/elsewhere/x", &[MB]).unwrap();
    for (srcs, what) in [
        (vec![], "No sources given"),
        (vec!["/elsewhere/x"], "not in the same directory"),
        (vec!["/c/empty"], "empty"),
        (vec!["/c/t"], "same with the target"),
        (
            vec!["/c/a", "/c/a"],
            "at least two of the source files are the same",
        ),
    ] {
        let r = concat(&mut t, "/c/t", &srcs);
        assert!(
            matches!(&r, Err(FsError::InvalidArgument(m)) if m.contains(what)),
            "{srcs:?}: {r:?}"
        );
    }
    t.root(LogOp::AllowSnapshot { path: "/c".into() }).unwrap();
    t.root(LogOp::CreateSnapshot {
        path: "/c".into(),
        name: Some("s".into()),
    })
    .unwrap();
    assert!(matches!(
        concat(&mut t, "/c/t", &["/c/a"]),
        Err(FsError::Snapshot(_))
    ));
}

#[test]
fn truncate_at_a_boundary_and_inside_a_block() {
    let mut t = T::new();
    t.file_of(ROOT_USER, "/f", &[MB, MB, 100]).unwrap();
    let ids = t.block_ids("/f");
    t.events.clear();
    assert_eq!(
        t.root(LogOp::Truncate {
            path: "/f".into(),
            length: MB
        }),
        Ok(Outcome::Bool(true))
    );
    assert_eq!(t.removed(), ids[1..].to_vec());
    assert!(matches!(
        t.root(LogOp::Truncate { path: "/f".into(), length: 2 * MB }),
        Err(FsError::InvalidArgument(m)) if m.contains("Cannot truncate to a larger file size")
    ));
    // Inside the last block: same block id, a new generation, under recovery.
    assert_eq!(
        t.root(LogOp::Truncate {
            path: "/f".into(),
            length: 10
        }),
        Ok(Outcome::Bool(false))
    );
    let st = t.ns.stat(ROOT_USER, "/f").unwrap();
    assert!(st.under_construction);
    assert_eq!(st.length, 10);
    let p = t.ns.pending_truncates().pop().unwrap();
    assert_eq!(
        (
            p.truncation.source.id,
            p.truncation.target,
            p.truncation.len
        ),
        (ids[0], ids[0], 10)
    );
    assert!(p.truncation.gen > p.truncation.source.gen);
    assert!(t
        .events
        .iter()
        .any(|e| matches!(e, NsEvent::BlockOpen { id, .. } if *id == ids[0])));
    // Writers wait for the recovery.
    assert!(matches!(
        t.as_user(ROOT_USER, LogOp::Append { path: "/f".into() }),
        Err(FsError::RecoveryInProgress(_))
    ));
    assert!(matches!(
        t.root(LogOp::Truncate {
            path: "/f".into(),
            length: 5
        }),
        Err(FsError::RecoveryInProgress(_))
    ));
    // A commit for another generation is ignored; the right one closes it.
    let mut block = BlockInfo {
        id: ids[0],
        gen: p.truncation.gen + 1,
        len: 10,
        sha256: Some([3; 32]),
    };
    assert_eq!(
        t.sys(LogOp::CommitTruncate {
            file: p.file,
            block: block.clone()
        }),
        Ok(Outcome::Bool(false))
    );
    block.gen = p.truncation.gen;
    assert_eq!(
        t.sys(LogOp::CommitTruncate {
            file: p.file,
            block
        }),
        Ok(Outcome::Bool(true))
    );
    let st = t.ns.stat(ROOT_USER, "/f").unwrap();
    assert!(!st.under_construction);
    assert_eq!(st.length, 10);
    assert!(t.ns.pending_truncates().is_empty());
    assert_eq!(t.usage("/").space, 30);
    t.append(ROOT_USER, "/f", &[5]).unwrap();
    assert_eq!(t.ns.stat(ROOT_USER, "/f").unwrap().length, 15);
}
