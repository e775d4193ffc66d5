"""The command line: parse options, call the pipeline, map errors to exit codes.

Exit codes (README): 0 success; 1 findings at or above --fail-on; 2 usage or input error;
3 internal error; 4 the export shrank or was empty (--max-drop, --min-rows).
Console output never contains episode-level values: only counts and paths.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import sys
import traceback
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

# Only light modules here (no polars, pandera or jinja2): `--version`, `catalogue` and `history`
# must start fast, so each command imports the stages it needs (tests/test_cli_imports.py).
from audit import __version__, memory
from audit.config import load_settings
from audit.errors import EXIT_FINDINGS, EXIT_INTERNAL_ERROR, EXIT_USER_ERROR, EXIT_VOLUME, UserError
from audit.layouts import ENCODINGS, LAYOUTS

try:
    from typer._click.exceptions import ClickException, NoArgsIsHelpError  # typer >= 0.20 vendors click
except ImportError:  # older typer: click itself
    from click.exceptions import ClickException, NoArgsIsHelpError
from typer.core import TyperGroup


class OneLineErrors(TyperGroup):
    """Usage errors, the option parser's included, as one line on stderr and exit 2 (no boxed
    panels: a cron mail or a log line must read as one line)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as error:  # a bare command: its help, as asked
            typer.echo(error.format_message(), err=True)
            code = EXIT_USER_ERROR
        except ClickException as error:
            hint = f" (see '{error.ctx.command_path} --help')" if getattr(error, "ctx", None) else ""
            message = " ".join(error.format_message().split())
            typer.echo(f"nice-audit: error: {message}{hint}", err=True)
            code = EXIT_USER_ERROR
        except typer.Abort:
            typer.echo("nice-audit: aborted", err=True)
            code = 130
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


# rich_markup_mode=None: plain help, flags without a "<bool>" after them, defaults said one way
# ("(default X)" in the help text).
app = typer.Typer(
    help="Audit OPCS-4 procedure coding against NICE interventional procedures guidance.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=OneLineErrors,
    rich_markup_mode=None,
)
catalogue_app = typer.Typer(help="List, show and check guidance catalogue entries.", no_args_is_help=True,
                            rich_markup_mode=None)
app.add_typer(catalogue_app, name="catalogue")

log = logging.getLogger("audit")

CatalogueOption = Annotated[
    Optional[list[Path]],
    typer.Option("--catalogue", help="Extra guidance TOML file or folder (repeatable)."),
]


def _fail(message: str, code: int) -> None:
    for line in message.splitlines():
        typer.echo(f"nice-audit: error: {line}", err=True)
    raise typer.Exit(code)


