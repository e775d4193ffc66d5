"""Run history in SQLite: what each night found, so the next night can say what changed.

The schema is versioned with `PRAGMA user_version`; `MIGRATIONS[n]` upgrades a file from
version n to n + 1, so a history file written by an older release keeps working. Writers take
an immediate transaction (SQLite's lock) and wait for each other, so concurrent runs against one
file are serialised rather than corrupting it. WAL journaling keeps readers off writers' backs.

Only finding keys (episode, guidance, rule, position) and counts are stored: the same
episode-level values the user already asked to have in findings.csv. A local run keeps its keys
in the SQLite file; a Spark run, whose keys can number millions, keeps them as a Parquet
dataset beside it (`keys_folder`), written by Spark and named in `runs.keys`, so no run has to
pass every finding through the driver (audit.engines.changes).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from audit.errors import UserError

if TYPE_CHECKING:  # imported where frames are made: `nice-audit history` reads SQLite only (issue 15)
    import polars as pl

FINDING_KEY = ["episode_id", "guidance_id", "rule_id", "position"]
EPISODE_PLACE = ["provider", "specialty", "consultant"]
# What happened to a finding since the previous run of the scope. A finding that is gone is
# "resolved" only when its episode is still in the export; an episode that left the export (a
# shorter or broken extract) took its findings with it, which is no improvement.
NEW, STILL_OPEN, RESOLVED, EPISODE_GONE = "new", "still-open", "resolved", "episode-gone"
CHANGES = (NEW, RESOLVED, EPISODE_GONE, STILL_OPEN)

MIGRATIONS = [
    # 0 -> 1: the first release: runs and their finding keys.
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        started TEXT NOT NULL,
        finished TEXT NOT NULL,
        scope TEXT NOT NULL,
        summary TEXT NOT NULL
    );
    CREATE TABLE findings (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        episode_id TEXT NOT NULL,
        guidance_id TEXT NOT NULL,
        rule_id TEXT NOT NULL,
        position INTEGER
    );
    CREATE INDEX findings_run ON findings(run_id);
    CREATE INDEX runs_scope ON runs(scope, started);
    """,
    # 1 -> 2: versions and inputs per run; when each finding was first seen.
    """
    ALTER TABLE runs ADD COLUMN tool_version TEXT NOT NULL DEFAULT '';
    ALTER TABLE runs ADD COLUMN catalogue_version TEXT NOT NULL DEFAULT '';
    ALTER TABLE findings ADD COLUMN first_seen TEXT;
    UPDATE findings SET first_seen = (SELECT substr(started, 1, 10) FROM runs WHERE runs.run_id = findings.run_id);
    CREATE TABLE inputs (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        rows_read INTEGER NOT NULL,
        rows_rejected INTEGER NOT NULL
    );
    """,
    # 2 -> 3: where each finding's episode was (so a resolved finding still says it).
    """
    ALTER TABLE findings ADD COLUMN provider TEXT;
    ALTER TABLE findings ADD COLUMN specialty TEXT;
    ALTER TABLE findings ADD COLUMN consultant TEXT;
    """,
    # 3 -> 4: a Spark run's keys live in a Parquet dataset (path relative to the history file's
    # folder); NULL: in the findings table.
    """
    ALTER TABLE runs ADD COLUMN keys TEXT;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class Changes:
    previous_run: str | None  # run id compared with, if any
    previous_started: str | None
    keys: pl.DataFrame  # FINDING_KEY + change (CHANGES) + first_seen + EPISODE_PLACE


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating or upgrading) a history file."""
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a history file")
    if not path.parent.is_dir():
        raise UserError(f"{path}: the folder {path.parent} does not exist (create it first)")
    writable = path if path.exists() else path.parent  # SQLite also writes -wal and -shm files beside it
    if not os.access(path.parent, os.W_OK) or not os.access(writable, os.W_OK):
        read_only = os.statvfs(path.parent).f_flag & os.ST_RDONLY
        raise UserError(f"{path}: cannot be written ({'read-only file system' if read_only else 'permission denied'})")
    try:
        return _opened(path)
    except sqlite3.Error as error:
        raise problem(path, error) from None


LOCK_WAIT_SECONDS = 120  # how long a run waits for another run's hold on the history


