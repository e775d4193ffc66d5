"""The command line: parse options, call the pipeline, map errors to exit codes.

Exit codes (README): 0 success; 2 usage or input error; 3 internal error.
Console output never contains episode-level values: only counts and paths.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from audit import __version__
from audit.catalogue import CatalogueError, load_catalogue
from audit.errors import EXIT_INTERNAL_ERROR, EXIT_USER_ERROR, UserError
from audit.layouts import LAYOUTS, load_mapping
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
    kind = sys.exc_info()[0].__name__
    target = (log_dir if log_dir and log_dir.is_dir() else Path.cwd()) / "nice-audit-error.log"
    try:
        target.write_text(traceback.format_exc(), encoding="utf-8")
        where = f"; details in {target}"
    except OSError:
        where = ""
    _fail(f"internal error ({kind}){where}. Please report it.", EXIT_INTERNAL_ERROR)


def guarded(log_dir_param: str | None = None):
    """Turn user errors into one line and exit 2, anything unexpected into exit 3."""

    def wrap(command):
        @functools.wraps(command)
        def run(*args, **kwargs):
            try:
                return command(*args, **kwargs)
            except UserError as error:
                _fail(str(error), EXIT_USER_ERROR)
            except (typer.Exit, typer.Abort, KeyboardInterrupt):
                raise
            except Exception:
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
        return datetime.fromtimestamp(int(epoch), tz=timezone.utc)
    return datetime.now(tz=timezone.utc)


def _parse_as_of(value: str | None) -> date:
    if value is None:
        return _run_time().date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(f"--as-of {value!r} is not a date (yyyy-mm-dd)") from None


@app.command()
@guarded(log_dir_param="out")
def run(
    inputs: Annotated[list[Path], typer.Argument(help="Export files (CSV, .csv.gz, Parquet) or folders of them.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the outputs (replaced whole).")],
    layout: Annotated[Optional[str], typer.Option(help=f"Force a layout: {', '.join(LAYOUTS)}.")] = None,
    mapping: Annotated[Optional[Path], typer.Option(help="TOML column mapping for unrecognised exports.")] = None,
    encoding: Annotated[str, typer.Option(help=f"Text encoding: {', '.join(ENCODINGS)}.")] = "auto",
    catalogue: CatalogueOption = None,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Date for undated episodes (default today).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing unless something is wrong.")] = False,
) -> None:
    """Audit episode exports and write findings, episode statuses and a summary into --out."""
    from audit.outputs import write_outputs  # imported here so `--help` stays fast
    from audit.pipeline import AuditOptions, run_audit

    _setup_logging(quiet)
    if layout is not None and layout not in LAYOUTS:
        raise UserError(f"--layout must be one of {', '.join(LAYOUTS)}")
    options = AuditOptions(
        inputs=list(inputs),
        layout=layout,
        mapping=load_mapping(mapping) if mapping else None,
        encoding=encoding,
        as_of=_parse_as_of(as_of),
    )
    result = run_audit(options, load_catalogue(catalogue or []), _run_time())
    written = write_outputs(result, out)
    if not quiet:
        totals = result.episodes
        non_compliant = (totals["status"] == "non-compliant").sum()
        superseded = (totals["status"] == "superseded").sum()
        typer.echo(
            f"Audited {result.data.episodes.height:,} episodes from {len(result.data.files)} file(s) "
            f"({result.data.rejected.height:,} rows rejected); "
            f"{totals['episode_id'].n_unique():,} matched NICE guidance; "
            f"{non_compliant:,} non-compliant; {superseded:,} follow superseded guidance; "
            f"{result.findings.height:,} findings."
        )
        typer.echo(f"Outputs written to {written}/")


@catalogue_app.command("list")
@guarded()
def catalogue_list(catalogue: CatalogueOption = None) -> None:
    """One line per guidance: id, code set, lineage, title."""
    for g in load_catalogue(catalogue or []).guidance.values():
        code_set = "code set" if g.code_sets else "no code set"
        typer.echo(f"{g.id:<8} {g.published!s:<16} {code_set:<12} {g.lineage:<36} {g.title}")


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
        f"  published:    {g.published} (precision: {g.published.precision})",
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