def error_log_folder() -> Path:
    """Where internal-error details go: the user's own state folder (XDG), never --out or the
    working folder, which may belong to someone else or be the file-system root."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "nice-audit"


def _internal_error() -> None:
    """Unexpected exceptions: a short line on the console, the details in a log file."""
    kind, _, trace = sys.exc_info()
    target = error_log_folder() / "nice-audit-error.log"
    # Where it failed, but not the exception's message: messages can quote episode data.
    details = "".join(traceback.format_list(traceback.extract_tb(trace)))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(
            f"nice-audit {__version__}: internal error {kind.__name__} (message withheld: it may "
            f"quote episode data)\nTraceback (most recent call last):\n{details}", encoding="utf-8")
        where = f"; details in {target}"
    except OSError:
        where = ""
    _fail(f"internal error ({kind.__name__}){where}. Please report it.", EXIT_INTERNAL_ERROR)


# Errors of the machine rather than of the tool: a full disk, a read-only or missing folder, a
# name too long, a file where a folder should be. The message names the path and the problem.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG,
                      errno.ENOTDIR, errno.EISDIR, errno.ENOENT, errno.EEXIST, errno.ELOOP, errno.EIO}


def environment_problem(error: OSError) -> str:
    where = error.filename if error.filename is not None else "a file the run writes"
    problem = error.strerror or type(error).__name__
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        problem += " (the previous outputs are kept)"
    return f"{where}: {problem}"


def guarded():
    """Turn user errors into one line and exit 2, anything unexpected into exit 3."""

    def wrap(command):
        @functools.wraps(command)
        def run(*args, **kwargs):
            try:
                return command(*args, **kwargs)
            except UserError as error:
                _fail(str(error), EXIT_USER_ERROR)
            except BrokenPipeError:  # output piped into `head` and the like: not an error
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                raise typer.Exit(0) from None
            except (typer.Exit, typer.Abort, KeyboardInterrupt):
                raise
            except OSError as error:
                if error.errno not in ENVIRONMENT_ERRNOS:
                    _internal_error()
                _fail(environment_problem(error), EXIT_USER_ERROR)
            except Exception:
                _internal_error()
            except BaseException as error:  # polars' PanicException derives from BaseException
                if isinstance(error, (SystemExit, GeneratorExit)):
                    raise
                _internal_error()

        return run

    return wrap


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="nice-audit: %(levelname)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def _pinned_clock() -> bool:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return bool(epoch and epoch.isdigit())


def _run_time() -> datetime:
    """Now, or SOURCE_DATE_EPOCH when set (reproducible outputs; tests pin it)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        try:
            return datetime.fromtimestamp(int(epoch), tz=timezone.utc)
        except (OverflowError, OSError, ValueError):  # past year 9999
            raise UserError("SOURCE_DATE_EPOCH is not a usable time (seconds since 1970, before year 10000)") from None
    return datetime.now(tz=timezone.utc)


def _parse_as_of(value: str | None) -> date:
    if value is None:
        return _run_time().date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(f"--as-of {value!r} is not a date (yyyy-mm-dd)") from None


SEVERITY_RANK = {"warning": 1, "superseded": 2, "error": 3}  # --fail-on: at or above


def fails(findings_severities: set[str], fail_on: str) -> bool:
    """True when any finding is at or above --fail-on (warning < superseded < error)."""
    if fail_on == "never":
        return False
    return any(SEVERITY_RANK[s] >= SEVERITY_RANK[fail_on] for s in findings_severities)


def _progress(quiet: bool):
    """A spinner naming the stage, on interactive terminals only (never in cron logs)."""
    if quiet or not sys.stderr.isatty():
        return contextlib.nullcontext(lambda stage: log.debug(stage))
    from rich.console import Console

    status = Console(stderr=True).status("Starting")

    @contextlib.contextmanager
    def running():
        with status:
            yield lambda stage: status.update(stage)

    return running()


