"""A Spark run's comparison with the history, as Spark joins: no finding passes through the driver.

The same comparison as `audit.history.compare` for a local run, over datasets rather than
frames in memory:

    current keys   the run's findings (staging), one row per finding key
    previous keys  the previous run of the scope: a Parquet dataset beside the history file
                   (a Spark run), or the history's findings table (a local run; small)
    episode ids    every accepted episode id of the run, handed back by the partitions

`new` and `still-open` come from a join of the keys; a previous finding that is gone is
`resolved` when its episode is still among the run's episode ids, else `episode-gone` (the
episode left the export and took its findings with it: no improvement). The changes are
written as a Parquet dataset in the run folder; the open ones (new and still-open, with the
date each was first seen) become the run's keys in the history, for the next night. The driver
collects only the counts per guidance and change.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from audit import history
from audit.errors import UserError
from audit.history import CHANGE_COLUMNS, EPISODE_GONE, EPISODE_PLACE, FINDING_KEY, NEW, RESOLVED, STILL_OPEN

KEYS_DDL = ", ".join(f"`{c}` {'bigint' if t == pl.Int64 else 'string'}" for c, t in history.KEYS_SCHEMA.items())
CHANGES_DDL = ", ".join(
    f"`{c}` {'bigint' if c == 'position' else 'string'}" for c in CHANGE_COLUMNS)
# Positions are 1 or more; a generic finding with none must still meet itself on the next night.
_NO_POSITION = -1
_JOIN = ["episode_id", "guidance_id", "rule_id", "_position"]


@dataclass(frozen=True)
class SparkChanges:
    previous_run: str | None
    previous_started: str | None
    counts: pl.DataFrame  # guidance_id, change, n: all the summary needs


def _joinable(frame):
    from pyspark.sql import functions as F

    return frame.withColumn("_position", F.coalesce(F.col("position"), F.lit(_NO_POSITION)))


def current_keys(findings):
    """One row per finding key, as `audit.history._keys`: generic findings under guidance ""."""
    from pyspark.sql import functions as F

    place = [F.col(c).cast("string").alias(c) for c in EPISODE_PLACE]
    return findings.select(
        "episode_id", F.coalesce(F.col("guidance_id"), F.lit("")).alias("guidance_id"), "rule_id",
        F.col("position").cast("bigint").alias("position"), *place,
    ).dropDuplicates(FINDING_KEY)


def previous_keys(spark, conn: sqlite3.Connection, run_id: str):
    """The open finding keys a run left in the history, as a Spark frame."""
    location = history.run_keys_location(conn, run_id)
    if location is None:  # a local run: its keys are in SQLite, as many as one machine audits
        frame = history._run_keys(conn, run_id)
        return spark.createDataFrame(frame.to_arrow(), schema=KEYS_DDL) if frame.height else \
            spark.createDataFrame([], KEYS_DDL)
    if not location.is_dir():
        raise UserError(f"{location}: the finding keys of history run {run_id} are missing "
                        "(restore the folder, or give a new --history)")
    return spark.read.schema(KEYS_DDL).parquet(str(location))


def compare(spark, conn: sqlite3.Connection, scope: str, findings, episode_ids, today: str, folder: Path,
            keys_folder: Path) -> SparkChanges:
    """Compare the run's findings with the previous run of `scope`; write the changes to
    `folder` and the run's open keys to `keys_folder` (both Parquet datasets)."""
    from pyspark.sql import functions as F

    current = _joinable(current_keys(findings))
    previous = history._previous(conn, scope)
    if previous is None:
        changes = current.withColumn("change", F.lit(NEW)).withColumn("first_seen", F.lit(today))
    else:
        before = _joinable(previous_keys(spark, conn, previous[0]))
        still = current.join(before.select(*_JOIN, "first_seen"), on=_JOIN, how="inner") \
            .withColumn("change", F.lit(STILL_OPEN))
        new = current.join(before, on=_JOIN, how="left_anti") \
            .withColumn("change", F.lit(NEW)).withColumn("first_seen", F.lit(today))
        exported = episode_ids.select("episode_id").distinct().withColumn("_exported", F.lit(True))
        gone = before.join(current, on=_JOIN, how="left_anti").join(exported, on="episode_id", how="left") \
            .withColumn("change", F.when(F.col("_exported"), F.lit(RESOLVED)).otherwise(F.lit(EPISODE_GONE)))
        changes = still.unionByName(new.select(still.columns)).unionByName(gone.select(still.columns))
    changes.select(*CHANGE_COLUMNS).write.mode("overwrite").parquet(str(folder))
    written = spark.read.schema(CHANGES_DDL).parquet(str(folder))
    # The next night compares with these: every open finding with the date it was first seen.
    written.where(F.col("change").isin(NEW, STILL_OPEN)).select(*history.KEYS_SCHEMA) \
        .write.mode("overwrite").parquet(str(keys_folder))
    counts = pl.from_arrow(written.groupBy("guidance_id", "change").count().toArrow())
    counts = counts.select(pl.col("guidance_id").cast(pl.String), pl.col("change").cast(pl.String),
                           pl.col("count").cast(pl.Int64).alias("n")) if counts.height else \
        pl.DataFrame(schema={"guidance_id": pl.String, "change": pl.String, "n": pl.Int64})
    return SparkChanges(previous[0] if previous else None, previous[1] if previous else None, counts)


def with_first_seen(spark, findings, changes_folder: Path | None, today: str):
    """The findings with `first_seen` (a date): from the history's open keys, else today."""
    from pyspark.sql import functions as F

    if changes_folder is None:
        return findings.withColumn("first_seen", F.lit(today).cast("date"))
    seen = _joinable(spark.read.schema(CHANGES_DDL).parquet(str(changes_folder))
                     .where(F.col("change").isin(NEW, STILL_OPEN))).select(*_JOIN, "first_seen")
    keyed = findings.withColumn("_guidance", F.coalesce(F.col("guidance_id"), F.lit(""))) \
        .withColumn("_position", F.coalesce(F.col("position").cast("bigint"), F.lit(_NO_POSITION)))
    joined = keyed.join(seen.withColumnRenamed("guidance_id", "_guidance"),
                        on=["episode_id", "_guidance", "rule_id", "_position"], how="left")
    return joined.withColumn("first_seen", F.coalesce(F.col("first_seen"), F.lit(today)).cast("date")) \
        .select(*findings.columns, "first_seen")
