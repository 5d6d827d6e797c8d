//! Unit tests of the namespace through its public operations.

use crate::inode::Usage;
use crate::op::{LogOp, NsEvent, Outcome, Stamp};
use crate::Namespace;
use tdfs_proto::ids::CallId;
use tdfs_proto::meta::BlockInfo;
use tdfs_proto::{DatanodeId, FsError};

mod acl;
mod edit;
mod quota;
mod reclaim;
mod replicas;
mod retry_clock;
mod snapshot;
mod snapshot_model;
mod xattr;

const ROOT_USER: &str = "hdfs";
const HOLDER: u64 = 7;

/// A namespace with a clock and a call counter.
struct T {
    ns: Namespace,
    now: u64,
    seq: u64,
    events: Vec<NsEvent>,
}

impl T {
    fn new() -> T {
        let mut t = T {
            ns: Namespace::new(),
            now: 1_000,
            seq: 0,
            events: Vec::new(),
        };
        t.sys(LogOp::Init {
            superuser: ROOT_USER.into(),
            supergroup: "supergroup".into(),
        })
        .unwrap();
        t
    }

    fn stamp(&mut self, user: &str, client: Option<u64>) -> Stamp {
        self.now += 1;
        self.seq += 1;
        Stamp {
            user: user.into(),
            call: client.map(|c| CallId {
                client: c,
                seq: self.seq,
            }),
            now: self.now,
            tick: self.now,
        }
    }

    fn sys(&mut self, op: LogOp) -> Result<Outcome, FsError> {
        let s = self.stamp(ROOT_USER, None);
        self.ns.apply(&s, &op, &mut self.events)
    }

    fn as_user(&mut self, user: &str, op: LogOp) -> Result<Outcome, FsError> {
        let s = self.stamp(user, Some(HOLDER));
        self.ns.apply(&s, &op, &mut self.events)
    }

    fn root(&mut self, op: LogOp) -> Result<Outcome, FsError> {
        self.as_user(ROOT_USER, op)
    }

    fn mkdir(&mut self, p: &str) {
        self.root(LogOp::Mkdirs {
            path: p.into(),
            mode: 0o755,
            parents: true,
        })
        .unwrap();
    }

    fn create(&mut self, user: &str, p: &str) -> Result<Outcome, FsError> {
        self.as_user(
            user,
            LogOp::Create {
                path: p.into(),
                overwrite: false,
                replication: 3,
                block_size: 1 << 20,
                mode: 0o644,
                create_parents: false,
            },
        )
    }

    /// Creates a closed file of `blocks` full blocks.
    fn file(&mut self, p: &str, blocks: usize) {
        self.create(ROOT_USER, p).unwrap();
        let mut prev = None;
        for _ in 0..blocks {
            let b = self.add_block(p, prev.clone());
            prev = Some(BlockInfo {
                len: 1 << 20,
                sha256: Some([1; 32]),
                ..b
            });
        }
        self.root(LogOp::Complete {
            path: p.into(),
            last: prev,
        })
        .unwrap();
    }

    /// Writes a closed file of blocks of the given lengths.
    fn file_of(&mut self, user: &str, p: &str, lens: &[u64]) -> Result<(), FsError> {
        self.create(user, p)?;
        self.append_blocks(user, p, lens)
    }

    /// Adds committed blocks of the given lengths to an open file and closes it.
    fn append_blocks(&mut self, user: &str, p: &str, lens: &[u64]) -> Result<(), FsError> {
        let mut prev: Option<BlockInfo> = None;
        for (i, len) in lens.iter().enumerate() {
            let b = match self.as_user(
                user,
                LogOp::AddBlock {
                    path: p.into(),
                    previous: prev.clone(),
                    targets: vec![DatanodeId("dn1".into())],
                },
            )? {
                Outcome::Block { block, .. } => block,
                other => panic!("{other:?}"),
            };
            prev = Some(BlockInfo {
                len: *len,
                sha256: Some([i as u8 + 1; 32]),
                ..b
            });
        }
        self.as_user(
            user,
            LogOp::Complete {
                path: p.into(),
                last: prev,
            },
        )?;
        Ok(())
    }