@app.command()
@guarded()
def run(
    inputs: Annotated[Optional[list[Path]], typer.Argument(help="Export files (CSV, .csv.gz, Parquet) or folders of them.", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for the outputs (replaced whole).")] = None,
    config: Annotated[Optional[Path], typer.Option(help="Config file (default ./nice-audit.toml if present).")] = None,
    layout: Annotated[Optional[str], typer.Option(help=f"Force a layout: {', '.join(LAYOUTS)}.")] = None,
    mapping: Annotated[Optional[Path], typer.Option(help="TOML column mapping for unrecognised exports.")] = None,
    encoding: Annotated[Optional[str], typer.Option(help=f"Text encoding: {', '.join(ENCODINGS)} (default auto).")] = None,
    catalogue: CatalogueOption = None,
    history: Annotated[Optional[Path], typer.Option(help="SQLite run history (enables 'what changed').")] = None,
    history_keep: Annotated[Optional[int], typer.Option(help="Runs kept per scope in the history (default 400).")] = None,
    opcs_codes: Annotated[Optional[Path], typer.Option("--opcs-codes", help="OPCS-4 code list (TRUD CODE<TAB>TITLE file): flags codes not in it, titles every code.")] = None,
    scope: Annotated[Optional[str], typer.Option(help="Name of the series of runs to compare with (default the runs into the same --out folder).")] = None,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Date for undated episodes (default today).")] = None,
    worksheet_cap: Annotated[Optional[int], typer.Option(help="Report worksheet episodes per rule (default 200).")] = None,
    fail_on: Annotated[Optional[str], typer.Option(help="Exit 1 when findings reach: never, warning, superseded, error (default never).")] = None,
    max_drop: Annotated[Optional[float], typer.Option("--max-drop", help="Exit 4 when episodes audited fall by more than this fraction since the previous run (default 0.2).", show_default=False)] = None,
    min_rows: Annotated[Optional[int], typer.Option("--min-rows", help="Exit 4 when the inputs hold fewer rows than this (default 0).", show_default=False)] = None,
    max_memory: Annotated[Optional[str], typer.Option("--max-memory", help="Stop with exit 2, naming the file, past this memory (e.g. 8G; default 3/4 of the machine's).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing unless something is wrong.")] = False,
    engine: Annotated[Optional[str], typer.Option(help="local (default) or spark (Parquet, tables, JDBC; see README).")] = None,
    table: Annotated[Optional[list[str]], typer.Option("--table", help="Spark: a catalogue table CATALOG.SCHEMA.NAME (repeatable).")] = None,
    spark_conf: Annotated[Optional[list[str]], typer.Option("--spark-conf", help="Spark: KEY=VALUE for the session (repeatable).")] = None,
    partitions: Annotated[Optional[int], typer.Option(help="Spark: partitions to audit in (default one per 500k rows).")] = None,
    runs_keep: Annotated[Optional[int], typer.Option("--runs-keep", help="Spark: run folders kept under OUT/_runs/ (default 7; never the one LATEST.json names).")] = None,
    jdbc_url: Annotated[Optional[str], typer.Option("--jdbc-url", help="Spark: JDBC source URL (credentials via --spark-conf jdbc.user=...).")] = None,
    jdbc_table: Annotated[Optional[str], typer.Option("--jdbc-table", help="Spark: the JDBC table or (query) AS alias.")] = None,
) -> None:
    """Audit episode exports; write findings, statuses, a summary and report.html into --out."""
    from audit.catalogue import load_catalogue
    from audit.pipeline import (
        audit_to_directory,  # imported here so `--help` stays fast
    )

    _setup_logging(quiet)
    if layout is not None and layout not in LAYOUTS:
        raise UserError(f"--layout must be one of {', '.join(LAYOUTS)}")
    settings, config_used = load_settings(config, {
        "inputs": inputs, "out": out, "layout": layout, "mapping": mapping, "encoding": encoding,
        "catalogue": catalogue, "history": history, "scope": scope, "opcs_codes": opcs_codes, "history_keep": history_keep,
        "as_of": _parse_as_of(as_of) if as_of else None, "worksheet_cap": worksheet_cap, "fail_on": fail_on,
        "max_drop": max_drop, "min_rows": min_rows, "max_memory": max_memory,
        "engine": engine, "tables": table, "spark_conf": spark_conf, "partitions": partitions, "runs_keep": runs_keep,
        "jdbc_url": jdbc_url, "jdbc_table": jdbc_table,
    })
    if settings.engine == "spark":
        _run_spark(settings, quiet)
        return
    if not settings.inputs:
        raise UserError("no inputs: name export files or folders (or set 'inputs' in nice-audit.toml)")
    if settings.out is None:
        raise UserError("no output folder: give --out DIR (or set 'out' in nice-audit.toml)")
    for what, path in (("--mapping", settings.mapping), ("--opcs-codes", settings.opcs_codes)):
        if path is not None and path.is_dir():
            raise UserError(f"{what} {path}: is a folder, not a file")
    started = _run_time()
    limit = memory.parse_size(settings.max_memory)
    with _progress(quiet) as progress, memory.ceiling(limit):
        outcome = audit_to_directory(settings, load_catalogue(list(settings.catalogue)), started, progress,
                                     config=config_used, reproducible=_pinned_clock())
    summary = outcome.summary
    totals, by_status = summary["totals"], summary["by_status"]
    log.debug("run finished: %s episodes, %s findings", totals["episodes_audited"], totals["findings"])
    report_path = outcome.out / "report.html"
    if not quiet:
        typer.echo(
            f"Audited {totals['episodes_audited']:,} episodes from {len(summary['inputs'])} file(s) "
            f"({totals['rows_rejected']:,} rows rejected); {totals['matched_episodes']:,} matched NICE guidance; "
            f"{by_status['non-compliant']:,} non-compliant; {by_status['superseded']:,} follow superseded "
            f"guidance; {totals['findings']:,} findings."
        )
        changed = _changes_line(summary.get("changes"))
        if changed:
            typer.echo(changed)
        if totals["rows_rejected"]:
            typer.echo(f"Rejected rows, with the reason for each: {outcome.out / 'rejected.csv'}")
        typer.echo(f"Report: {report_path}")
        typer.echo(f"Outputs written to {outcome.out}/")
    _exit_for(summary, settings.fail_on, report_path)


def _changes_line(changes: dict | None) -> str:
    """"N new, M resolved since <date>" for the console, when the run kept a history."""
    if changes is None:
        return ""
    if not changes.get("previous_run"):
        others = changes.get("other_scopes") or {}
        if others:
            return (f"First run of this scope: the history holds {sum(others.values()):,} run(s) of "
                    f"{len(others)} other scope(s) (see 'nice-audit history'), so nothing is compared.")
        return "First run recorded in this history: every finding is new."
    since = str(changes.get("previous_started") or "")[:10]
    gone = changes.get("episode-gone", 0)
    return (f"{changes['new']:,} new, {changes['resolved']:,} resolved since {since}"
            + (f"; {gone:,} gone with episodes no longer in the export" if gone else "") + ".")


def _exit_for(summary: dict, fail_on: str, report_path) -> None:
    """Volume alerts and --fail-on, for both engines: one line on stderr each, --quiet or not
    (a scheduler mails what a failing job prints), then exit 4 or 1."""
    alerts = summary["volume"]["alerts"]
    if alerts:
        typer.echo(f"nice-audit: volume alert: {'; '.join(alerts)}; report: {report_path}", err=True)
    levels = [] if fail_on == "never" else [s for s, r in SEVERITY_RANK.items() if r >= SEVERITY_RANK[fail_on]]
    reached = sum(summary["by_severity"].get(s, 0) for s in levels)
    if reached:
        typer.echo(f"nice-audit: {reached:,} finding{'s' if reached != 1 else ''} at or above --fail-on "
                   f"{fail_on}; report: {report_path}", err=True)
    if alerts:
        raise typer.Exit(EXIT_VOLUME)
    if reached:
        raise typer.Exit(EXIT_FINDINGS)


def _run_spark(settings, quiet: bool) -> None:
    """`run --engine spark`: the same options, exit codes and quiet console as a local run."""
    from audit.catalogue import load_catalogue
    from audit.engines import spark

    files = spark.check_inputs(settings)  # before starting a JVM
    catalogue = load_catalogue(list(settings.catalogue))
    started = _run_time()
    outcome = spark.run(spark.session(settings), settings, catalogue, started, files)
    totals, by_status = outcome.summary["totals"], outcome.summary["by_status"]
    if not quiet:
        typer.echo(
            f"Audited {totals['episodes_audited']:,} episodes from {len(outcome.summary['inputs'])} input(s) on Spark "
            f"({totals['rows_rejected']:,} rows rejected); {totals['matched_episodes']:,} matched NICE guidance; "
            f"{by_status['non-compliant']:,} non-compliant; {by_status['superseded']:,} follow superseded "
            f"guidance; {totals['findings']:,} findings."
        )
        changed = _changes_line(outcome.summary.get("changes"))
        if changed:
            typer.echo(changed)
        typer.echo(f"Report: {outcome.out / 'report.html'}")
        typer.echo(f"Outputs written to {outcome.out}/ (newest run: {settings.out / 'LATEST.json'})")
    report_path = outcome.out / "report.html"
    _exit_for(outcome.summary, settings.fail_on, report_path)


@app.command()
@guarded()
def ingest(
    exports: Annotated[list[Path], typer.Argument(help="Export files (CSV, .csv.gz, Parquet) or folders of them.", show_default=False)],
    to: Annotated[Path, typer.Option("--to", help="Folder for the Parquet files and manifest.json.")],
    layout: Annotated[Optional[str], typer.Option(help=f"Force a layout: {', '.join(LAYOUTS)}.")] = None,
    mapping: Annotated[Optional[Path], typer.Option(help="TOML column mapping for unrecognised exports.")] = None,
    encoding: Annotated[str, typer.Option(help=f"Text encoding: {', '.join(ENCODINGS)}.")] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing unless something is wrong.")] = False,
) -> None:
    """Convert exports to Parquet with nice-audit's own reader, for `run --engine spark`."""
    from audit.ingest import ingest as convert
    from audit.layouts import load_mapping

    _setup_logging(quiet)
    if layout is not None and layout not in LAYOUTS:
        raise UserError(f"--layout must be one of {', '.join(LAYOUTS)}")
    manifest = convert(exports, to, layout=layout, mapping=load_mapping(mapping) if mapping else None,
                       encoding=encoding)
    if not quiet:
        rows = sum(f["rows"] for f in manifest["files"])
        typer.echo(f"Converted {len(manifest['files'])} file(s), {rows:,} rows, into {to}/ (manifest.json)")


@app.command()
@guarded()
def report(
    directory: Annotated[Path, typer.Argument(help="Output folder of an earlier run.")],
    catalogue: CatalogueOption = None,
    worksheet_cap: Annotated[int, typer.Option(help="Worksheet episodes per rule (default 200).", min=1,
                                               show_default=False)] = 200,
) -> None:
    """Re-render report.html from an earlier run's outputs, without auditing again."""
    from audit.engines.publish import latest_run
    from reports.render import render_report, run_catalogue

    if not directory.is_dir():
        raise UserError(f"{directory}: no such folder" if not directory.exists() else f"{directory}: is not a folder")
    directory = latest_run(directory) or directory  # a Spark run's --out: its newest run
    if not (directory / "summary.json").is_file():
        raise UserError(f"{directory}: not the output folder of a run (no summary.json)")
    path = render_report(directory, run_catalogue(directory, catalogue), worksheet_cap=worksheet_cap)
    typer.echo(f"Report: {path}")


@catalogue_app.command("list")
@guarded()
def catalogue_list(catalogue: CatalogueOption = None) -> None:
    """One line per guidance (id, published, code set, lineage, title), then the coverage."""
    from audit.catalogue import coverage, load_catalogue

    loaded = load_catalogue(catalogue or [])
    for g in loaded.guidance.values():
        code_set = "code set" if g.code_sets else "no code set"
        published = f"{g.published}" + (" (not verified)" if "published" in g.unverified else "")
        typer.echo(f"{g.id:<8} {published:<31} {code_set:<12} {g.lineage:<50} {g.title}")
    covered = coverage(loaded)
    typer.echo("")
    typer.echo(covered.summary() + ".")
    typer.echo("Chapters of the index codes (guidances with a code set there):")
    for line in covered.chapter_lines():
        typer.echo(f"  {line}")


@catalogue_app.command("show")
@guarded()
def catalogue_show(
    guidance_id: Annotated[str, typer.Argument(help="Guidance id, e.g. IPG319.")],
    catalogue: CatalogueOption = None,
) -> None:
    """Everything the catalogue records about one guidance."""
    from audit.catalogue import did_you_mean, load_catalogue

    loaded = load_catalogue(catalogue or [])
    g = loaded.guidance.get(guidance_id.upper())
    if g is None:
        raise UserError(f"no guidance {guidance_id!r} in the catalogue{did_you_mean(guidance_id.upper(), loaded.guidance)}"
                        " (see 'nice-audit catalogue list')")
    lines = [
        f"{g.id}: {g.title}",
        f"  url:          {g.url}",
        f"  published:    {g.published} (precision: {g.published.precision})"
        + (" — not verified" if "published" in g.unverified else ""),
        f"  replaces:     {', '.join(g.replaces) or '-'}",
        f"  lineage:      {g.lineage}",
        f"  OPCS-4:       {g.opcs_version or 'not recorded'}",
        f"  file:         {g.source_file}",
    ]
    if not g.code_sets:
        lines.append("  code set:     none recorded, so not audited by code set (see notes)")
    for code_set in g.code_sets:
        lines.append(f"  code set '{code_set.name}':")
        for c in code_set.components:
            extra = [c.requirement]
            if c.identifies and c.role != "index":
                extra.append("identifies")
            if c.scope == "episode":
                extra.append("anywhere later in the episode")
            if c.recommended:
                extra.append("recommended " + " or ".join(str(p) for p in c.recommended))
            if c.accepts:  # issue 10: codes a source allows in this component's place
                extra.append("also accepts " + " or ".join(str(p) for p in c.accepts))
            codes_text = str(c) if c.patterns else f"{c} (ICD-10, not audited)"
            lines.append(f"    {c.role:<10} {codes_text:<28} {', '.join(extra)}")
        if code_set.not_with:  # issue 10: codes that mean another procedure
            lines.append(f"    not with   {' or '.join(str(p) for p in code_set.not_with)} (another procedure)")
    lines += [f"  evidence:     {e}" for e in g.evidence]  # issue 10: why the index codes suffice
    lines += [f"  source:       {s}" for s in g.sources]
    lines += [f"  uncertain:    {u}" for u in g.uncertain]
    if g.notes:
        lines.append(f"  notes:        {g.notes}")
    typer.echo("\n".join(lines))


@catalogue_app.command("check")
@guarded()
def catalogue_check(
    paths: Annotated[list[Path], typer.Argument(help="Guidance TOML files or folders to check.")],
) -> None:
    """Validate catalogue files together with the built-in entries; exit 2 on any problem.

    An entry with the id of a built-in one (a draft from 'catalogue import' of a page the catalogue
    already holds) is checked in place of that built-in entry, and the output says so: at run time a
    --catalogue entry still cannot redefine a built-in one.
    """
    from audit.catalogue import CatalogueError, check_problems, load_catalogue

    missing = [f"{p}: no such file or folder" for p in paths if not p.exists()]
    if missing:
        _fail("\n".join(missing), EXIT_USER_ERROR)
    try:
        given = load_catalogue(paths, builtin=False)
        builtin = load_catalogue()
        replaced = tuple(builtin.guidance[gid].source_file for gid in given.guidance if gid in builtin.guidance)
        loaded = load_catalogue(paths, leave_out=replaced)
    except CatalogueError as error:
        _fail(str(error), EXIT_USER_ERROR)
    problems = check_problems(loaded, paths)
    if problems:
        _fail("\n".join(problems), EXIT_USER_ERROR)
    for gid in given.guidance:
        if gid in builtin.guidance:
            typer.echo(
                f"{gid}: checked in place of the built-in {builtin.guidance[gid].source_file} "
                "(to use it, replace that file: a --catalogue entry cannot redefine a built-in one)"
            )
    count = len(given.guidance)
    typer.echo(f"OK: {count} entr{'y' if count == 1 else 'ies'} in {len(paths)} path(s), no problems.")


@catalogue_app.command("import")
@guarded()
def catalogue_import(
    pages: Annotated[list[Path], typer.Argument(help="NICE guidance pages saved from a browser (HTML) or as text.")],
    to: Annotated[Path, typer.Option("--to", help="Folder the draft TOML entries are written to.")] = Path("."),
    guidance_id: Annotated[Optional[str], typer.Option("--id", help="The guidance id, when one page does not print it.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite drafts already in --to.")] = False,
) -> None:
    """Draft one catalogue entry per NICE page, and say what a person must still review."""
    from audit.importer import import_pages

    for target, draft in import_pages(list(pages), to, guidance_id=guidance_id, overwrite=force):
        typer.echo(f"{draft.guidance_id}: wrote {target}")
        for item in draft.review:
            typer.echo(f"  review: {item}")
    typer.echo(f"Check the drafts with: nice-audit catalogue check {to}")


history_app = typer.Typer(help="Past runs recorded in the history file.", invoke_without_command=True,
                          rich_markup_mode=None)
app.add_typer(history_app, name="history")
config_app = typer.Typer(help="The effective configuration.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(config_app, name="config")

HistoryOption = Annotated[Optional[Path], typer.Option("--history", help="History file (default from nice-audit.toml).")]
ConfigOption = Annotated[Optional[Path], typer.Option("--config", help="Config file (default ./nice-audit.toml if present).")]


def _history_connection(history_path: Path | None, config: Path | None):
    from audit import history

    settings, _ = load_settings(config, {"history": history_path})
    if settings.history is None:
        raise UserError("no history file: give --history PATH (or set 'history' in nice-audit.toml)")
    if not settings.history.is_file():
        raise UserError(f"{settings.history}: no such history file")
    return history, contextlib.closing(history.connect(settings.history))


@history_app.callback(invoke_without_command=True)
@guarded()
def history_list(
    ctx: typer.Context,
    history_path: HistoryOption = None,
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option(help="How many runs, newest first (default 30).", min=1,
                                       show_default=False)] = 30,
    scope: Annotated[Optional[str], typer.Option(help="Only the runs of this scope.", show_default=False)] = None,
) -> None:
    """List past runs: date, episodes, non-compliant, superseded, scope, inputs."""
    if ctx.invoked_subcommand:
        return
    history, connection = _history_connection(history_path, config)
    with connection as conn:
        past = history.runs(conn, limit, scope)
    if not past:
        typer.echo("No runs recorded yet." if scope is None else f"No runs recorded for scope {scope!r}.")
        return
    typer.echo(f"{'run id':<24} {'started':<25} {'episodes':>9} {'non-compliant':>13} {'superseded':>10}  "
               "scope  inputs")
    for run in past:
        s = run["summary"]
        inputs = ", ".join(Path(i["path"]).name for i in s["inputs"])
        typer.echo(f"{run['run_id']:<24} {run['started']:<25} {s['totals']['episodes_audited']:>9,} "
                   f"{s['by_status']['non-compliant']:>13,} {s['by_status']['superseded']:>10,}  "
                   f"{run['scope']}  {inputs}")


@history_app.command("show")
@guarded()
def history_show(
    run_id: Annotated[str, typer.Argument(help="Run id, as listed by 'nice-audit history'.")],
    history_path: HistoryOption = None,
    config: ConfigOption = None,
) -> None:
    """One run's summary."""
    history, connection = _history_connection(history_path, config)
    with connection as conn:
        match = [r for r in history.runs(conn) if r["run_id"] == run_id]
    if not match:
        raise UserError(f"no run {run_id!r} in the history")
    run, s = match[0], match[0]["summary"]
    lines = [
        f"run {run['run_id']}  started {run['started']}  finished {run['finished']}",
        f"scope: {run['scope']}",
        f"tool {s['tool_version']}, catalogue {s['catalogue_version']}, as of {s['as_of']}",
    ]
    lines += [f"input: {i['path']}  sha256 {i['sha256'][:12]}  rows {i['rows_read']:,}  rejected {i['rows_rejected']:,}"
              for i in s["inputs"]]
    lines += [f"{key.replace('_', ' ')}: {value:,}" for key, value in s["totals"].items()]
    lines += [f"status {key}: {value:,}" for key, value in s["by_status"].items()]
    lines += [f"guidance {g}: " + ", ".join(f"{k} {v:,}" for k, v in c.items()) for g, c in s["by_guidance"].items()]
    if s.get("changes"):
        c = s["changes"]
        since = f"since {c['previous_run']}" if c["previous_run"] else "first run in this history"
        lines.append(f"{since}: {c['new']:,} new, {c['resolved']:,} resolved, {c['still-open']:,} still open"
                     + (f", {c['episode-gone']:,} gone with episodes no longer exported" if c.get("episode-gone") else ""))
    typer.echo("\n".join(lines))


@config_app.command("show")
@guarded()
def config_show(config: ConfigOption = None) -> None:
    """Print the effective configuration (config file plus defaults)."""
    from audit.config import describe

    settings, source = load_settings(config, {})
    typer.echo(describe(settings, source))


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"nice-audit {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """nice-audit: NICE OPCS-4 coding audit."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()
