"""After the Spark pass: the datasets, summary.json, the report, history, then LATEST.json.

Layout of `--out` (object stores have no atomic rename, so nothing is replaced in place):

    out/_runs/<run_id>/findings/provider_partition=RRK/part-*.parquet   (provider, or "unknown")
    out/_runs/<run_id>/episodes/provider_partition=.../part-*.parquet
    out/_runs/<run_id>/rejected/source_partition=<input file>/...      (the path, escaped by Spark)
    out/_runs/<run_id>/sequences/, carried/                            Parquet datasets
    out/_runs/<run_id>/summary.json, report.html and the CSV files the report reads
    out/LATEST.json                                                    written last: the run to read

A run that dies part-way leaves LATEST.json pointing at the previous complete run.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from audit import history, outputs, unit
from audit.config import Settings

KIND = "kind"
CARRIED = "carried:"  # carried columns inside the union frame, apart from the audit's own
PROVIDER_PARTITION = "provider_partition"
SOURCE_PARTITION = "source_partition"
LATEST = "LATEST.json"
BY_PROVIDER = ("findings", "episodes")


@dataclass(frozen=True)
class SparkOutcome:
    summary: dict
    out: Path  # the published run folder (out/_runs/<run_id>)
    run_id: str | None  # in the history, when one is kept


def _write_datasets(spark, schema, staging: Path, folder: Path) -> None:
    from pyspark.sql import functions as F

    union = spark.read.schema(schema.ddl).parquet(str(staging))  # the schema: staging may hold no files
    # Findings and episodes one folder (and file) per trust, rejected rows per input file. A
    # literal stands in for null, which Spark would write as __HIVE_DEFAULT_PARTITION__; the
    # folder column is extra, so every data file keeps all its columns.
    folders = {"findings": F.coalesce(F.col("provider"), F.lit("unknown")),
               "episodes": F.coalesce(F.col("provider"), F.lit("unknown")),
               "rejected": F.col("source_file")}
    for kind in ("findings", "episodes", "rejected", "sequences", "carried"):
        frame = union.where(F.col(KIND) == kind).select(*[F.col(f"`{c}`") for c in schema.kinds[kind]])
        if kind in folders:
            name = PROVIDER_PARTITION if kind in BY_PROVIDER else SOURCE_PARTITION
            frame = frame.withColumn(name, folders[kind])
            writer = frame.repartition(name).write.partitionBy(name)
        else:
            writer = frame.coalesce(1).write
        writer.mode("overwrite").parquet(str(folder / kind))


def _counts(spark, schema, staging: Path) -> pl.DataFrame:
    from pyspark.sql import functions as F

    rows = spark.read.schema(schema.ddl).parquet(str(staging)).where(F.col(KIND) == "counts").select(*unit.COUNTS_SCHEMA)
    frame = pl.from_arrow(rows.toArrow())
    return frame.cast(unit.COUNTS_SCHEMA) if frame.height else pl.DataFrame(schema=unit.COUNTS_SCHEMA)


def read_dataset(folder: Path, kind: str, schema) -> pl.DataFrame:
    """A dataset Spark wrote, read with polars: only the data files (Spark leaves _SUCCESS and
    .crc files beside them, P15), without the folder-name column."""
    files = sorted((folder / kind).rglob("*.parquet"))
    union = schema.polars()
    typed = {c: union[c] for c in schema.kinds[kind]}
    if not files:
        return pl.DataFrame(schema=typed)
    frame = pl.read_parquet(files, hive_partitioning=False)
    return frame.select(pl.col(c).cast(t) for c, t in typed.items())


def _uncarried(carried: pl.DataFrame) -> pl.DataFrame:
    return carried.rename({c: c.removeprefix(CARRIED) for c in carried.columns})


def _local_files(ctx: unit.AuditContext, schema, folder: Path, summary: dict, settings: Settings,
                 started: datetime):
    """The files the report (and a coding manager's spreadsheet) reads, as the local engine writes
    them; findings are sparse (about 1.5% of episodes), so the driver can hold them."""
    part = unit.combine([unit.PartitionResult(
        **{kind: read_dataset(folder, kind, schema) for kind in ("findings", "episodes", "rejected", "sequences")},
        carried=_uncarried(read_dataset(folder, "carried", schema)),
        counts=pl.DataFrame(schema=unit.COUNTS_SCHEMA),
    )])
    episodes = part.episodes.with_columns(pl.col("errors", "warnings").cast(pl.UInt32))
    conn = history.connect(settings.history) if settings.history else None
    changes = trend = None
    try:
        scope = settings.effective_scope() if settings.inputs else " ".join(sorted(settings.tables))
        if conn:
            changes = history.compare(conn, scope, part.findings, started.date().isoformat())
            trend = history.trend(conn, scope, settings.trend_runs - 1)
        today = started.date().isoformat()
        findings = outputs._carry(outputs._with_first_seen(part.findings, changes, today), part.carried)
        findings.write_csv(folder / outputs.FINDINGS_CSV, date_format="%Y-%m-%d")
        outputs._carry(episodes, part.carried).write_csv(folder / outputs.EPISODES_CSV, date_format="%Y-%m-%d")
        part.rejected.write_csv(folder / outputs.REJECTED_CSV)
        part.sequences.write_csv(folder / outputs.SEQUENCES_CSV)
        if ctx.code_list is not None:
            outputs._code_titles(part.sequences, ctx.code_list).write_csv(folder / outputs.CODE_TITLES_CSV)
        if changes is not None:
            changes.keys.write_csv(folder / outputs.CHANGES_CSV)
        summary["changes"] = outputs._changes_summary(changes)
        if trend is not None:
            current = pl.DataFrame(
                [history.trend_row(None, summary["run_started"], g, c) for g, c in summary["by_guidance"].items()],
                schema=history.TREND_SCHEMA, orient="row",
            )
            pl.concat([trend, current]).write_csv(folder / outputs.TREND_CSV)
        (folder / outputs.SUMMARY_JSON).write_text(json.dumps(summary, indent=2, default=int) + "\n", encoding="utf-8")
        from reports.render import render_report

        render_report(folder, ctx.catalogue, worksheet_cap=settings.worksheet_cap, generated=started)
        run_id = None
        if conn:
            run_id = history.record(conn, scope=scope, started=started, finished=datetime.now(timezone.utc),
                                    summary=summary, changes=changes, keep=settings.history_keep)
        return run_id
    finally:
        if conn:
            conn.close()


def finish(spark, settings: Settings, ctx: unit.AuditContext, schema, staging: Path, folder: Path, run_id: str):
    _write_datasets(spark, schema, staging, folder)
    summary = unit.summary_from_counts(_counts(spark, schema, staging), ctx)
    shutil.rmtree(staging, ignore_errors=True)
    history_id = _local_files(ctx, schema, folder, summary, settings, ctx.started)
    out = Path(settings.out)
    latest = {"run_id": run_id, "path": f"_runs/{run_id}", "run_started": summary["run_started"],
              "findings": summary["totals"]["findings"]}
    temporary = out / f".{LATEST}.tmp-{os.getpid()}"
    temporary.write_text(json.dumps(latest, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, out / LATEST)  # last: readers only ever see complete runs
    return SparkOutcome(summary, folder, history_id)


def latest_run(out: Path) -> Path | None:
    """The run folder out/LATEST.json points at, if there is one."""
    path = Path(out) / LATEST
    if not path.is_file():
        return None
    try:
        return Path(out) / json.loads(path.read_text(encoding="utf-8"))["path"]
    except (ValueError, KeyError, TypeError):
        return None
