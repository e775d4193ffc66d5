"""Run history in SQLite: what each night found, so the next night can say what changed.

The schema is versioned with `PRAGMA user_version`; `MIGRATIONS[n]` upgrades a file from
version n to n + 1, so a history file written by an older release keeps working. Writers take
an immediate transaction (SQLite's lock) and wait for each other, so concurrent runs against one
file are serialised rather than corrupting it. WAL journaling keeps readers off writers' backs.

Only finding keys (episode, guidance, rule, position) and counts are stored: the same
episode-level values the user already asked to have in findings.csv.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from audit.errors import UserError

FINDING_KEY = ["episode_id", "guidance_id", "rule_id", "position"]

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
]
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class Changes:
    previous_run: str | None  # run id compared with, if any
    previous_started: str | None
    keys: pl.DataFrame  # FINDING_KEY + change (new | resolved | still-open) + first_seen


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating or upgrading) a history file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=120, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        migrate(conn)
    except sqlite3.DatabaseError as error:
        raise UserError(f"{path}: not a usable history file ({error})") from None
    return conn


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
        conn.execute("ROLLBACK")
        raise


def _keys(findings: pl.DataFrame) -> pl.DataFrame:
    return findings.select(
        "episode_id", pl.col("guidance_id").fill_null(""), "rule_id", pl.col("position").cast(pl.Int64)
    ).unique()


def _previous(conn: sqlite3.Connection, scope: str):
    return conn.execute(
        "SELECT run_id, started FROM runs WHERE scope = ? ORDER BY rowid DESC LIMIT 1",
        (scope,),
    ).fetchone()


def _run_keys(conn: sqlite3.Connection, run_id: str) -> pl.DataFrame:
    rows = conn.execute(
        "SELECT episode_id, guidance_id, rule_id, position, first_seen FROM findings WHERE run_id = ?",
        (run_id,),
    ).fetchall()
    schema = {"episode_id": pl.String, "guidance_id": pl.String, "rule_id": pl.String,
              "position": pl.Int64, "first_seen": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row")


def compare(conn: sqlite3.Connection, scope: str, findings: pl.DataFrame, today: str) -> Changes:
    """New, resolved and still-open findings against the previous run over the same scope."""
    current = _keys(findings)
    previous = _previous(conn, scope)
    if previous is None:
        keys = current.with_columns(change=pl.lit("new"), first_seen=pl.lit(today))
        return Changes(None, None, keys.sort(FINDING_KEY))
    before = _run_keys(conn, previous[0])
    still = current.join(before, on=FINDING_KEY, how="inner").with_columns(change=pl.lit("still-open"))
    new = current.join(before, on=FINDING_KEY, how="anti").with_columns(
        change=pl.lit("new"), first_seen=pl.lit(today))
    resolved = before.join(current, on=FINDING_KEY, how="anti").with_columns(change=pl.lit("resolved"))
    columns = [*FINDING_KEY, "change", "first_seen"]
    keys = pl.concat([new.select(columns), still.select(columns), resolved.select(columns)])
    return Changes(previous[0], previous[1], keys.sort(FINDING_KEY))


def record(conn: sqlite3.Connection, *, scope: str, started: datetime, finished: datetime,
           summary: dict, changes: Changes, keep: int | None = None) -> str:
    """Store one run; returns its id. With `keep`, only the newest `keep` runs of the scope are
    kept: each run stores every open finding with its first-seen date, so older runs are not
    needed to compare with the next one."""
    run_id = f"{started.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"
    open_keys = changes.keys.filter(pl.col("change") != "resolved")
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT INTO runs (run_id, started, finished, scope, summary, tool_version, catalogue_version)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, started.isoformat(timespec="seconds"), finished.isoformat(timespec="seconds"), scope,
             json.dumps(summary, sort_keys=True), summary["tool_version"], summary["catalogue_version"]),
        )
        conn.executemany(
            "INSERT INTO inputs (run_id, path, sha256, rows_read, rows_rejected) VALUES (?, ?, ?, ?, ?)",
            [(run_id, i["path"], i["sha256"], i["rows_read"], i["rows_rejected"]) for i in summary["inputs"]],
        )
        conn.executemany(
            "INSERT INTO findings (run_id, episode_id, guidance_id, rule_id, position, first_seen)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(run_id, *row) for row in open_keys.select(*FINDING_KEY, "first_seen").iter_rows()],
        )
        if keep:
            _prune(conn, scope, keep)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return run_id


def _prune(conn: sqlite3.Connection, scope: str, keep: int) -> None:
    old = "SELECT run_id FROM runs WHERE scope = ? ORDER BY rowid DESC LIMIT -1 OFFSET ?"
    for table in ("findings", "inputs"):
        conn.execute(f"DELETE FROM {table} WHERE run_id IN ({old})", (scope, keep))
    conn.execute(f"DELETE FROM runs WHERE run_id IN ({old})", (scope, keep))


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
    rows = []
    for run in reversed(runs(conn, last, scope)):
        for guidance_id, counts in run["summary"].get("by_guidance", {}).items():
            rows.append(trend_row(run["run_id"], run["started"], guidance_id, counts))
    return pl.DataFrame(rows, schema=TREND_SCHEMA, orient="row")


TREND_SCHEMA = {"run_id": pl.String, "started": pl.String, "guidance_id": pl.String,
                "episodes": pl.Int64, "compliant": pl.Int64, "judged": pl.Int64}


def trend_row(run_id, started: str, guidance_id: str, counts: dict) -> tuple:
    """One guidance in one run; `judged` leaves out episodes dated before the guidance."""
    # Episodes that cannot be judged (before publication, or inside a date window: issue 10) are left out.
    judged = counts["episodes"] - counts.get("predates-guidance", 0) - counts.get("date-uncertain", 0)
    return (run_id, started, guidance_id, counts["episodes"], counts["compliant"], judged)



