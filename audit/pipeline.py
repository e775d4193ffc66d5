"""The stages, in order. `run_audit` audits in memory; `audit_to_directory` is a whole nightly
run: audit, compare with history, write outputs and the report, publish, record."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl

from audit import canonical, history, judge, load, match, outputs, rules
from audit.catalogue import Catalogue
from audit.config import Settings
from audit.layouts import Mapping, load_mapping
from audit.opcs import load_code_list

Progress = Callable[[str], None]


def _quiet(stage: str) -> None:
    pass


@dataclass(frozen=True)
class AuditOptions:
    inputs: list[Path]
    layout: str | None = None
    mapping: Mapping | None = None
    encoding: str = "auto"
    as_of: date = field(default_factory=date.today)
    code_list: pl.DataFrame | None = None  # the user's OPCS-4 code list (audit.opcs), if given


@dataclass(frozen=True)
class AuditResult:
    options: AuditOptions
    catalogue: Catalogue
    data: canonical.Canonical
    occurrences: pl.DataFrame
    findings: pl.DataFrame
    episodes: pl.DataFrame  # one row per matched (episode, guidance) pair, with its status
    started: datetime


def run_audit(options: AuditOptions, catalogue: Catalogue, started: datetime,
              progress: Progress = _quiet) -> AuditResult:
    progress("Reading exports")
    exports = load.read_exports(
        options.inputs, layout=options.layout, mapping=options.mapping, encoding=options.encoding
    )
    progress("Validating rows")
    index = tuple(p for g in catalogue.auditable() for cs in g.code_sets for p in cs.index.patterns)
    known = options.code_list["code"] if options.code_list is not None else None
    data = canonical.build(exports, index=index, known_codes=known)
    progress("Matching guidance")
    occurrences = match.find_occurrences(data.procedures, catalogue, options.as_of)
    progress("Checking coding rules")
    findings = rules.audit_findings(data.procedures, occurrences, catalogue, options.as_of, known)
    episodes = judge.judge(occurrences, findings, catalogue)
    return AuditResult(options, catalogue, data, occurrences, findings, episodes, started)


@dataclass(frozen=True)
class Outcome:
    result: AuditResult
    summary: dict
    out: Path
    run_id: str | None  # in the history, when one is kept


def audit_to_directory(settings: Settings, catalogue: Catalogue, started: datetime,
                       progress: Progress = _quiet) -> Outcome:
    from reports.render import (
        render_report,  # the report is the last stage, not a dependency of the others
    )
    from reports.archive import archive_report

    options = AuditOptions(
        inputs=list(settings.inputs),
        layout=settings.layout,
        mapping=load_mapping(settings.mapping) if settings.mapping else None,
        encoding=settings.encoding,
        as_of=settings.as_of or started.date(),
        code_list=load_code_list(settings.opcs_codes) if settings.opcs_codes else None,
    )
    result = run_audit(options, catalogue, started, progress)
    conn = history.connect(settings.history) if settings.history else None
    with closing(conn) if conn else nullcontext():
        changes = trend = None
        scope = settings.effective_scope()
        if conn:
            progress("Comparing with the previous run")
            changes = history.compare(conn, scope, result.findings, started.date().isoformat())
            trend = history.trend(conn, scope, settings.trend_runs - 1)
        progress("Writing outputs")
        staging, summary = outputs.stage(result, settings.out, changes=changes, trend=None)
        if trend is not None:
            current = pl.DataFrame(
                [history.trend_row(None, summary["run_started"], g, c) for g, c in summary["by_guidance"].items()],
                schema=history.TREND_SCHEMA, orient="row",
            )
            pl.concat([trend, current]).write_csv(staging / outputs.TREND_CSV)
        progress("Rendering the report")
        render_report(staging, catalogue, worksheet_cap=settings.worksheet_cap, generated=started)
        published = outputs.publish(staging, settings.out)
        archive_report(published, settings.archive, keep=settings.history_keep)
        run_id = None
        if conn:
            run_id = history.record(conn, scope=scope, started=started, finished=datetime.now(timezone.utc),
                                    summary=summary, changes=changes, keep=settings.history_keep)
    return Outcome(result, summary, published, run_id)

