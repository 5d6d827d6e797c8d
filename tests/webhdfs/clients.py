"""Drives tdfs's WebHDFS gateway with the Python clients people use, unchanged:
HdfsCLI (`hdfs`) and fsspec's WebHDFS. Usage: clients.py HOST:PORT USER WORKDIR SEED

Each client uploads a multi-block file, lists it, stats it, reads a range,
downloads it, renames it and deletes it; every step is checked. Prints one
line per step and exits non-zero on the first failure.
"""
import hashlib
import os
import random
import sys

import fsspec
from hdfs import InsecureClient
from hdfs.util import HdfsError

addr, user, work, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
host, port = addr.rsplit(":", 1)
rng = random.Random(seed)
# 3.5 blocks of 1 MiB plus a ragged tail.
data = bytes(rng.getrandbits(8) for _ in range(3 * 1024 * 1024 + 700_001))
digest = hashlib.sha256(data).hexdigest()
local = os.path.join(work, "upload.bin")
with open(local, "wb") as f:
    f.write(data)


def step(name):
    print("ok:", name, flush=True)


def hdfscli():
    c = InsecureClient(f"http://{addr}", user=user)
    base = "/py/hdfscli"
    c.makedirs(base)
    c.upload(f"{base}/file.bin", local, overwrite=True, chunk_size=256 * 1024)
    step("hdfscli upload")
    st = c.status(f"{base}/file.bin")
    assert st["length"] == len(data), st
    assert st["type"] == "FILE" and st["owner"] == user, st
    assert c.status(f"{base}/missing", strict=False) is None
    step("hdfscli status")
    names = c.list(base)
    assert names == ["file.bin"], names
    detailed = dict(c.list(base, status=True))
    assert detailed["file.bin"]["length"] == len(data)
    step("hdfscli list")
    off, ln = 1024 * 1024 - 10, 1024 * 1024 + 20  # crosses two block boundaries
    with c.read(f"{base}/file.bin", offset=off, length=ln) as r:
        got = r.read()
    assert got == data[off : off + ln], (len(got), ln)
    step("hdfscli ranged read")
    with c.read(f"{base}/file.bin") as r:
        assert hashlib.sha256(r.read()).hexdigest() == digest
    out = os.path.join(work, "hdfscli-download.bin")
    c.download(f"{base}/file.bin", out, overwrite=True)
    with open(out, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == digest
    step("hdfscli download")
    cs = c.content(base)
    assert cs["length"] == len(data) and cs["fileCount"] == 1, cs
    c.write(f"{base}/small.txt", data=b"hello ", overwrite=True)
    c.write(f"{base}/small.txt", data=b"world", append=True)
    with c.read(f"{base}/small.txt") as r:
        assert r.read() == b"hello world"
    step("hdfscli write + append")
    c.rename(f"{base}/file.bin", f"{base}/renamed.bin")
    assert c.status(f"{base}/file.bin", strict=False) is None
    assert c.status(f"{base}/renamed.bin")["length"] == len(data)
    step("hdfscli rename")
    try:
        c.delete(base)  # not empty, not recursive
        raise AssertionError("non-recursive delete of a non-empty dir succeeded")
    except HdfsError as e:
        assert "PathIsNotEmptyDirectoryException" in str(e) or "not empty" in str(e), e
    assert c.delete(base, recursive=True) is True
    assert c.status(base, strict=False) is None
    assert c.delete(base) is False
    step("hdfscli delete")
    try:
        c.status("/py/nope")
        raise AssertionError("status of a missing path succeeded")
    except HdfsError as e:
        assert "does not exist" in str(e), e
    step("hdfscli errors")


def fsspec_webhdfs():
    fs = fsspec.filesystem("webhdfs", host=host, port=int(port), user=user)
    base = "/py/fsspec"
    fs.makedirs(base, exist_ok=True)
    # fsspec writes: CREATE an empty file, then APPEND each buffered piece.
    with fs.open(f"{base}/file.bin", "wb", block_size=1024 * 1024) as f:
        for i in range(0, len(data), 300_000):
            f.write(data[i : i + 300_000])
    step("fsspec upload")
    info = fs.info(f"{base}/file.bin")
    assert info["size"] == len(data) and info["type"] == "file", info
    step("fsspec info")
    ls = fs.ls(base, detail=False)
    assert [p.rstrip("/").split("/")[-1] for p in ls] == ["file.bin"], ls
    step("fsspec ls")
    got = fs.cat_file(f"{base}/file.bin", start=2_000_000, end=3_500_000)
    assert got == data[2_000_000:3_500_000]
    with fs.open(f"{base}/file.bin", "rb") as f:
        f.seek(123_456)
        assert f.read(1000) == data[123_456:124_456]
    step("fsspec ranged read")
    out = os.path.join(work, "fsspec-download.bin")
    fs.get(f"{base}/file.bin", out)
    with open(out, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == digest
    step("fsspec download")
    ck = fs.ukey(f"{base}/file.bin")
    assert ck, ck
    fs.mv(f"{base}/file.bin", f"{base}/moved.bin")
    assert not fs.exists(f"{base}/file.bin")
    assert fs.info(f"{base}/moved.bin")["size"] == len(data)
    step("fsspec rename")
    fs.rm(base, recursive=True)
    assert not fs.exists(base)
    step("fsspec delete")


hdfscli()
fsspec_webhdfs()
print("all ok", flush=True)
