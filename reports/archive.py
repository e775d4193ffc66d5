"""A dated archive of reports: "what did last Tuesday's report say?" has an answer.

After each run the published report is copied to `ARCHIVE/YYYY-MM-DD-report.html` (the run's
date in UK local time; a second run on the same day replaces the first) with its headline counts
beside it (`YYYY-MM-DD-summary.json`), and `ARCHIVE/index.html` lists every kept report, newest
first. The archive keeps the newest `keep` days, matching `--history-keep`. ARCHIVE defaults to
`archive/` beside the output folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reports.frames import read_summary
from reports.render import REPORT_HTML, _assets, _environment
from reports.text import UK, long_date, long_datetime, number

INDEX_HTML = "index.html"
DATED = re.compile(r"^(\d{4}-\d{2}-\d{2})-report\.html$")


@dataclass(frozen=True)
class ArchivedRun:
    href: str
    day: str
    started: str
    episodes: str
    non_compliant: str
    superseded: str
    findings: str
    errors: str
    rejected: str


def _headline(summary: dict) -> dict:
    totals = summary.get("totals", {})
    statuses = summary.get("by_status", {})  # episode–guidance matches by status
    severities = summary.get("by_severity", {})
    return {
        "run_started": summary.get("run_started", ""),
        "episodes_audited": totals.get("episodes_audited", 0),
        "rows_rejected": totals.get("rows_rejected", 0),
        "findings": totals.get("findings", 0),
        "errors": severities.get("error", 0),
        "non_compliant": statuses.get("non-compliant", 0),
        "superseded": statuses.get("superseded", 0),
    }


def _day(started: str) -> str:
    when = datetime.fromisoformat(started)
    if when.utcoffset() is not None and UK is not None:
        when = when.astimezone(UK)
    return when.date().isoformat()


def _write(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    staging.write_text(text, encoding="utf-8", newline="\n")
    os.replace(staging, path)


def archive_report(out_dir: Path, archive_dir: Path | None = None, *, keep: int = 400) -> Path:
    """Copy out_dir's report into the archive, prune to `keep` days, rewrite the index; return the copy."""
    out_dir = Path(out_dir)
    archive = Path(archive_dir) if archive_dir else out_dir.parent / "archive"
    archive.mkdir(parents=True, exist_ok=True)
    summary = read_summary(out_dir)
    day = _day(summary["run_started"])
    target = archive / f"{day}-report.html"
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.copyfile(out_dir / REPORT_HTML, staging)
    os.replace(staging, target)
    _write(archive / f"{day}-summary.json", json.dumps(_headline(summary), indent=2, sort_keys=True) + "\n")
    days = sorted((m.group(1) for p in archive.iterdir() if (m := DATED.match(p.name))), reverse=True)
    for old in days[keep:]:
        for name in (f"{old}-report.html", f"{old}-summary.json"):
            (archive / name).unlink(missing_ok=True)
    _write(archive / INDEX_HTML, _index(archive, days[:keep]))
    return target


def _index(archive: Path, days: list[str]) -> str:
    runs = []
    for day in days:
        try:
            h = json.loads((archive / f"{day}-summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            h = {}
        started = datetime.fromisoformat(h["run_started"]) if h.get("run_started") else None
        runs.append(ArchivedRun(
            href=f"{day}-report.html", day=long_date(datetime.fromisoformat(day).date()),
            started=long_datetime(started) if started else "not recorded",
            episodes=number(int(h.get("episodes_audited", 0))), non_compliant=number(int(h.get("non_compliant", 0))),
            superseded=number(int(h.get("superseded", 0))), findings=number(int(h.get("findings", 0))),
            errors=number(int(h.get("errors", 0))), rejected=number(int(h.get("rows_rejected", 0))),
        ))
    return _environment().get_template("archive_index.html").render(runs=runs, assets=_assets())
