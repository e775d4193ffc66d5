"""`nice-audit ingest`: convert raw exports to Parquet with nice-audit's own reader.

Spark's CSV reader has none of nice-audit's handling (encoding detection, separators, BOMs,
malformed-row errors) and no row numbers (scale-out.md P16), so `--engine spark` reads only
Parquet. This stage writes, per export, one Parquet file holding the columns the audit reads
(under their export names, all text) plus `nice_audit_source_row`, the row number in the original
export; and `manifest.json`, which records each original file's path, sha256 and encoding so that
findings, rejected rows and the summary still name the file the trust exported.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl

from audit import __version__, load
from audit.errors import UserError
from audit.layouts import ColumnPlan, Mapping

MANIFEST = "manifest.json"
SOURCE_ROW = "nice_audit_source_row"  # the 1-based data row of the original export
SOURCE_LINE = "nice_audit_source_line"  # the 1-based line of the original export where the row starts
ROW_GROUP_ROWS = 100_000


def source_names(plan: ColumnPlan) -> dict[str, str]:
    """canonical name -> export column, for every column `Export.batches()` yields from one."""
    names = {"episode_id": plan.episode_id, **plan.episode_columns}
    names.update({load.CARRY_PREFIX + source: source for source in plan.carried})
    for slot in plan.slots:
        names[f"code_{slot.position}"] = slot.code
        if slot.date:
            names[f"date_{slot.position}"] = slot.date
    if plan.shape == "long":
        names.update({"position": plan.position, "code_raw": plan.code})
        if plan.procedure_date:
            names["procedure_date"] = plan.procedure_date
    return names


def _target_names(exports: list[load.Export]) -> list[str]:
    """One Parquet name per export; exports from different folders may share a name."""
    names, used = [], set()
    for export in exports:
        stem = export.path.name.split(".")[0] or "export"
        name, n = f"{stem}.parquet", 1
        while name in used:
            n += 1
            name = f"{stem}-{n}.parquet"
        used.add(name)
        names.append(name)
    return names


def _write(export: load.Export, target: Path) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError("nice-audit ingest needs pyarrow: pip install 'nice-audit[spark]'") from None
    names = source_names(export.plan)
    rows, writer = 0, None
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        for batch in export.batches():
            chosen = {}
            for canonical, source in names.items():
                chosen.setdefault(source, canonical)  # a column named twice is written once
            table = batch.select(*[pl.col(c).alias(s) for s, c in chosen.items()],
                                 pl.col("source_row").alias(SOURCE_ROW),
                                 pl.col("source_line").cast(pl.Int64).alias(SOURCE_LINE)).to_arrow()
            schema = pa.schema([pa.field(s, pa.string()) for s in chosen]
                               + [pa.field(SOURCE_ROW, pa.int64()), pa.field(SOURCE_LINE, pa.int64())])
            table = table.cast(schema)
            if writer is None:
                writer = pq.ParquetWriter(staging, schema)
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            rows += table.num_rows
        if writer is None:  # no batch at all: a header-only export still gives a (header-only) file
            schema = pa.schema([pa.field(s, pa.string()) for s in dict.fromkeys(names.values())]
                               + [pa.field(SOURCE_ROW, pa.int64()), pa.field(SOURCE_LINE, pa.int64())])
            writer = pq.ParquetWriter(staging, schema)
        writer.close()
        writer = None
        os.replace(staging, target)
    finally:
        if writer is not None:
            writer.close()
        staging.unlink(missing_ok=True)
    return rows


def ingest(inputs: list[Path], to: Path, *, layout: str | None = None, mapping: Mapping | None = None,
           encoding: str = "auto") -> dict:
    """Convert every export to Parquet in `to`; returns the manifest (also written there)."""
    exports = load.read_exports(inputs, layout=layout, mapping=mapping, encoding=encoding)
    to = Path(to)
    if to.exists() and not to.is_dir():
        raise UserError(f"{to}: --to must be a folder")
    to.mkdir(parents=True, exist_ok=True)
    for export in exports:
        # Malformed records (wrong field count, broken quoting) are rejected rows in a local run,
        # but the Parquet written here would simply not hold them, and the Spark run could not
        # count them: refuse instead of losing rows.
        bad = export.structural_rejects()
        if bad.height:
            first = bad["source_line"].min()
            where = f" (first at line {first})" if first is not None else ""
            raise UserError(f"{export.path}: {bad.height} malformed record(s){where}; ingest converts "
                            "only whole exports: correct the export, or audit it with the local engine, "
                            "which lists them in rejected.csv")
    files = []
    for export, name in zip(exports, _target_names(exports)):
        rows = _write(export, to / name)
        files.append({
            "parquet": name, "source": str(export.path), "sha256": export.sha256,
            "encoding": export.encoding, "separator": export.separator, "layout": export.plan.layout,
            "rows": rows,
        })
    manifest = {"tool_version": __version__, "files": files}
    staging = to / f".{MANIFEST}.tmp-{os.getpid()}"
    staging.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(staging, to / MANIFEST)  # last: a folder with a manifest is complete
    return manifest


def read_manifest(folder: Path) -> dict | None:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = manifest["files"]
        assert all({"parquet", "source", "sha256", "encoding"} <= set(f) for f in files)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise UserError(f"{path}: not a manifest written by nice-audit ingest") from None
    return manifest