    fn append(&mut self, user: &str, p: &str, lens: &[u64]) -> Result<(), FsError> {
        self.as_user(user, LogOp::Append { path: p.into() })?;
        self.append_blocks(user, p, lens)
    }

    /// The block ids of a file as `path` shows it.
    fn block_ids(&self, p: &str) -> Vec<u64> {
        self.ns
            .locate(ROOT_USER, p, 0, u64::MAX)
            .unwrap()
            .blocks
            .iter()
            .map(|b| b.block.id)
            .collect()
    }

    /// Block ids removed by the events so far (and forgets the events).
    fn removed(&mut self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .events
            .drain(..)
            .filter_map(|e| match e {
                NsEvent::BlockRemoved { id } => Some(id),
                _ => None,
            })
            .collect();
        v.sort_unstable();
        v
    }

    /// Frees whatever deleted subtrees wait to be freed.
    fn reclaim_all(&mut self) {
        while self.ns.pending_reclaim() > 0 {
            self.sys(LogOp::Reclaim { budget: 100_000 }).unwrap();
        }
    }

    fn add_block(&mut self, p: &str, previous: Option<BlockInfo>) -> BlockInfo {
        match self
            .root(LogOp::AddBlock {
                path: p.into(),
                previous,
                targets: vec![DatanodeId("dn1".into())],
            })
            .unwrap()
        {
            Outcome::Block { block, .. } => block,
            other => panic!("{other:?}"),
        }
    }

    fn names(&self, p: &str) -> Vec<String> {
        self.ns
            .list(ROOT_USER, p, None, 10_000)
            .unwrap()
            .entries
            .into_iter()
            .map(|s| s.name)
            .collect()
    }

    fn usage(&self, p: &str) -> Usage {
        let s = self.ns.summary(ROOT_USER, p).unwrap();
        Usage {
            files: s.file_count,
            dirs: s.directory_count,
            bytes: s.length,
            space: s.space_consumed,
        }
    }
}

#[test]
fn mkdirs_create_list_and_stat() {
    let mut t = T::new();
    t.mkdir("/a/b/c");
    assert_eq!(t.names("/a"), vec!["b"]);
    for n in ["z", "m", "a"] {
        t.file(&format!("/a/{n}"), 0);
    }
    assert_eq!(t.names("/a"), vec!["a", "b", "m", "z"]);
    let st = t.ns.stat(ROOT_USER, "/a/m").unwrap();
    assert_eq!((st.name.as_str(), st.length, st.replication), ("m", 0, 3));
    assert!(!st.under_construction);
    assert!(t.ns.stat(ROOT_USER, "/a/b").unwrap().is_dir());
    assert!(matches!(
        t.ns.stat(ROOT_USER, "/nope"),
        Err(FsError::FileNotFound(_))
    ));
    assert!(matches!(
        t.root(LogOp::Mkdirs {
            path: "/a/m/x".into(),
            mode: 0o755,
            parents: true
        }),
        Err(FsError::NotADirectory(_))
    ));
    assert!(matches!(
        t.root(LogOp::Mkdirs {
            path: "/q/r".into(),
            mode: 0o755,
            parents: false
        }),
        Err(FsError::FileNotFound(_))
    ));
}

#[test]
fn listing_pages_resume_after_a_name() {
    let mut t = T::new();
    t.mkdir("/d");
    for i in 0..2500 {
        t.file(&format!("/d/f{i:05}"), 0);
    }
    let mut after: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let page = t.ns.list(ROOT_USER, "/d", after.as_deref(), 1000).unwrap();
        let n = page.entries.len();
        seen.extend(page.entries.into_iter().map(|e| e.name));
        assert_eq!(page.remaining as usize, 2500 - seen.len());
        if page.remaining == 0 {
            break;
        }
        assert_eq!(n, 1000);
        after = seen.last().cloned();
    }
    let expect: Vec<String> = (0..2500).map(|i| format!("f{i:05}")).collect();
    assert_eq!(seen, expect);
}

