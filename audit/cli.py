"""The command line: parse options, call the pipeline, map errors to exit codes.

Exit codes (README): 0 success; 1 findings at or above --fail-on; 2 usage or input error;
3 internal error.
Console output never contains episode-level values: only counts and paths.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import traceback
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from audit import __version__, memory
from audit.catalogue import CatalogueError, load_catalogue
from audit.config import load_settings
from audit.errors import EXIT_FINDINGS, EXIT_INTERNAL_ERROR, EXIT_USER_ERROR, UserError
from audit.layouts import LAYOUTS
from audit.load import ENCODINGS

app = typer.Typer(
    help="Audit OPCS-4 procedure coding against NICE interventional procedures guidance.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
catalogue_app = typer.Typer(help="List, show and check guidance catalogue entries.", no_args_is_help=True)
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


def _internal_error(log_dir: Path | None) -> None:
    """Unexpected exceptions: a short line on the console, the details in a log file."""
    kind, _, trace = sys.exc_info()
    target = (log_dir or Path.cwd()) / "nice-audit-error.log"
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


def guarded(log_dir_param: str | None = None):
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
            except Exception:
                log_dir = kwargs.get(log_dir_param) if log_dir_param else None
                _internal_error(Path(log_dir) if log_dir else None)
            except BaseException as error:  # polars' PanicException derives from BaseException
                if isinstance(error, (SystemExit, GeneratorExit)):
                    raise
                log_dir = kwargs.get(log_dir_param) if log_dir_param else None
                _internal_error(Path(log_dir) if log_dir else None)

        return run

    return wrap


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="nice-audit: %(levelname)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


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
@guarded(log_dir_param="out")
def run(
    inputs: Annotated[Optional[list[Path]], typer.Argument(help="Export files (CSV, .csv.gz, Parquet) or folders of them.", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for the outputs (replaced whole).")] = None,
    config: Annotated[Optional[Path], typer.Option(help="Config file (default: ./nice-audit.toml if present).")] = None,
    layout: Annotated[Optional[str], typer.Option(help=f"Force a layout: {', '.join(LAYOUTS)}.")] = None,
    mapping: Annotated[Optional[Path], typer.Option(help="TOML column mapping for unrecognised exports.")] = None,
    encoding: Annotated[Optional[str], typer.Option(help=f"Text encoding: {', '.join(ENCODINGS)} (default auto).")] = None,
    catalogue: CatalogueOption = None,
    history: Annotated[Optional[Path], typer.Option(help="SQLite run history (enables 'what changed').")] = None,
    history_keep: Annotated[Optional[int], typer.Option(help="Runs kept per scope in the history (default 400).")] = None,
    opcs_codes: Annotated[Optional[Path], typer.Option("--opcs-codes", help="OPCS-4 code list (TRUD CODE<TAB>TITLE file): flags codes not in it, titles every code.")] = None,
    scope: Annotated[Optional[str], typer.Option(help="Name of the series of runs to compare with (default: the input paths).")] = None,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Date for undated episodes (default today).")] = None,
    worksheet_cap: Annotated[Optional[int], typer.Option(help="Report worksheet episodes per rule (default 200).")] = None,
    fail_on: Annotated[Optional[str], typer.Option(help="Exit 1 when findings reach: never, warning, superseded, error.")] = None,
    max_memory: Annotated[Optional[str], typer.Option("--max-memory", help="Stop with exit 2, naming the file, past this memory (e.g. 8G; default 3/4 of the machine's).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing unless something is wrong.")] = False,
) -> None:
    """Audit episode exports; write findings, statuses, a summary and report.html into --out."""
    from audit.pipeline import (
        audit_to_directory,  # imported here so `--help` stays fast
    )

    _setup_logging(quiet)
    if layout is not None and layout not in LAYOUTS:
        raise UserError(f"--layout must be one of {', '.join(LAYOUTS)}")
    settings, _ = load_settings(config, {
        "inputs": inputs, "out": out, "layout": layout, "mapping": mapping, "encoding": encoding,
        "catalogue": catalogue, "history": history, "scope": scope, "opcs_codes": opcs_codes, "history_keep": history_keep,
        "as_of": _parse_as_of(as_of) if as_of else None, "worksheet_cap": worksheet_cap, "fail_on": fail_on,
        "max_memory": max_memory,
    })
    if not settings.inputs:
        raise UserError("no inputs: name export files or folders (or set 'inputs' in nice-audit.toml)")
    if settings.out is None:
        raise UserError("no output folder: give --out DIR (or set 'out' in nice-audit.toml)")
    started = _run_time()
    limit = memory.parse_size(settings.max_memory)
    with _progress(quiet) as progress, memory.ceiling(limit):
        outcome = audit_to_directory(settings, load_catalogue(list(settings.catalogue)), started, progress)
    totals, by_status = outcome.summary["totals"], outcome.summary["by_status"]
    log.debug("run finished: %s episodes, %s findings", totals["episodes_audited"], totals["findings"])
    if not quiet:
        typer.echo(
            f"Audited {totals['episodes_audited']:,} episodes from {len(outcome.summary['inputs'])} file(s) "
            f"({totals['rows_rejected']:,} rows rejected); {totals['matched_episodes']:,} matched NICE guidance; "
            f"{by_status['non-compliant']:,} non-compliant; {by_status['superseded']:,} follow superseded "
            f"guidance; {totals['findings']:,} findings."
        )
        typer.echo(f"Report: {outcome.out / 'report.html'}")
        typer.echo(f"Outputs written to {outcome.out}/")
    if fails(set(outcome.result.findings["severity"].unique()), settings.fail_on):
        raise typer.Exit(EXIT_FINDINGS)


@app.command()
@guarded(log_dir_param="directory")
def report(
    directory: Annotated[Path, typer.Argument(help="Output folder of an earlier run.")],
    catalogue: CatalogueOption = None,
    worksheet_cap: Annotated[int, typer.Option(help="Worksheet episodes per rule.")] = 200,
) -> None:
    """Re-render report.html from an earlier run's outputs, without auditing again."""
    from reports.render import render_report

    if not (directory / "summary.json").is_file():
        raise UserError(f"{directory}: not the output folder of a run (no summary.json)")
    path = render_report(directory, load_catalogue(catalogue or []), worksheet_cap=worksheet_cap)
    typer.echo(f"Report: {path}")


