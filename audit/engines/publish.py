"""After the Spark pass: the datasets, summary.json, the report, history, then LATEST.json.

Layout of `--out` (object stores have no atomic rename, so nothing is replaced in place):

    out/_runs/<run_id>/findings/provider_partition=RRK/part-*.parquet   (provider, or "unknown")
    out/_runs/<run_id>/episodes/provider_partition=.../part-*.parquet
    out/_runs/<run_id>/rejected/source_partition=<input file>/...      (the path, escaped by Spark)
    out/_runs/<run_id>/sequences/, carried/, changes/                  Parquet datasets
    out/_runs/<run_id>/summary.json, report.html, report-data/ (the report's bundle) and the CSV files
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
RUNS = "_runs"  # out/_runs/<run_id>/; out/LATEST.json names the newest complete one
LATEST = "LATEST.json"
BY_PROVIDER = ("findings", "episodes")
CHANGES = "changes"  # the history comparison, a Parquet dataset in the run folder


@dataclass(frozen=True)
class SparkOutcome:
    summary: dict
    out: Path  # the published run folder (out/_runs/<run_id>)
    run_id: str | None  # in the history, when one is kept


def _union(spark, schema, staging: Path):
    return spark.read.schema(schema.ddl).parquet(str(staging))  # the schema: staging may hold no files


def _kind(union, schema, kind: str):
    from pyspark.sql import functions as F

    return union.where(F.col(KIND) == kind).select(*[F.col(f"`{c}`") for c in schema.kinds[kind]])


def _write_datasets(spark, schema, staging: Path, folder: Path, changes_folder: Path | None, today: str) -> None:
    from pyspark.sql import functions as F

    from audit.engines import changes

    union = _union(spark, schema, staging)
    # Findings and episodes one folder (and file) per trust, rejected rows per input file. A
    # literal stands in for null, which Spark would write as __HIVE_DEFAULT_PARTITION__; the
    # folder column is extra, so every data file keeps all its columns.
    folders = {"findings": F.coalesce(F.col("provider"), F.lit("unknown")),
               "episodes": F.coalesce(F.col("provider"), F.lit("unknown")),
               "rejected": F.col("source_file")}
    for kind in ("findings", "episodes", "rejected", "sequences", "carried"):
        frame = _kind(union, schema, kind)
        if kind == "findings":  # as findings.parquet on one machine: when each was first seen
            frame = changes.with_first_seen(spark, frame, changes_folder, today)
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
    if kind == "findings":
        typed["first_seen"] = pl.Date
    if not files:
        return pl.DataFrame(schema=typed)
    frame = pl.read_parquet(files, hive_partitioning=False)
    return frame.select(pl.col(c).cast(t) for c, t in typed.items())


def _uncarried(carried: pl.DataFrame) -> pl.DataFrame:
    return carried.rename({c: c.removeprefix(CARRIED) for c in carried.columns})


def _volume(summary: dict, previous: dict | None, settings: Settings) -> dict:
    from audit import volume

    return volume.check_totals(summary["totals"]["episodes_audited"], summary["totals"]["rows_read"], previous,
                               settings.max_drop, settings.min_rows)


def _local_files(ctx: unit.AuditContext, schema, folder: Path, summary: dict, settings: Settings,
                 started: datetime, run_id: str, conn, scope: str, changes) -> dict:
    """The files the report (and a coding manager's spreadsheet) reads, as audit.outputs.write
    writes them locally; findings are sparse (about 1.5% of episodes), so the driver can hold
    them. `changes`: the history comparison, already made by Spark (audit.engines.changes)."""
    from audit.workbook import write_workbook

    part = unit.combine([unit.PartitionResult(
        **{kind: read_dataset(folder, kind, schema) for kind in ("findings", "episodes", "rejected", "sequences")},
        carried=_uncarried(read_dataset(folder, "carried", schema)),
        counts=pl.DataFrame(schema=unit.COUNTS_SCHEMA),
    )])
    episodes = part.episodes.with_columns(pl.col("errors", "warnings").cast(pl.UInt32))
    trend = previous = others = None
    if conn:
        trend = history.trend(conn, scope, settings.trend_runs - 1)
        previous = history.previous_summary(conn, scope)
        others = history.other_scopes(conn, scope)
    findings = outputs.carry(part.findings.with_columns(pl.col("first_seen").dt.to_string("%Y-%m-%d")), part.carried)
    episodes = outputs.carry(episodes, part.carried)
    outputs.write_csv(findings, folder / outputs.FINDINGS_CSV)
    findings.with_columns(pl.col("first_seen").str.to_date("%Y-%m-%d")).write_parquet(
        folder / outputs.FINDINGS_PARQUET, statistics=False)
    outputs.write_csv(episodes, folder / outputs.EPISODES_CSV)
    outputs.write_csv(part.rejected, folder / outputs.REJECTED_CSV)
    outputs.write_csv(part.sequences, folder / outputs.SEQUENCES_CSV)
    if ctx.code_list is not None:
        outputs.write_csv(outputs.code_titles(part.sequences, ctx.code_list), folder / outputs.CODE_TITLES_CSV)
    if changes is not None:
        _changes_csv(folder / CHANGES, folder / outputs.CHANGES_CSV)
    left_out = write_workbook(folder / outputs.FINDINGS_XLSX, {"findings": findings, "episodes": episodes,
                                                               "rejected": part.rejected}, started)
    summary = {"run_id": run_id, "scope": scope if conn else None, **summary}
    summary["xlsx_rows_left_out"] = {sheet: n for sheet, n in left_out.items() if n}
    summary["changes"] = None if changes is None else outputs.changes_summary(
        changes.previous_run, changes.previous_started, changes.counts)
    if summary["changes"] is not None and others is not None:
        summary["changes"]["other_scopes"] = others
    summary["volume"] = _volume(summary, previous, settings)
    if trend is not None:
        current = pl.DataFrame(history.trend_rows(run_id, summary), schema=history.TREND_SCHEMA, orient="row")
        outputs.write_csv(pl.concat([trend, current]), folder / outputs.TREND_CSV)
    # The report's bundle from the same frames the driver holds for the CSVs (polars, on the
    # driver: findings and flagged episodes are about 2% of the rows, the aggregates are
    # cheap group-bys over them; reports.bundle).
    bundled = None if changes is None else history.Changes(
        changes.previous_run, changes.previous_started, _changes_frame(folder / CHANGES).collect())
    outputs.write_report_bundle(folder, findings, episodes, part.sequences, part.rejected, bundled, summary,
                                settings.worksheet_cap)
    (folder / outputs.SUMMARY_JSON).write_text(json.dumps(summary, indent=2, default=int) + "\n", encoding="utf-8")
    from reports.render import render_report

    render_report(folder, ctx.catalogue, worksheet_cap=settings.worksheet_cap, generated=started)
    return summary


def _changes_frame(dataset: Path) -> pl.LazyFrame:
    """The changes dataset Spark wrote (audit.engines.changes), in changes.csv's order."""
    files = sorted(dataset.rglob("*.parquet"))
    frame = (pl.scan_parquet(files, hive_partitioning=False) if files
             else pl.LazyFrame(schema={c: pl.Int64 if c == "position" else pl.String for c in history.CHANGE_COLUMNS}))
    return frame.select(history.CHANGE_COLUMNS).sort(history.FINDING_KEY)


def _changes_csv(dataset: Path, path: Path) -> None:
    """changes.csv from the changes dataset, streamed (its rows are not held on the driver)."""
    outputs.csv_safe(_changes_frame(dataset)).sink_csv(path, include_bom=True)


def finish(spark, settings: Settings, ctx: unit.AuditContext, schema, staging: Path, folder: Path, run_id: str):
    from audit.engines import changes as spark_changes

    conn = history.connect(settings.history) if settings.history else None
    try:
        scope = settings.effective_scope() if settings.inputs or settings.out else " ".join(sorted(settings.tables))
        today = ctx.started.date().isoformat()
        changes = keys = None
        if conn:
            union = _union(spark, schema, staging)
            keys = history.keys_folder(conn, run_id)
            changes = spark_changes.compare(spark, conn, scope, _kind(union, schema, "findings"),
                                            _kind(union, schema, "episode_ids"), today, folder / CHANGES, keys)
        _write_datasets(spark, schema, staging, folder, folder / CHANGES if changes else None, today)
        summary = unit.summary_from_counts(_counts(spark, schema, staging), ctx)
        shutil.rmtree(staging, ignore_errors=True)
        summary = _local_files(ctx, schema, folder, summary, settings, ctx.started, run_id, conn, scope, changes)
        if conn:
            history.record(conn, run_id=run_id, scope=scope, started=ctx.started, finished=datetime.now(timezone.utc),
                           summary=summary, changes=None, keep=settings.history_keep, keys=keys)
    finally:
        if conn:
            conn.close()
    out = Path(settings.out)
    latest = {"run_id": run_id, "path": f"_runs/{run_id}", "run_started": summary["run_started"],
              "findings": summary["totals"]["findings"]}
    temporary = out / f".{LATEST}.tmp-{os.getpid()}"
    temporary.write_text(json.dumps(latest, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, out / LATEST)  # last: readers only ever see complete runs
    prune_runs(out, settings.runs_keep)
    return SparkOutcome(summary, folder, run_id if conn else None)


def prune_runs(out: Path, keep: int) -> list[str]:
    """Delete run folders older than the newest `keep` complete ones (each holds episode-level
    data); returns the run ids deleted.

    Run ids begin with their start time, so they sort by age. A folder without summary.json
    is a run still writing, or one that died: newer than the oldest kept run it may be the
    former and stays; older, it is a dead run's leftovers and goes. The run LATEST.json names
    is never deleted, whatever `keep` says."""
    runs = Path(out) / RUNS
    if not runs.is_dir():
        return []
    folders = sorted((p for p in runs.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True)
    complete = [p for p in folders if (p / outputs.SUMMARY_JSON).is_file()]
    if len(complete) <= keep:
        return []
    oldest_kept = complete[keep - 1].name
    latest = latest_run(out)
    deleted = []
    for folder in folders:
        if folder.name < oldest_kept and (latest is None or folder.resolve() != latest.resolve()):
            shutil.rmtree(folder, ignore_errors=True)
            deleted.append(folder.name)
    return sorted(deleted)


def latest_run(out: Path) -> Path | None:
    """The run folder out/LATEST.json points at, if there is one."""
    path = Path(out) / LATEST
    if not path.is_file():
        return None
    try:
        return Path(out) / json.loads(path.read_text(encoding="utf-8"))["path"]
    except (ValueError, KeyError, TypeError):
        return None