def _opened(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode at the current schema. Two runs opening a new history at once can
    meet where SQLite answers "busy" at once rather than wait (it does not wait where the two
    could wait for each other, as when a read lock must become a write lock): 4 of 30 such pairs
    of runs failed so, none of 40 since the one that met it retries, within the same wait."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        conn = sqlite3.connect(path, timeout=LOCK_WAIT_SECONDS, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            migrate(conn)
            return conn
        except sqlite3.OperationalError as error:
            conn.close()
            busy = (getattr(error, "sqlite_errorcode", 0) & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        except BaseException:
            conn.close()
            raise


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise UserError(f"history file has schema version {version}; this release reads up to {SCHEMA_VERSION}")
        for step in range(version, target):
            for statement in MIGRATIONS[step].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step + 1}")
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open, without hiding the error that caused it (SQLite
    may already have rolled back, e.g. on a full disk, and a failed ROLLBACK says nothing)."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def problem(path: Path, error: sqlite3.Error) -> UserError:
    """A history error as one line naming the file and the real cause."""
    code = getattr(error, "sqlite_errorcode", None) or 0
    primary = code & 0xFF
    if primary == sqlite3.SQLITE_FULL or _disk_full(path):
        cause = "no space left on the device"
    elif primary == sqlite3.SQLITE_READONLY:
        cause = "cannot be written (read-only file or folder)"
    elif primary == sqlite3.SQLITE_CANTOPEN:
        cause = "cannot be opened (check the folder exists and is writable)"
    elif primary in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        cause = "not a usable history file (not SQLite, or damaged)"
    elif primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        cause = "locked by another process for too long"
    else:
        cause = f"history file error ({error})"
    return UserError(f"{path}: {cause}")


def _disk_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(Path(path).parent).free < 1024 * 1024
    except OSError:
        return False


def _keys(findings: pl.DataFrame) -> pl.DataFrame:
    import polars as pl

    place = [pl.col(c).cast(pl.String) if c in findings.columns else pl.lit(None, pl.String).alias(c)
             for c in EPISODE_PLACE]
    return findings.select(
        "episode_id", pl.col("guidance_id").fill_null(""), "rule_id", pl.col("position").cast(pl.Int64), *place
    ).unique(FINDING_KEY, keep="first", maintain_order=True)


def _previous(conn: sqlite3.Connection, scope: str):
    return conn.execute(
        "SELECT run_id, started FROM runs WHERE scope = ? ORDER BY rowid DESC LIMIT 1",
        (scope,),
    ).fetchone()


def _keys_schema() -> dict:
    """The columns of a run's open finding keys (the findings table; a Spark run's Parquet)."""
    import polars as pl

    return {"episode_id": pl.String, "guidance_id": pl.String, "rule_id": pl.String,
            "position": pl.Int64, "first_seen": pl.String, **{c: pl.String for c in EPISODE_PLACE}}


def database_path(conn: sqlite3.Connection) -> Path:
    """The history file a connection has open."""
    return Path(next(row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main"))


def keys_folder(conn: sqlite3.Connection, run_id: str) -> Path:
    """Where a Spark run keeps its open finding keys: beside the history file, one folder a run
    (so they are pruned with the run, and move with the history file)."""
    history = database_path(conn)
    return history.parent / f"{history.name}.keys" / f"run_id={run_id}"


def run_keys_location(conn: sqlite3.Connection, run_id: str) -> Path | None:
    """A run's Parquet keys dataset, or None when its keys are in the findings table."""
    row = conn.execute("SELECT keys FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return database_path(conn).parent / row[0] if row and row[0] else None


def _run_keys(conn: sqlite3.Connection, run_id: str) -> pl.DataFrame:
    import polars as pl

    location = run_keys_location(conn, run_id)
    if location is not None:
        files = sorted(location.rglob("*.parquet"))  # Spark leaves _SUCCESS and .crc files beside them
        if not files and not location.is_dir():
            raise UserError(f"{location}: the finding keys of history run {run_id} are missing "
                            "(restore the folder, or give a new --history)")
        schema = _keys_schema()
        frame = pl.read_parquet(files, hive_partitioning=False) if files else pl.DataFrame(schema=schema)
        return frame.select(pl.col(c).cast(t) for c, t in schema.items())
    rows = conn.execute(
        "SELECT episode_id, guidance_id, rule_id, position, first_seen, provider, specialty, consultant"
        " FROM findings WHERE run_id = ?",
        (run_id,),
    ).fetchall()
    return pl.DataFrame(rows, schema=_keys_schema(), orient="row")


CHANGE_COLUMNS = [*FINDING_KEY, "change", "first_seen", *EPISODE_PLACE]


def compare(conn: sqlite3.Connection, scope: str, findings: pl.DataFrame, today: str,
            present: pl.Series | None = None) -> Changes:
    """New, resolved, gone-with-their-episode and still-open findings against the previous run
    over the same scope. `present`: every episode id in this run's export (None: all findings
    that are gone count as resolved)."""
    import polars as pl

    current = _keys(findings)
    previous = _previous(conn, scope)
    if previous is None:
        keys = current.with_columns(change=pl.lit(NEW), first_seen=pl.lit(today))
        return Changes(None, None, keys.select(CHANGE_COLUMNS).sort(FINDING_KEY))
    before = _run_keys(conn, previous[0])
    # Generic findings have no guidance ("" here) and some no position (null): the same key on
    # both nights must still match, or such a finding would be "new" and "resolved" every night.
    still = current.join(before.select(*FINDING_KEY, "first_seen"), on=FINDING_KEY, how="inner",
                         nulls_equal=True).with_columns(change=pl.lit(STILL_OPEN))
    new = current.join(before, on=FINDING_KEY, how="anti", nulls_equal=True).with_columns(
        change=pl.lit(NEW), first_seen=pl.lit(today))
    gone = before.join(current, on=FINDING_KEY, how="anti", nulls_equal=True)
    if present is None:
        gone = gone.with_columns(change=pl.lit(RESOLVED))
    else:
        still_exported = pl.col("episode_id").is_in(present.implode())
        gone = gone.with_columns(change=pl.when(still_exported).then(pl.lit(RESOLVED)).otherwise(pl.lit(EPISODE_GONE)))
    keys = pl.concat([new.select(CHANGE_COLUMNS), still.select(CHANGE_COLUMNS), gone.select(CHANGE_COLUMNS)])
    return Changes(previous[0], previous[1], keys.sort(FINDING_KEY))


def previous_summary(conn: sqlite3.Connection, scope: str) -> dict | None:
    """The summary of the newest run of a scope, with its run id and start, or None."""
    row = conn.execute("SELECT run_id, started, summary FROM runs WHERE scope = ? ORDER BY rowid DESC LIMIT 1",
                       (scope,)).fetchone()
    return None if row is None else {"run_id": row[0], "started": row[1], **json.loads(row[2])}


def other_scopes(conn: sqlite3.Connection, scope: str) -> dict[str, int]:
    """Runs recorded per scope other than this one (to say why a run has nothing to compare with)."""
    rows = conn.execute("SELECT scope, count(*) FROM runs WHERE scope != ? GROUP BY scope ORDER BY scope",
                        (scope,)).fetchall()
    return {r[0]: r[1] for r in rows}


def new_run_id(started: datetime, conn: sqlite3.Connection | None = None, scope: str = "",
               reproducible: bool = False) -> str:
    """A run's id: its start time, readable, and a suffix for runs in the same second: random,
    or with a pinned clock (SOURCE_DATE_EPOCH) derived from the scope and the history's last
    run, so that a re-run over the same inputs and history gives the same outputs."""
    if reproducible:
        last = conn.execute("SELECT max(rowid) FROM runs").fetchone()[0] if conn else None
        suffix = hashlib.sha256(f"{scope}|{last}".encode()).hexdigest()[:6]
    else:
        suffix = uuid.uuid4().hex[:6]
    return f"{started.strftime('%Y%m%dT%H%M%SZ')}-{suffix}"


def record(conn: sqlite3.Connection, *, run_id: str, scope: str, started: datetime, finished: datetime,
           summary: dict, changes: Changes | None, keep: int | None = None, keys: Path | None = None) -> str:
    """Store one run under `run_id`. With `keep`, only the newest `keep` runs of the scope are
    kept: each run stores every open finding with its first-seen date, so older runs are not
    needed to compare with the next one. `keys`: the run's open finding keys are already a
    Parquet dataset there (a Spark run, `keys_folder`); `changes` is then not needed."""
    import polars as pl

    open_keys = (changes.keys.filter(pl.col("change").is_in([NEW, STILL_OPEN])) if keys is None
                 else pl.DataFrame(schema=_keys_schema()))
    location = None if keys is None else os.path.relpath(keys, database_path(conn).parent)
    pruned: list[Path] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT INTO runs (run_id, started, finished, scope, summary, tool_version, catalogue_version, keys)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, started.isoformat(timespec="seconds"), finished.isoformat(timespec="seconds"), scope,
             json.dumps(summary, sort_keys=True), summary["tool_version"], summary["catalogue_version"], location),
        )
        conn.executemany(
            "INSERT INTO inputs (run_id, path, sha256, rows_read, rows_rejected) VALUES (?, ?, ?, ?, ?)",
            [(run_id, i["path"], i["sha256"], i["rows_read"], i["rows_rejected"]) for i in summary["inputs"]],
        )
        conn.executemany(
            "INSERT INTO findings (run_id, episode_id, guidance_id, rule_id, position, first_seen,"
            " provider, specialty, consultant) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_id, *row) for row in open_keys.select(*FINDING_KEY, "first_seen", *EPISODE_PLACE).iter_rows()],
        )
        if keep:
            pruned = _prune(conn, scope, keep)
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    for folder in pruned:  # after the commit: a run the history still names keeps its keys
        shutil.rmtree(folder, ignore_errors=True)
    return run_id


def _prune(conn: sqlite3.Connection, scope: str, keep: int) -> list[Path]:
    """Delete the scope's runs older than the newest `keep`; returns their Parquet keys folders."""
    old = "SELECT run_id FROM runs WHERE scope = ? ORDER BY rowid DESC LIMIT -1 OFFSET ?"
    base = database_path(conn).parent
    folders = [base / row[0] for row in conn.execute(
        f"SELECT keys FROM runs WHERE run_id IN ({old}) AND keys IS NOT NULL", (scope, keep)).fetchall()]
    for table in ("findings", "inputs"):
        conn.execute(f"DELETE FROM {table} WHERE run_id IN ({old})", (scope, keep))
    conn.execute(f"DELETE FROM runs WHERE run_id IN ({old})", (scope, keep))
    return folders


def runs(conn: sqlite3.Connection, limit: int | None = None, scope: str | None = None) -> list[dict]:
    """Past runs, newest first, with their summaries."""
    query = "SELECT run_id, started, finished, scope, summary FROM runs"
    params: list = []
    if scope is not None:
        query += " WHERE scope = ?"
        params.append(scope)
    query += " ORDER BY rowid DESC"  # insertion order: runs can start in the same second
    if limit:
        query += f" LIMIT {int(limit)}"
    return [
        {"run_id": r[0], "started": r[1], "finished": r[2], "scope": r[3], "summary": json.loads(r[4])}
        for r in conn.execute(query, params).fetchall()
    ]


def trend(conn: sqlite3.Connection, scope: str, last: int) -> pl.DataFrame:
    """Compliance by guidance over the last `last` runs of a scope (oldest first)."""
    import polars as pl

    rows = []
    for run in reversed(runs(conn, last, scope)):
        rows += trend_rows(run["run_id"], run["summary"])
    return pl.DataFrame(rows, schema=_trend_schema(), orient="row")


def _trend_schema() -> dict:
    import polars as pl

    return {"run_id": pl.String, "started": pl.String, "guidance_id": pl.String,
            "episodes": pl.Int64, "compliant": pl.Int64, "judged": pl.Int64,
            "resolved": pl.Int64, "episode_gone": pl.Int64}


def __getattr__(name: str):
    """`history.TREND_SCHEMA` and `KEYS_SCHEMA`, built on first use (PEP 562) so that importing this module does not
    import polars."""
    if name == "TREND_SCHEMA":
        return _trend_schema()
    if name == "KEYS_SCHEMA":
        return _keys_schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def trend_rows(run_id: str, summary: dict) -> list[tuple]:
    """One row per guidance in one run; `judged` leaves out episodes dated before the guidance;
    `resolved` and `episode_gone` (findings gone since the run before, the episode still exported
    or not) are empty for runs recorded before they were counted."""
    changed = (summary.get("changes") or {}).get("by_guidance") or {}
    rows = []
    for guidance_id, counts in summary.get("by_guidance", {}).items():
        # Episodes that cannot be judged (before publication, or inside a date window: issue 10).
        judged = counts["episodes"] - counts.get("predates-guidance", 0) - counts.get("date-uncertain", 0)
        gone = changed.get(guidance_id, {})
        rows.append((run_id, summary["run_started"], guidance_id, counts["episodes"], counts["compliant"], judged,
                     gone.get(RESOLVED) if changed else None, gone.get(EPISODE_GONE) if changed else None))
    return rows
