"""Reads what the S3 exporter wrote, as Athena would: DuckDB (PyPI) with its httpfs
extension (PyPI too), signed requests, hive partitioning. Prints one JSON object:
{"columns": [[name, type], ...], "rows": n, "per_project": {project: [count, sum_cu]},
 "misplaced": rows whose partition is not their event-time hour,
 "keys": every JSON key seen in the objects}.

usage: duckdb_read.py ENDPOINT BUCKET GLOB   (keys in USAGE_S3_KEY_ID / USAGE_S3_SECRET)
"""
import json
import os
import sys

import duckdb
import duckdb_extensions

endpoint, bucket, glob = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
duckdb_extensions.import_extension("httpfs", con=con)
con.sql("LOAD httpfs")
con.execute(
    "CREATE SECRET usage_e2e (TYPE S3, KEY_ID ?, SECRET ?, ENDPOINT ?, URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')",
    [os.environ["USAGE_S3_KEY_ID"], os.environ["USAGE_S3_SECRET"], endpoint],
)
source = (
    f"read_json('s3://{bucket}/{glob}', format = 'newline_delimited', "
    "hive_partitioning = true, hive_types_autocast = false, union_by_name = true)"
)
columns = [[r[0], r[1]] for r in con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()]
rows = con.sql(f"SELECT count(*) FROM {source}").fetchone()[0]
per_project = {
    p: [n, int(cu)]
    for p, n, cu in con.sql(f"SELECT project, count(*), sum(cu) FROM {source} GROUP BY project").fetchall()
}
misplaced = con.sql(
    f"SELECT count(*) FROM {source} WHERE year <> strftime(ts, '%Y') OR month <> strftime(ts, '%m') "
    "OR day <> strftime(ts, '%d') OR hour <> strftime(ts, '%H')"
).fetchone()[0]
keys = sorted(
    {
        k
        for (line,) in con.sql(
            f"SELECT json_keys(json) FROM read_ndjson_objects('s3://{bucket}/{glob}')"
        ).fetchall()
        for k in line
    }
)
print(json.dumps({"columns": columns, "rows": rows, "per_project": per_project, "misplaced": misplaced, "keys": keys}))