#[test]
fn usage_follows_every_change() {
    let mut t = T::new();
    t.mkdir("/u/v");
    t.file("/u/v/f", 2);
    let mb = 1 << 20;
    assert_eq!(
        t.usage("/u"),
        Usage {
            files: 1,
            dirs: 2,
            bytes: 2 * mb,
            space: 6 * mb
        }
    );
    // Open block: charged a whole block times replication.
    t.create(ROOT_USER, "/u/g").unwrap();
    t.add_block("/u/g", None);
    assert_eq!(t.usage("/u").space, 6 * mb + 3 * mb);
    t.root(LogOp::SetReplication {
        path: "/u/v/f".into(),
        replication: 1,
    })
    .unwrap();
    assert_eq!(t.usage("/u/v").space, 2 * mb);
    t.mkdir("/w");
    t.root(LogOp::Rename {
        src: "/u/v".into(),
        dst: "/w".into(),
        into_dir: true,
    })
    .unwrap();
    assert_eq!(t.usage("/w").files, 1);
    assert_eq!(t.usage("/w").dirs, 2);
    assert_eq!(t.usage("/u").files, 1);
    t.root(LogOp::Delete {
        path: "/w".into(),
        recursive: true,
    })
    .unwrap();
    let root = t.usage("/");
    assert_eq!((root.files, root.dirs), (1, 2));
}

#[test]
fn permissions_are_enforced_for_other_users() {
    let mut t = T::new();
    t.mkdir("/p");
    t.root(LogOp::SetPermission {
        path: "/p".into(),
        mode: 0o755,
    })
    .unwrap();
    assert!(matches!(
        t.create("bob", "/p/x"),
        Err(FsError::PermissionDenied { .. })
    ));
    t.root(LogOp::SetOwner {
        path: "/p".into(),
        owner: Some("bob".into()),
        group: None,
    })
    .unwrap();
    t.create("bob", "/p/x").unwrap();
    assert_eq!(t.ns.stat("bob", "/p/x").unwrap().owner, "bob");
    // Alice may not delete bob's file from bob's directory.
    assert!(matches!(
        t.as_user(
            "alice",
            LogOp::Delete {
                path: "/p/x".into(),
                recursive: false
            }
        ),
        Err(FsError::PermissionDenied { .. })
    ));
    // Bob may not give his file away.
    assert!(matches!(
        t.as_user(
            "bob",
            LogOp::SetOwner {
                path: "/p/x".into(),
                owner: Some("alice".into()),
                group: None
            }
        ),
        Err(FsError::PermissionDenied { .. })
    ));
    // No traverse permission hides what is below.
    t.root(LogOp::SetPermission {
        path: "/p".into(),
        mode: 0o700,
    })
    .unwrap();
    assert!(matches!(
        t.ns.stat("alice", "/p/x"),
        Err(FsError::PermissionDenied { .. })
    ));
}

#[test]
fn a_lease_keeps_other_writers_out_until_complete() {
    let mut t = T::new();
    t.create(ROOT_USER, "/f").unwrap();
    let other = t.stamp(ROOT_USER, Some(99));
    let r = t.ns.apply(
        &other,
        &LogOp::Append { path: "/f".into() },
        &mut Vec::new(),
    );
    assert!(matches!(r, Err(FsError::LeaseConflict { .. })));
    let b = t.add_block("/f", None);
    // Completing without committing the open block is refused.
    assert!(t
        .root(LogOp::Complete {
            path: "/f".into(),
            last: None
        })
        .is_err());
    t.root(LogOp::Complete {
        path: "/f".into(),
        last: Some(BlockInfo { len: 10, ..b }),
    })
    .unwrap();
    assert_eq!(t.ns.stat(ROOT_USER, "/f").unwrap().length, 10);
    let other = t.stamp(ROOT_USER, Some(99));
    let r = t.ns.apply(
        &other,
        &LogOp::Append { path: "/f".into() },
        &mut Vec::new(),
    );
    assert!(r.is_ok());
}

