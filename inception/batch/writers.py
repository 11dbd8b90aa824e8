"""Rows to bytes: JSON Lines (one object per line) or Parquet (one table per shard).

Every row has the same fields, in this order: ``path``; ``classes``, ``labels`` and
``probabilities`` (the top-k, by falling probability; empty for an unreadable file); ``error``
(``null``, or why the file has no classes).
"""

from __future__ import annotations

import io
import json

FIELDS = ("path", "classes", "labels", "probabilities", "error")


def ordered(row: dict) -> dict:
    return {name: row.get(name, [] if name not in ("path", "error") else None) for name in FIELDS}


def jsonl_bytes(rows) -> bytes:
    return "".join(json.dumps(ordered(r)) + "\n" for r in rows).encode("utf-8")


def parquet_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("path", pa.string()),
            ("classes", pa.list_(pa.string())),
            ("labels", pa.list_(pa.int64())),
            ("probabilities", pa.list_(pa.float64())),
            ("error", pa.string()),
        ]
    )


def parquet_bytes(rows) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [ordered(r) for r in rows]
    table = pa.Table.from_pylist(rows, schema=parquet_schema())
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def encode(rows, fmt: str) -> bytes:
    """A shard's file, whole (a shard's rows are small: a path and k classes each)."""
    return parquet_bytes(rows) if fmt == "parquet" else jsonl_bytes(rows)
