//! ACLs: enforcement for a user who is not the owner, inheritance of
//! default ACLs, who may change them.

use super::*;
use tdfs_proto::acl::{parse_spec, AclChange};

fn setfacl(t: &mut T, user: &str, p: &str, change: AclChange) -> Result<Outcome, FsError> {
    t.as_user(
        user,
        LogOp::ChangeAcl {
            path: p.into(),
            change,
        },
    )
}

fn modify(spec: &str) -> AclChange {
    AclChange::Modify(parse_spec(spec, true).unwrap())
}

fn entries(t: &T, p: &str) -> Vec<String> {
    t.ns.acl_status(ROOT_USER, p)
        .unwrap()
        .entries
        .iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn a_named_user_entry_grants_a_non_owner_what_the_mask_allows() {
    let mut t = T::new();
    t.mkdir("/d");
    t.root(LogOp::SetOwner {
        path: "/d".into(),
        owner: Some("alice".into()),
        group: None,
    })
    .unwrap();
    t.root(LogOp::SetPermission {
        path: "/d".into(),
        mode: 0o700,
    })
    .unwrap();
    t.file_of("alice", "/d/f", &[10]).unwrap();
    assert!(matches!(
        t.ns.list("bob", "/d", None, 10),
        Err(FsError::PermissionDenied { .. })
    ));
    // Only the owner (or the superuser) changes the ACL.
    assert!(matches!(
        setfacl(&mut t, "bob", "/d", modify("user:bob:r-x")),
        Err(FsError::PermissionDenied { .. })
    ));
    setfacl(&mut t, "alice", "/d", modify("user:bob:r-x")).unwrap();
    let st = t.ns.stat(ROOT_USER, "/d").unwrap();
    assert!(st.has_acl);
    assert_eq!(st.mode, 0o750, "the group bits are the mask");
    assert_eq!(entries(&t, "/d"), vec!["user:bob:r-x", "group::---"]);
    assert_eq!(t.ns.list("bob", "/d", None, 10).unwrap().entries.len(), 1);
    // bob may not write: neither his entry nor the mask allows it.
    assert!(matches!(
        t.create("bob", "/d/g"),
        Err(FsError::PermissionDenied { .. })
    ));
    // chmod narrows the mask: bob's r-x is masked to ---.
    t.as_user(
        "alice",
        LogOp::SetPermission {
            path: "/d".into(),
            mode: 0o700,
        },
    )
    .unwrap();
    assert!(matches!(
        t.ns.list("bob", "/d", None, 10),
        Err(FsError::PermissionDenied { .. })
    ));
    // Other users get nothing from bob's entry.
    setfacl(&mut t, "alice", "/d", modify("mask::rwx")).unwrap();
    assert!(t.ns.list("bob", "/d", None, 10).is_ok());
    assert!(matches!(
        t.ns.list("carol", "/d", None, 10),
        Err(FsError::PermissionDenied { .. })
    ));
    // -b removes it all and restores the group bits from group::.
    setfacl(&mut t, "alice", "/d", AclChange::RemoveAll).unwrap();
    let st = t.ns.stat(ROOT_USER, "/d").unwrap();
    assert!(!st.has_acl);
    assert_eq!(st.mode, 0o700);
    assert!(matches!(
        t.ns.list("bob", "/d", None, 10),
        Err(FsError::PermissionDenied { .. })
    ));
}

#[test]
fn default_entries_are_inherited_by_new_files_and_directories() {
    let mut t = T::new();
    t.mkdir("/p");
    setfacl(
        &mut t,
        ROOT_USER,
        "/p",
        modify("default:user:bob:rwx,default:group::r-x"),
    )
    .unwrap();
    assert_eq!(
        entries(&t, "/p"),
        vec![
            "default:user::rwx",
            "default:user:bob:rwx",
            "default:group::r-x",
            "default:mask::rwx",
            "default:other::r-x"
        ]
    );
    // A file created with mode 0666 (HDFS ignores the umask then).
    t.as_user(
        ROOT_USER,
        LogOp::Create {
            path: "/p/f".into(),
            overwrite: false,
            replication: 1,
            block_size: 1 << 20,
            mode: 0o666,
            create_parents: false,
        },
    )
    .unwrap();
    assert_eq!(entries(&t, "/p/f"), vec!["user:bob:rwx", "group::r-x"]);
    let st = t.ns.stat(ROOT_USER, "/p/f").unwrap();
    assert_eq!(
        st.mode, 0o664,
        "user rw- & rwx, mask rwx & rw-, other r-x & rw-"
    );
    // bob may write the new file through his inherited entry (masked rw-).
    assert!(t
        .as_user(
            "bob",
            LogOp::Append {
                path: "/p/f".into()
            }
        )
        .is_ok());
    // A directory gets the access entries and keeps the default ACL.
    t.root(LogOp::Mkdirs {
        path: "/p/sub/deeper".into(),
        mode: 0o777,
        parents: true,
    })
    .unwrap();
    let e = entries(&t, "/p/sub/deeper");
    assert!(e.contains(&"user:bob:rwx".to_string()), "{e:?}");
    assert!(e.contains(&"default:user:bob:rwx".to_string()), "{e:?}");
    assert!(t
        .ns
        .has_default_acl(t.ns.resolve(&t.ns.access(ROOT_USER), "/p/sub").unwrap()));
    assert!(t.ns.parent_has_default_acl(ROOT_USER, "/p/x"));
    // Files cannot have a default ACL; -k removes one from a directory.
    assert!(matches!(
        setfacl(&mut t, ROOT_USER, "/p/f", modify("default:user:bob:rwx")),
        Err(FsError::Acl(_))
    ));
    setfacl(&mut t, ROOT_USER, "/p", AclChange::RemoveDefault).unwrap();
    assert!(entries(&t, "/p").is_empty());
    t.file("/p/g", 0);
    assert!(!t.ns.stat(ROOT_USER, "/p/g").unwrap().has_acl);
}