#[test]
fn retries_are_answered_from_the_cache() {
    let mut t = T::new();
    let s = t.stamp(ROOT_USER, Some(5));
    let op = LogOp::Mkdirs {
        path: "/r".into(),
        mode: 0o755,
        parents: false,
    };
    assert_eq!(
        t.ns.apply(&s, &op, &mut Vec::new()).unwrap(),
        Outcome::Bool(true)
    );
    // Applied again (a retry after a failover): the first answer, not
    // AlreadyExists.
    assert_eq!(
        t.ns.apply(&s, &op, &mut Vec::new()).unwrap(),
        Outcome::Bool(true)
    );
}

#[test]
fn lease_recovery_is_a_compare_and_set() {
    let mut t = T::new();
    t.create(ROOT_USER, "/l").unwrap();
    let b1 = t.add_block("/l", None);
    // A decision taken when the open block was b1 at its first generation
    // must not apply once the writer moved on to a new generation.
    let newer = match t
        .root(LogOp::UpdatePipeline {
            path: "/l".into(),
            block: b1.id,
            targets: vec![],
        })
        .unwrap()
    {
        Outcome::Block { block, .. } => block,
        o => panic!("{o:?}"),
    };
    let stale = LogOp::RecoverLease {
        path: "/l".into(),
        holder: HOLDER,
        expect: Some((b1.id, b1.gen)),
        last: None,
        drop_last: true,
    };
    assert_eq!(t.sys(stale).unwrap(), Outcome::Bool(false));
    assert!(t.ns.stat(ROOT_USER, "/l").unwrap().under_construction);
    let fresh = LogOp::RecoverLease {
        path: "/l".into(),
        holder: HOLDER,
        expect: Some((newer.id, newer.gen)),
        last: Some(BlockInfo { len: 5, ..newer }),
        drop_last: false,
    };
    assert_eq!(t.sys(fresh).unwrap(), Outcome::Bool(true));
    let st = t.ns.stat(ROOT_USER, "/l").unwrap();
    assert!(!st.under_construction);
    assert_eq!(st.length, 5);
}

#[test]
fn a_large_delete_is_freed_in_bounded_steps() {
    let mut t = T::new();
    t.mkdir("/big");
    for i in 0..3000 {
        t.file(&format!("/big/f{i}"), 1);
    }
    let before = t.ns.inode_count();
    t.events.clear();
    t.root(LogOp::Delete {
        path: "/big".into(),
        recursive: true,
    })
    .unwrap();
    // Gone from the tree at once, freed later.
    assert!(t.ns.stat(ROOT_USER, "/big").is_err());
    assert_eq!(t.usage("/").files, 0);
    assert_eq!(t.ns.inode_count(), before);
    assert_eq!(t.ns.pending_reclaim(), 3001);
    let mut steps = 0;
    while t.ns.pending_reclaim() > 0 {
        t.sys(LogOp::Reclaim { budget: 1000 }).unwrap();
        steps += 1;
    }
    assert_eq!(steps, 4);
    assert_eq!(t.ns.inode_count(), before - 3001);
    let removed = t
        .events
        .iter()
        .filter(|e| matches!(e, NsEvent::BlockRemoved { .. }))
        .count();
    assert_eq!(removed, 3000);
}

