"""Drives tdfs's WebHDFS namespace features with HdfsCLI (`hdfs`), unchanged:
ACLs, replication, content summaries with quotas, snapshots (read back
through `.snapshot` paths) and trash. Usage: features.py HOST:PORT USER BASE

BASE is a directory the caller made, with a name quota of 10 set on it.
Prints one line per step and exits non-zero on the first failure.
"""
import sys

from hdfs import InsecureClient
from hdfs.util import HdfsError

addr, user, base = sys.argv[1], sys.argv[2], sys.argv[3]
c = InsecureClient(f"http://{addr}", user=user)
# Allowing snapshots is the superuser's (dfsadmin), as in HDFS.
admin = InsecureClient(f"http://{addr}", user="root")


def step(name):
    print("ok:", name, flush=True)


def acls():
    f = f"{base}/acl.txt"
    c.write(f, data=b"acl", overwrite=True)
    c.set_acl(f, "user:bob:rw-", clear=False)
    st = c.acl_status(f)
    assert "user:bob:rw-" in st["entries"], st
    assert st["owner"] == user and st["permission"] == "664", st
    assert c.status(f).get("aclBit") is True, c.status(f)
    c.remove_acl_entries(f, "user:bob")
    assert "user:bob:rw-" not in c.acl_status(f)["entries"]
    c.set_acl(base, "default:user:carol:r-x", clear=False)
    assert "default:user:carol:r-x" in c.acl_status(base)["entries"]
    c.remove_default_acl(base)
    assert c.acl_status(base)["entries"] == [], c.acl_status(base)
    c.set_acl(f, "user::rw-,user:dave:r--,group::r--,other::---")
    assert c.acl_status(f)["entries"] == ["user:dave:r--", "group::r--"]
    c.remove_acl(f)
    assert c.acl_status(f)["entries"] == []
    assert c.status(f).get("aclBit") is None
    try:
        c.set_acl(f, "user:bob:rwz")
        raise AssertionError("a bad ACL spec was accepted")
    except HdfsError as e:
        assert "aclspec" in str(e), e
    step("hdfscli acls")


def replication_and_quota():
    f = f"{base}/acl.txt"
    c.set_replication(f, 2)
    assert c.status(f)["replication"] == 2
    cs = c.content(base)
    assert cs["quota"] == 10 and cs["spaceQuota"] == -1, cs
    assert cs["fileCount"] == 1 and cs["directoryCount"] == 1, cs
    for i in range(8):
        c.makedirs(f"{base}/d{i}")
    try:
        c.makedirs(f"{base}/one-too-many")
        raise AssertionError("the name quota was not enforced")
    except HdfsError as e:
        assert "NameSpace quota" in str(e), e
    for i in range(2, 8):
        assert c.delete(f"{base}/d{i}") is True
    assert c.content(base)["directoryCount"] == 3
    step("hdfscli replication and quota")


def snapshots():
    d = f"{base}/d0"
    c.write(f"{d}/kept.txt", data=b"before", overwrite=True)
    try:
        c.allow_snapshot(d)
        raise AssertionError("a non-superuser allowed snapshots")
    except HdfsError as e:
        assert "Permission denied" in str(e) or "superuser" in str(e), e
    admin.allow_snapshot(d)
    assert c.status(d).get("snapshotEnabled") is True, c.status(d)
    p = c.create_snapshot(d, "s1")
    assert p == f"{d}/.snapshot/s1", p
    c.write(f"{d}/kept.txt", data=b"after", overwrite=True)
    with c.read(f"{d}/.snapshot/s1/kept.txt") as r:
        assert r.read() == b"before"
    assert c.list(f"{d}/.snapshot") == ["s1"]
    c.rename_snapshot(d, "s1", "s2")
    assert c.list(f"{d}/.snapshot") == ["s2"]
    try:
        c.create_snapshot(f"{base}/d1", "x")
        raise AssertionError("snapshot of a non-snapshottable directory")
    except HdfsError as e:
        assert "snapshottable" in str(e), e
    c.delete_snapshot(d, "s2")
    assert c.list(f"{d}/.snapshot") == []
    admin.disallow_snapshot(d)
    step("hdfscli snapshots")


def trash():
    f = f"{base}/d1/doomed.txt"
    c.write(f, data=b"x", overwrite=True)
    assert c.delete(f, skip_trash=False) is True
    assert c.status(f, strict=False) is None
    found = [p for p, _, files in c.walk(f"/user/{user}/.Trash") if "doomed.txt" in files]
    assert len(found) == 1, found
    assert found[0].startswith(f"/user/{user}/.Trash/Current/"), found
    step("hdfscli trash")


acls()
replication_and_quota()
snapshots()
trash()
print("all ok", flush=True)
