"""The stages, in order. `run_audit` audits in memory; `audit_to_directory` is a whole nightly
run: audit, compare with history, write outputs and the report, publish, record."""

from __future__ import annotations

import importlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from contextlib import closing, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from audit import history, load, outputs, publish, unit, volume
from audit.catalogue import Catalogue
from audit.config import Settings
from audit.errors import UserError
from audit.in_memory import in_memory
from audit.layouts import load_mapping
from audit.opcs import load_code_list
from audit.result import AuditOptions, AuditResult

Progress = Callable[[str], None]
log = logging.getLogger("audit")


def _quiet(stage: str) -> None:
    pass


def _import_in_background(module: str) -> None:
    """Import `module` in a thread while the audit goes on: importing is Python work (holding the
    GIL) and the audit's is mostly polars' (releasing it), so on two cores the two overlap. The
    report's modules (jinja2 among them: 0.1-0.2 s) are imported so once the inputs are read,
    not before: a run stopped by its input never pays for them. A module imported here is the
    one any later import finds (Python's import lock makes the later import wait for this one)."""
    def load() -> None:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - the render's own import says what is wrong, where it is handled
            pass

    threading.Thread(target=load, name=f"import {module}", daemon=True).start()


def run_audit(options: AuditOptions, catalogue: Catalogue, started: datetime,
              progress: Progress = _quiet) -> AuditResult:
    """The whole run as one unit of work (audit.unit) over every input file."""
    progress("Reading exports")
    exports = load.read_exports(
        options.inputs, layout=options.layout, mapping=options.mapping, encoding=options.encoding,
        # The record scan notes the rows the prefilter must triage (and those dated after as-of).
        index=unit.index_patterns(catalogue), as_of=options.as_of,
    )
    _import_in_background("reports.render")
    ctx = unit.AuditContext(catalogue, options.as_of, started, tuple(exports), options.code_list)
    return unit.audit_exports(exports, ctx, options, progress)


@dataclass(frozen=True)
class Outcome:
    result: AuditResult
    summary: dict
    out: Path
    run_id: str  # in the history, when one is kept; in --out's marker file always


def protected_paths(settings: Settings, config: Path | None) -> list[tuple[str, Path]]:
    """The user's files that --out must not contain, as (what, path)."""
    named = [("input", p) for p in settings.inputs] + [("catalogue", p) for p in settings.catalogue]
    for what, path in (("config file", config), ("mapping", settings.mapping), ("history", settings.history),
                       ("OPCS-4 code list", settings.opcs_codes)):
        if path is not None:
            named.append((what, path))
    return named


def _check_mapping_used(settings: Settings, result: AuditResult) -> None:
    """A mapping applies to the files whose layout is not recognised; given for none of them it
    would be ignored silently (its `carry` columns missing from the outputs): an error instead."""
    if settings.mapping is None:
        return
    other = [f for f in result.data.files if f.layout != "mapped"]
    if other and len(other) == len(result.data.files):
        detected = ", ".join(sorted({f"{Path(f.path).name} ({f.layout})" for f in other}))
        raise UserError(f"--mapping {settings.mapping}: not used, every input's layout was recognised "
                        f"({detected}); give --layout mapped to apply it, or leave --mapping out")
    if other:
        log.info("--mapping %s applies to the files of unrecognised layout only, not to %s", settings.mapping,
                 ", ".join(Path(f.path).name for f in other))


def _compare(conn: sqlite3.Connection | None, settings: Settings, scope: str, result: AuditResult,
             started: datetime, progress: Progress):
    """What the history says about this run: changes, trend, the previous run's summary, and
    the runs of other scopes (all None without a history)."""
    if conn is None:
        return None, None, None, None
    progress("Comparing with the previous run")
    try:
        return (
            history.compare(conn, scope, result.findings, started.date().isoformat(), present=result.data.episode_ids),
            history.trend(conn, scope, settings.trend_runs - 1),
            history.previous_summary(conn, scope),
            history.other_scopes(conn, scope),
        )
    except sqlite3.Error as error:
        raise history.problem(settings.history, error) from None


def audit_to_directory(settings: Settings, catalogue: Catalogue, started: datetime,
                       progress: Progress = _quiet, config: Path | None = None,
                       reproducible: bool = False) -> Outcome:
    """A whole run into --out. `config`: the config file used (protected from --out);
    `reproducible`: the clock is pinned (SOURCE_DATE_EPOCH), so the run id is derived, not random."""
    # Any run id will do to size the work folders' names: they all have the same length.
    out = publish.check_out(settings.out, protected_paths(settings, config), history.new_run_id(started))
    with publish.lock(out):
        publish.recover(out)
    conn = history.connect(settings.history) if settings.history else None  # unusable: stop before the audit
    scope = settings.effective_scope()
    run_id = history.new_run_id(started, conn, scope if conn else "", reproducible)
    with closing(conn) if conn else nullcontext():
        options = AuditOptions(
            inputs=list(settings.inputs),
            layout=settings.layout,
            mapping=load_mapping(settings.mapping) if settings.mapping else None,
            encoding=settings.encoding,
            as_of=settings.as_of or started.date(),
            code_list=load_code_list(settings.opcs_codes) if settings.opcs_codes else None,
        )
        result = run_audit(options, catalogue, started, progress)
        _check_mapping_used(settings, result)
        with in_memory():
            changes, trend, previous, others = _compare(conn, settings, scope, result, started, progress)
        progress("Writing outputs")
        staging = publish.Staging(out, run_id, settings.history)

        def report(summary: dict, bundle) -> None:
            """The trend (this run added) and report.html, rendered from the summary and bundle
            while the other files are written."""
            if trend is not None:
                current = pl.DataFrame(history.trend_rows(run_id, summary), schema=history.TREND_SCHEMA,
                                       orient="row")
                outputs.write_csv(pl.concat([trend, current]), staging.path / outputs.TREND_CSV)
            progress("Rendering the report")
            # Imported only now: jinja2 is the report's, not a dependency of the other stages (issue 15).
            from reports.render import render_report

            render_report(staging.path, catalogue, worksheet_cap=settings.worksheet_cap, generated=started,
                          written=(summary, bundle))

        try:
            with in_memory():  # the outputs and the report: small frames (audit.in_memory)
                summary = outputs.write(result, staging.path, changes=changes, trend=None,
                                        volume=volume.check(result, previous, settings.max_drop, settings.min_rows),
                                        run_id=run_id, scope=scope if conn else None,
                                        other_scopes=others, worksheet_cap=settings.worksheet_cap, then=report)
        except OSError as error:
            staging.drop()
            raise publish.with_errno(error, out) from None
        except BaseException:
            staging.drop()
            raise

        def record() -> None:
            if conn:
                try:
                    history.record(conn, run_id=run_id, scope=scope, started=started,
                                   finished=datetime.now(timezone.utc), summary=summary, changes=changes,
                                   keep=settings.history_keep)
                except sqlite3.Error as error:
                    raise history.problem(settings.history, error) from None

        published = staging.publish(record)
        from reports.archive import archive_report

        archive_report(published, settings.archive, keep=settings.history_keep)
    return Outcome(result, summary, published, run_id)