#[test]
fn snapshots_round_trip_and_are_canonical() {
    let mut t = T::new();
    t.mkdir("/s/t");
    t.file("/s/a", 2);
    t.file("/s/t/b", 1);
    t.create(ROOT_USER, "/s/open").unwrap();
    t.add_block("/s/open", None);
    t.root(LogOp::Delete {
        path: "/s/a".into(),
        recursive: false,
    })
    .unwrap();
    let mut bytes = Vec::new();
    t.ns.freeze().write(&mut bytes).unwrap();
    let back = Namespace::read_snapshot(&mut bytes.as_slice()).unwrap();
    let mut again = Vec::new();
    back.freeze().write(&mut again).unwrap();
    assert_eq!(bytes, again, "the same state writes the same bytes");
    assert_eq!(back.stat(ROOT_USER, "/s/t/b").unwrap().length, 1 << 20);
    assert!(back.stat(ROOT_USER, "/s/open").unwrap().under_construction);
    assert_eq!(back.open_files().len(), 1);
    // Damage anywhere is detected.
    for at in [3, 12, bytes.len() / 2, bytes.len() - 2] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x40;
        assert!(
            Namespace::read_snapshot(&mut bad.as_slice()).is_err(),
            "{at}"
        );
    }
    assert!(Namespace::read_snapshot(&mut &bytes[..bytes.len() - 5]).is_err());
}

#[test]
fn freezing_shares_pages_with_later_changes() {
    let mut t = T::new();
    t.mkdir("/f");
    t.file("/f/x", 0);
    let frozen = t.ns.freeze();
    t.file("/f/y", 0);
    let mut bytes = Vec::new();
    frozen.write(&mut bytes).unwrap();
    let old = Namespace::read_snapshot(&mut bytes.as_slice()).unwrap();
    assert!(old.stat(ROOT_USER, "/f/y").is_err());
    assert!(t.ns.stat(ROOT_USER, "/f/y").is_ok());
}

#[test]
fn walks_resume_across_chunks_in_name_order() {
    let mut t = T::new();
    t.mkdir("/w/b");
    t.mkdir("/w/a");
    for i in 0..50 {
        t.file(&format!("/w/a/f{i:02}"), 0);
    }
    t.file("/w/b/g", 0);
    let mut w = t.ns.walk_start(ROOT_USER, "/w").unwrap();
    let mut paths = Vec::new();
    while !w.done() {
        t.ns.walk(&mut w, 7, &mut |v| paths.push(t.ns.path_of(v.slot)));
    }
    assert_eq!(paths.len(), 1 + 2 + 50 + 1);
    assert_eq!(paths[0], "/w");
    assert_eq!(paths[1], "/w/a");
    assert_eq!(paths[2], "/w/a/f00");
    assert_eq!(paths.last().unwrap(), "/w/b/g");
}

/// A call that failed with a retriable error (it reached the leader before
/// the namespace was initialized) had no effect, and the client is told to
/// retry it with the same call id; the retry must be applied, not answered
/// with the remembered failure.
#[test]
fn a_retriable_failure_is_not_remembered() {
    let mut ns = Namespace::new();
    let call = CallId { client: 7, seq: 1 };
    let s = Stamp {
        user: ROOT_USER.into(),
        call: Some(call),
        now: 1,
        tick: 1,
    };
    let op = LogOp::Mkdirs {
        path: "/early".into(),
        mode: 0o755,
        parents: true,
    };
    let mut ev = Vec::new();
    let r = ns.apply(&s, &op, &mut ev);
    assert!(matches!(&r, Err(e) if e.is_retriable()), "{r:?}");
    let init = LogOp::Init {
        superuser: ROOT_USER.into(),
        supergroup: "supergroup".into(),
    };
    let sys = Stamp {
        user: ROOT_USER.into(),
        call: None,
        now: 2,
        tick: 2,
    };
    ns.apply(&sys, &init, &mut ev).unwrap();
    assert_eq!(ns.apply(&s, &op, &mut ev), Ok(Outcome::Bool(true)));
    assert_eq!(ns.apply(&s, &op, &mut ev), Ok(Outcome::Bool(true)));
    assert_eq!(ns.retry_result(call), Some(Ok(Outcome::Bool(true))));
}
