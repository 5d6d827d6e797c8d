#!/usr/bin/env python3
"""This disk's fdatasync latency, the anchor printed beside every metadata figure:
300 appends of 4 KiB, each followed by os.fdatasync, in DIR; one JSON line.
   usage: scripts/fdatasync-probe.py DIR"""
import json, os, sys, time

path = os.path.join(sys.argv[1], "fdatasync.probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
block, lat = os.urandom(4096), []
for _ in range(300):
    os.write(fd, block)
    t = time.perf_counter()
    os.fdatasync(fd)
    lat.append((time.perf_counter() - t) * 1000)
os.close(fd)
os.unlink(path)
lat.sort()
print(json.dumps({"anchor": "fdatasync", "n": 300, "p50_ms": round(lat[150], 3),
                  "p99_ms": round(lat[296], 3)}))
