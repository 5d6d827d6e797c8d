"""Spark (local[1]) writes a Parquet data set to a tdfs URL and reads it back.
Usage: spark_parquet.py URL ROWS. Prints one line `RESULT {json}` with the
counts and checksums Spark computed, the expected ones, and the seconds the
write and the read took; exits non-zero if they differ.
"""
import json
import sys
import time
import zlib

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

url, rows = sys.argv[1], int(sys.argv[2])
spark = (
    SparkSession.builder.master("local[1]")
    .appName("tdfs-parquet")
    .config("spark.ui.enabled", "false")
    .config("spark.sql.shuffle.partitions", "1")
    .getOrCreate()
)
df = spark.range(rows).select(
    F.col("id"),
    (F.col("id") * 7 % 1000).alias("v"),
    F.concat(F.lit("row-"), F.col("id").cast("string")).alias("s"),
)
t0 = time.time()
df.repartition(3).write.mode("overwrite").parquet(url)
t1 = time.time()
back = spark.read.parquet(url)
count = back.count()
agg = back.agg(F.sum("id"), F.sum("v"), F.sum(F.crc32("s"))).collect()[0]
t2 = time.time()
files = [f for f in spark.sparkContext._jvm.org.apache.hadoop.fs.Path(url)
         .getFileSystem(spark._jsc.hadoopConfiguration())
         .listStatus(spark.sparkContext._jvm.org.apache.hadoop.fs.Path(url))]
got = {"count": count, "sum_id": agg[0], "sum_v": agg[1], "sum_crc": agg[2]}
want = {
    "count": rows,
    "sum_id": rows * (rows - 1) // 2,
    "sum_v": sum(i * 7 % 1000 for i in range(rows)),
    "sum_crc": sum(zlib.crc32(f"row-{i}".encode()) for i in range(rows)),
}
out = {
    "got": got,
    "want": want,
    "files": sorted(f.getPath().getName() for f in files),
    "write_s": round(t1 - t0, 2),
    "read_s": round(t2 - t1, 2),
}
print("RESULT " + json.dumps(out), flush=True)
spark.stop()
sys.exit(0 if got == want else 1)
