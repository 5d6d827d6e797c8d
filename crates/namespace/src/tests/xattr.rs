//! Extended attributes: namespaces, flags, limits, permissions, snapshots.

use super::*;
use tdfs_proto::xattr::{XAttrFlags, MAX_XATTRS_PER_INODE, MAX_XATTR_SIZE};

fn set(
    t: &mut T,
    user: &str,
    p: &str,
    name: &str,
    value: &[u8],
    flags: XAttrFlags,
) -> Result<Outcome, FsError> {
    t.as_user(
        user,
        LogOp::SetXAttr {
            path: p.into(),
            name: name.into(),
            value: value.to_vec(),
            flags,
        },
    )
}

const CREATE: XAttrFlags = XAttrFlags {
    create: true,
    replace: false,
};
const REPLACE: XAttrFlags = XAttrFlags {
    create: false,
    replace: true,
};

#[test]
fn namespaces_and_flags_follow_hdfs() {
    let mut t = T::new();
    t.mkdir("/x");
    t.root(LogOp::SetOwner {
        path: "/x".into(),
        owner: Some("bob".into()),
        group: None,
    })
    .unwrap();
    t.file_of("bob", "/x/f", &[1]).unwrap();
    set(&mut t, "bob", "/x/f", "user.a", b"1", CREATE).unwrap();
    assert!(
        matches!(set(&mut t, "bob", "/x/f", "user.a", b"2", CREATE), Err(FsError::XAttr(m)) if m.contains("already exists"))
    );
    assert!(
        matches!(set(&mut t, "bob", "/x/f", "user.b", b"2", REPLACE), Err(FsError::XAttr(m)) if m.contains("does not exist"))
    );
    set(&mut t, "bob", "/x/f", "user.a", b"2", REPLACE).unwrap();
    assert_eq!(
        t.ns.get_xattrs("bob", "/x/f", &["user.a".into()]).unwrap()[0].value,
        b"2"
    );
    // trusted: the superuser's; system and raw: nobody's.
    assert!(matches!(
        set(&mut t, "bob", "/x/f", "trusted.t", b"1", XAttrFlags::EITHER),
        Err(FsError::PermissionDenied { .. })
    ));
    set(
        &mut t,
        ROOT_USER,
        "/x/f",
        "trusted.t",
        b"1",
        XAttrFlags::EITHER,
    )
    .unwrap();
    for ns in ["system.s", "raw.r"] {
        assert!(
            set(&mut t, ROOT_USER, "/x/f", ns, b"1", XAttrFlags::EITHER).is_err(),
            "{ns}"
        );
    }
    assert!(set(&mut t, "bob", "/x/f", "bogus.n", b"1", XAttrFlags::EITHER).is_err());
    // security.hdfs.unreadable.by.superuser: files only, no value.
    assert!(set(
        &mut t,
        "bob",
        "/x/f",
        "security.hdfs.unreadable.by.superuser",
        b"v",
        XAttrFlags::EITHER
    )
    .is_err());
    set(
        &mut t,
        "bob",
        "/x/f",
        "security.hdfs.unreadable.by.superuser",
        b"",
        XAttrFlags::EITHER,
    )
    .unwrap();
    assert!(set(
        &mut t,
        "bob",
        "/x",
        "security.hdfs.unreadable.by.superuser",
        b"",
        XAttrFlags::EITHER
    )
    .is_err());
    // Who sees what: bob his user and security ones, the superuser trusted ones too.
    let mut bob = t.ns.list_xattrs("bob", "/x/f").unwrap();
    bob.sort();
    assert_eq!(bob, vec!["security.hdfs.unreadable.by.superuser", "user.a"]);
    assert_eq!(t.ns.list_xattrs(ROOT_USER, "/x/f").unwrap().len(), 3);
    assert!(matches!(
        t.ns.get_xattrs("bob", "/x/f", &["trusted.t".into()]),
        Err(FsError::PermissionDenied { .. })
    ));
    assert!(matches!(
        t.ns.get_xattrs("bob", "/x/f", &["user.zz".into()]),
        Err(FsError::XAttr(_))
    ));
    // Writing needs WRITE, reading READ.
    t.root(LogOp::SetPermission {
        path: "/x/f".into(),
        mode: 0o600,
    })
    .unwrap();
    assert!(matches!(
        set(&mut t, "carol", "/x/f", "user.c", b"1", XAttrFlags::EITHER),
        Err(FsError::PermissionDenied { .. })
    ));
    assert!(matches!(
        t.ns.get_xattrs("carol", "/x/f", &[]),
        Err(FsError::PermissionDenied { .. })
    ));
    t.as_user(
        "bob",
        LogOp::RemoveXAttr {
            path: "/x/f".into(),
            name: "user.a".into(),
        },
    )
    .unwrap();
    assert!(matches!(
        t.as_user(
            "bob",
            LogOp::RemoveXAttr {
                path: "/x/f".into(),
                name: "user.a".into()
            }
        ),
        Err(FsError::XAttr(_))
    ));
}

#[test]
fn limits_are_hdfs_defaults() {
    let mut t = T::new();
    t.file("/f", 0);
    for i in 0..MAX_XATTRS_PER_INODE {
        set(
            &mut t,
            ROOT_USER,
            "/f",
            &format!("user.k{i}"),
            b"v",
            XAttrFlags::EITHER,
        )
        .unwrap();
    }
    let r = set(
        &mut t,
        ROOT_USER,
        "/f",
        "user.one-too-many",
        b"v",
        XAttrFlags::EITHER,
    );
    assert!(matches!(r, Err(FsError::XAttr(m)) if m.contains("limit of 32")));
    // Replacing one at the limit is fine.
    set(&mut t, ROOT_USER, "/f", "user.k0", b"w", XAttrFlags::EITHER).unwrap();
    t.file("/g", 0);
    let big = vec![7u8; MAX_XATTR_SIZE - 1];
    set(&mut t, ROOT_USER, "/g", "user.a", &big, XAttrFlags::EITHER).unwrap();
    let too_big = vec![7u8; MAX_XATTR_SIZE - 1];
    let r = set(
        &mut t,
        ROOT_USER,
        "/g",
        "user.ab",
        &too_big,
        XAttrFlags::EITHER,
    );
    assert!(matches!(r, Err(FsError::InvalidArgument(m)) if m.contains("too big")));
}

#[test]
fn a_snapshot_keeps_the_attributes_it_saw() {
    let mut t = T::new();
    t.mkdir("/s");
    t.file("/s/f", 0);
    set(
        &mut t,
        ROOT_USER,
        "/s/f",
        "user.v",
        b"old",
        XAttrFlags::EITHER,
    )
    .unwrap();
    t.root(LogOp::AllowSnapshot { path: "/s".into() }).unwrap();
    t.root(LogOp::CreateSnapshot {
        path: "/s".into(),
        name: Some("s1".into()),
    })
    .unwrap();
    set(
        &mut t,
        ROOT_USER,
        "/s/f",
        "user.v",
        b"new",
        XAttrFlags::EITHER,
    )
    .unwrap();
    assert_eq!(
        t.ns.get_xattrs(ROOT_USER, "/s/.snapshot/s1/f", &[])
            .unwrap()[0]
            .value,
        b"old"
    );
    assert_eq!(
        t.ns.get_xattrs(ROOT_USER, "/s/f", &[]).unwrap()[0].value,
        b"new"
    );
}
