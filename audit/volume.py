"""Is this run's export as big as it should be?

A nightly export that arrives short (a failed extract, a half-copied file, yesterday's folder
emptied) audits cleanly and makes every finding in the missing episodes look resolved. So the
volume is checked against the previous run of the scope and against a fixed floor, and a
shortfall is said on the console, at the top of the report, in summary.json, and by exit code 4.
"""

from __future__ import annotations

from audit.result import AuditResult

MAX_DROP = 0.2  # default --max-drop: a fifth fewer episodes than last time is not a quiet night


def check(result: AuditResult, previous: dict | None, max_drop: float, min_rows: int) -> dict:
    """summary.json's `volume`: the figures compared and the alerts raised (empty when fine)."""
    return check_totals(result.data.episodes_audited, sum(f.rows_read for f in result.data.files), previous,
                        max_drop, min_rows)


def check_totals(episodes: int, rows_read: int, previous: dict | None, max_drop: float, min_rows: int) -> dict:
    """The same check from a run's totals alone (a Spark run reduces them from its counts)."""
    before = (previous or {}).get("totals", {}).get("episodes_audited")
    alerts = []
    if rows_read == 0:
        alerts.append("the inputs hold no rows")
    elif episodes == 0:
        alerts.append(f"no episode could be audited ({rows_read:,} rows read, all rejected)")
    if rows_read < min_rows:
        alerts.append(f"{rows_read:,} rows read, fewer than --min-rows {min_rows:,}")
    if before and episodes < before * (1 - max_drop):
        drop = 1 - episodes / before
        alerts.append(f"{episodes:,} episodes audited, {drop:.0%} fewer than the {before:,} of the previous run "
                      f"({previous['started']}); more than --max-drop {max_drop:.0%}")
    return {
        "episodes_audited": episodes,
        "rows_read": rows_read,
        "previous_run": (previous or {}).get("run_id"),
        "previous_episodes_audited": before,
        "max_drop": max_drop,
        "min_rows": min_rows,
        "alerts": alerts,
    }
