"""Data through the unmodified hdfs-native client (PyPI) over hdfs://tdfs:
multi-block writes, whole and ranged reads across block boundaries, append.
The cluster's block size is BLOCK bytes.

Usage: native_data.py DIR SIZE BLOCK   (HADOOP_CONF_DIR set, user root)
Prints `SHA <path> <sha256>` for each file it leaves, then "all ok".
"""

import hashlib
import random
import sys

from hdfs_native import Client

base, size, block = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = Client("hdfs://tdfs")
rng = random.Random(84)


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what, flush=True)


client.mkdirs(base, create_parent=True)
data = rng.randbytes(size)
path = f"{base}/multi.bin"
with client.create(path) as w:
    # Uneven pieces, so packets and chunks do not line up with the writes.
    at = 0
    while at < len(data):
        n = rng.randint(1, 300_000)
        w.write(data[at:at + n])
        at += n
st = client.get_file_info(path)
check(st.length == size, f"{size} bytes written in {-(-size // block)} blocks")

with client.read(path) as r:
    back = r.read()
check(back == data, "whole read matches")

with client.read(path) as r:
    for off, n in [(0, 1), (block - 100, 300), (2 * block - 1, 2), (block, block),
                   (size - 10, 10), (1234, 2 * block + 5)]:
        got = r.read_range(off, n)
        check(got == data[off:off + n], f"range {off}+{n}")
    for _ in range(20):
        off = rng.randrange(size)
        n = rng.randint(1, min(size - off, 3 * block))
        check(r.read_range(off, n) == data[off:off + n], f"random range {off}+{n}")

# Append: the last block is partial, so the datanodes continue its replica
# under a new generation stamp, then new blocks follow.
more = rng.randbytes(block + 777)
with client.append(path) as w:
    w.write(more)
data += more
with client.read(path) as r:
    check(r.read() == data, f"append of {len(more)} bytes reads back")
print(f"SHA {path} {hashlib.sha256(data).hexdigest()}", flush=True)

# A small file and an empty one.
with client.create(f"{base}/small.txt") as w:
    w.write(b"hello from hdfs-native\n")
with client.read(f"{base}/small.txt") as r:
    check(r.read() == b"hello from hdfs-native\n", "small file")
print(f"SHA {base}/small.txt {hashlib.sha256(b'hello from hdfs-native' + bytes([10])).hexdigest()}")
print("all ok", flush=True)