@catalogue_app.command("list")
@guarded()
def catalogue_list(catalogue: CatalogueOption = None) -> None:
    """One line per guidance: id, code set, lineage, title."""
    for g in load_catalogue(catalogue or []).guidance.values():
        code_set = "code set" if g.code_sets else "no code set"
        typer.echo(f"{g.id:<8} {g.published!s:<16} {code_set:<12} {g.lineage:<50} {g.title}")


@catalogue_app.command("show")
@guarded()
def catalogue_show(
    guidance_id: Annotated[str, typer.Argument(help="Guidance id, e.g. IPG319.")],
    catalogue: CatalogueOption = None,
) -> None:
    """Everything the catalogue records about one guidance."""
    loaded = load_catalogue(catalogue or [])
    g = loaded.guidance.get(guidance_id.upper())
    if g is None:
        raise UserError(f"no guidance {guidance_id!r} in the catalogue (see 'nice-audit catalogue list')")
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
            codes_text = str(c) if c.patterns else f"{c} (ICD-10, not audited)"
            lines.append(f"    {c.role:<10} {codes_text:<28} {', '.join(extra)}")
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
    """Validate catalogue files together with the built-in entries; exit 2 on any problem."""
    try:
        loaded = load_catalogue(paths)
    except CatalogueError as error:
        _fail(str(error), EXIT_USER_ERROR)
    added = len(loaded.guidance) - len(load_catalogue().guidance)
    typer.echo(f"OK: {added} entr{'y' if added == 1 else 'ies'} in {len(paths)} path(s), no problems.")


history_app = typer.Typer(help="Past runs recorded in the history file.", invoke_without_command=True)
app.add_typer(history_app, name="history")
config_app = typer.Typer(help="The effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

HistoryOption = Annotated[Optional[Path], typer.Option("--history", help="History file (default: from nice-audit.toml).")]
ConfigOption = Annotated[Optional[Path], typer.Option("--config", help="Config file (default: ./nice-audit.toml if present).")]


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
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 30,
) -> None:
    """List past runs: date, inputs, episodes, non-compliant, superseded."""
    if ctx.invoked_subcommand:
        return
    history, connection = _history_connection(history_path, config)
    with connection as conn:
        past = history.runs(conn, limit)
    if not past:
        typer.echo("No runs recorded yet.")
        return
    typer.echo(f"{'run id':<24} {'started':<25} {'episodes':>9} {'non-compliant':>13} {'superseded':>10}  inputs")
    for run in past:
        s = run["summary"]
        inputs = ", ".join(Path(i["path"]).name for i in s["inputs"])
        typer.echo(f"{run['run_id']:<24} {run['started']:<25} {s['totals']['episodes_audited']:>9,} "
                   f"{s['by_status']['non-compliant']:>13,} {s['by_status']['superseded']:>10,}  {inputs}")


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
        lines.append(f"{since}: {c['new']:,} new, {c['resolved']:,} resolved, {c['still-open']:,} still open")
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
