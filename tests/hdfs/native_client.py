"""Metadata operations through the unmodified hdfs-native client (PyPI),
over hdfs://tdfs with the HA nameservice of DIR/hadoop-conf.

Usage: native_client.py BIG_DIR BIG_COUNT   (HADOOP_CONF_DIR set, user root)
Prints "all ok" at the end; any failed check raises.
"""

import os
import sys

from hdfs_native import Client

big_dir, big_count = sys.argv[1], int(sys.argv[2])
root = Client("hdfs://tdfs")


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


# mkdirs (with parents) and get_file_info.
root.mkdirs("/hn/a/b", create_parent=True)
st = root.get_file_info("/hn/a/b")
check(st.isdir and st.path.endswith("/hn/a/b"), f"mkdirs + get_file_info {st.path}")
check(st.owner == "root", "owner is the caller")
root.mkdirs("/hn/a/b", create_parent=True)
check(root.get_file_info("/hn/a").isdir, "mkdirs of an existing directory is fine")

# Empty files: create + close is create + complete only.
with root.create("/hn/a/empty.txt") as w:
    pass
st = root.get_file_info("/hn/a/empty.txt")
check((not st.isdir) and st.length == 0, "an empty file")

# A listing of more entries than one page (1000) is paged by the client.
names = [s.path.rsplit("/", 1)[-1] for s in root.list_status(big_dir)]
check(len(names) == big_count, f"{len(names)} entries listed in pages")
check(names == sorted(names), "listing in name order")
rec = list(root.list_status("/hn", recursive=True))
check(sorted(s.path for s in rec) == ["/hn/a", "/hn/a/b", "/hn/a/empty.txt"], "recursive listing")

# rename, delete.
root.rename("/hn/a/b", "/hn/a/c")
check(root.get_file_info("/hn/a/c").isdir, "renamed")
try:
    root.get_file_info("/hn/a/b")
    raise AssertionError("old name still there")
except FileNotFoundError:
    print("ok: old name gone")
check(root.delete("/hn/a/c", False), "delete an empty directory")
check(not root.delete("/hn/nothing", False), "delete of a missing path is false")

# set_permission, set_owner, content summary.
root.set_permission("/hn/a", 0o750)
check(root.get_file_info("/hn/a").permission == 0o750, "set_permission")
root.mkdirs("/hn/alice", create_parent=True)
root.set_owner("/hn/alice", "alice", "staff")
st = root.get_file_info("/hn/alice")
check((st.owner, st.group) == ("alice", "staff"), "set_owner")
cs = root.get_content_summary("/hn")
check(cs.file_count == 1 and cs.directory_count == 3, f"content summary {cs.file_count} {cs.directory_count}")

# Errors: a missing file, a non-empty directory, another user's directory.
try:
    root.get_file_info("/hn/missing")
    raise AssertionError("missing file found")
except FileNotFoundError:
    print("ok: FileNotFoundError")
try:
    list(root.list_status("/hn/missing"))
    raise AssertionError("missing directory listed")
except FileNotFoundError:
    print("ok: listing a missing directory is FileNotFoundError")
try:
    root.delete("/hn/a", False)
    raise AssertionError("non-empty directory deleted")
except RuntimeError as e:
    check("PathIsNotEmptyDirectoryException" in str(e), "PathIsNotEmptyDirectoryException")

os.environ["HADOOP_USER_NAME"] = "bob"
bob = Client("hdfs://tdfs")
try:
    bob.mkdirs("/hn/alice/x")
    raise AssertionError("bob wrote into alice's directory")
except RuntimeError as e:
    check("AccessControlException" in str(e) and "bob" in str(e), "permission denied for bob")
check(root.get_file_info("/hn/alice").owner == "alice", "nothing changed")
print("all ok")
