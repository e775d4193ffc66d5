"""Stage 7: write the findings, episode statuses, rejected rows and summary into a run's folder.

The folder is the run's staging folder; audit.publish swaps it into --out only when every file,
the report included, is complete.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from audit import codes, sequence
from audit.errors import UserError
from audit.history import CHANGES, FINDING_KEY, NEW, STILL_OPEN, Changes
from audit.result import AuditResult
from audit.workbook import rows_left_out, write_workbook

if TYPE_CHECKING:
    from reports.bundle import Bundle

FINDINGS_CSV = "findings.csv"
FINDINGS_PARQUET = "findings.parquet"
EPISODES_CSV = "episodes.csv"
REJECTED_CSV = "rejected.csv"
SEQUENCES_CSV = "sequences.csv"
SUMMARY_JSON = "summary.json"
CHANGES_CSV = "changes.csv"
CODE_TITLES_CSV = "code_titles.csv"
CHANGES_COLUMNS = ["episode_id", "guidance_id", "rule_id", "position", "change", "first_seen"]  # changes.csv as the report reads it
TREND_CSV = "trend.csv"
FINDINGS_XLSX = "findings.xlsx"
OPEN = (NEW, STILL_OPEN)
# OWASP "CSV injection": a spreadsheet runs a cell that begins with one of these as a formula.
# Such text cells get a leading apostrophe (shown by no spreadsheet, kept in the text). A lone "-"
# is HES's "no operation performed" marker, not a formula, and stays as it is.
# Text that already begins with apostrophes before such a character gets one more, so that
# `csv_restored` (the report reading the CSVs back) gives every value back exactly.
FORMULA_START = r"^'*[=+\-@\t\r]"
NO_OPERATION = "-"


def csv_safe(frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame | pl.LazyFrame:
    """Text cells that a spreadsheet would run as formulas, neutralised (lazily for a LazyFrame)."""
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(FORMULA_START) & (pl.col(name) != NO_OPERATION))
        .then(pl.lit("'") + pl.col(name)).otherwise(pl.col(name)).alias(name)
        for name, dtype in frame.collect_schema().items() if dtype == pl.String
    )


def csv_restored(frame: pl.DataFrame) -> pl.DataFrame:
    """The values `csv_safe` neutralised, as they were (for readers of the CSV outputs)."""
    return frame.with_columns(
        pl.col(name).str.replace(r"^'('*[=+\-@\t\r])", "$1")
        for name, dtype in frame.schema.items() if dtype == pl.String
    )


def write_csv(frame: pl.DataFrame, path: Path) -> None:
    """Every CSV output: formula cells neutralised, with a UTF-8 byte order mark so that Excel
    reads accented names and the like as UTF-8, dates as yyyy-mm-dd."""
    csv_safe(frame).write_csv(path, include_bom=True, date_format="%Y-%m-%d")


def sequences(result: AuditResult) -> pl.DataFrame:
    """The full procedure sequence of every episode with a finding or a guidance match, for the
    report's worksheet (which reads only output files)."""
    flagged = pl.concat([result.findings["episode_id"], result.episodes["episode_id"]]).unique()
    # A membership test keeps the procedures' order and costs a third of a semi-join
    # (10M episodes, 1.69M procedures: 92 against 284 ms).
    return sequence.in_episode_order(
        result.data.procedures.filter(pl.col("episode_id").is_in(flagged.implode()))
        .select(
            "episode_id",
            "position",
            pl.when(pl.col("code").is_not_null())
            .then(codes.display_expr(pl.col("code")))
            .otherwise(pl.col("code_raw").str.strip_chars())
            .alias("code"),
            "code_kind",
        )
    )


def summary(result: AuditResult) -> dict:
    """summary.json's figures: the run's additive counts reduced exactly as a Spark driver
    reduces its partitions' counts (audit.unit.reduce_summary), so the engines cannot drift."""
    from audit import unit  # unit builds on this module's frames

    return unit.summary_of(result)


def _with_first_seen(findings: pl.DataFrame, changes: Changes | None, today: str) -> pl.DataFrame:
    """`first_seen`: from the history when there is one, else this run's date."""
    if changes is None:
        return findings.with_columns(first_seen=pl.lit(today))
    seen = changes.keys.filter(pl.col("change").is_in(OPEN)).select(*FINDING_KEY, "first_seen")
    return (
        findings.with_columns(_guidance=pl.col("guidance_id").fill_null(""), _position=pl.col("position").cast(pl.Int64))
        .join(seen.rename({"guidance_id": "_guidance", "position": "_position"}),
              on=["episode_id", "_guidance", "rule_id", "_position"], how="left", nulls_equal=True)
        .drop("_guidance", "_position")
        .with_columns(pl.col("first_seen").fill_null(today))
    )


def with_episode_facts(findings: pl.DataFrame, result: AuditResult) -> pl.DataFrame:
    """`episode_date` and `status` of the finding's (episode, guidance) from the episode statuses
    (generic rules, which belong to no guidance: the episode's own end, start or admission date,
    no status), and `source_row`, the episode's data row in its file (header excluded; long
    layout: its first row), so a coder can find the row in the export."""
    status = result.episodes.select("episode_id", "guidance_id", "episode_date", "status")
    episode = result.data.episodes.select(
        "episode_id", "source_row", pl.coalesce("episode_end", "episode_start", "admission_date").alias("_own_date"))
    return (
        findings.join(status, on=["episode_id", "guidance_id"], how="left", maintain_order="left")
        .join(episode, on="episode_id", how="left", maintain_order="left")
        .with_columns(pl.col("episode_date").fill_null(pl.col("_own_date")))
        .select(*findings.columns, "episode_date", "status", "source_row")
    )


def code_titles(sequences: pl.DataFrame, code_list: pl.DataFrame) -> pl.DataFrame:
    """Titles, from the user's OPCS-4 code list, of the codes the report shows."""
    shown = code_list.with_columns(codes.display_expr(pl.col("code")).alias("code"))
    return shown.join(sequences.select("code").unique(), on="code", how="semi").sort("code")


def carry(frame: pl.DataFrame, carried: pl.DataFrame) -> pl.DataFrame:
    """Add the columns the mapping asked to carry, at the end, keyed by episode."""
    if carried.width == 1:
        return frame
    clash = sorted(set(carried.columns[1:]) & set(frame.columns))
    if clash:
        raise UserError(f"carried column(s) {', '.join(clash)} would overwrite output columns: rename them")
    return frame.join(carried, on="episode_id", how="left", maintain_order="left")


def _changes_summary(changes: Changes | None) -> dict | None:
    if changes is None:
        return None
    counts = changes.keys.group_by("guidance_id", "change").len("n")
    return changes_summary(changes.previous_run, changes.previous_started, counts)


def changes_summary(previous_run: str | None, previous_started: str | None, counts: pl.DataFrame) -> dict:
    """summary.json's "changes" from counts per (guidance_id, change, n): what a Spark run
    collects instead of every finding key. Generic findings (guidance "") count in the totals only."""
    def tally(rows: pl.DataFrame) -> dict[str, int]:
        found = dict(rows.group_by("change").agg(pl.col("n").sum()).iter_rows()) if rows.height else {}
        return {change: int(found.get(change, 0)) for change in CHANGES}

    by_guidance = {
        guidance_id: tally(counts.filter(pl.col("guidance_id") == guidance_id))
        for guidance_id in sorted(set(counts["guidance_id"]) - {""})
    }
    return {"previous_run": previous_run, "previous_started": previous_started, **tally(counts),
            "by_guidance": by_guidance}


def report_bundle(findings: pl.DataFrame, episodes: pl.DataFrame, sequences: pl.DataFrame, rejected: pl.DataFrame,
                  changes: Changes | None, summary: dict, worksheet_cap: int) -> Bundle:
    """report-data/'s content (reports.bundle.Bundle): the aggregates and capped samples
    report.html is rendered from, computed while the frames are in memory, so rendering never
    reads the whole episodes.csv back. Both engines build it from the frames they write as CSV."""
    from reports.bundle import build_bundle, text_frame
    from reports.frames import CARRIED_FROM, columns_present

    return build_bundle(
        text_frame(findings), text_frame(episodes), text_frame(sequences), text_frame(rejected),
        text_frame(changes.keys.select(CHANGES_COLUMNS)) if changes is not None else None,
        columns_present=columns_present(summary), carried=tuple(c for c in findings.columns if c not in CARRIED_FROM),
        worksheet_cap=max(worksheet_cap, 200))  # at least the default: `report DIR` re-renders at 200 from it


def write_report_bundle(folder: Path, findings: pl.DataFrame, episodes: pl.DataFrame, sequences: pl.DataFrame,
                        rejected: pl.DataFrame, changes: Changes | None, summary: dict, worksheet_cap: int) -> None:
    """report-data/ (`report_bundle`), written into `folder` after the CSVs it summarises."""
    from reports.bundle import write_bundle

    write_bundle(report_bundle(findings, episodes, sequences, rejected, changes, summary, worksheet_cap), folder)


def write(result: AuditResult, folder: Path, *, changes: Changes | None = None,
          trend: pl.DataFrame | None = None, volume: dict | None = None, run_id: str | None = None,
          scope: str | None = None, other_scopes: dict[str, int] | None = None, worksheet_cap: int = 200,
          then: Callable[[dict, Bundle], None] | None = None) -> dict:
    """Write every output into `folder` (a run's staging folder, see audit.publish); returns the
    summary. worksheet_cap: the report's, so that its bundle holds enough episodes. `then`: called
    in a thread of its own with summary.json's content and the report bundle as soon as both are
    known, while the files are written (the run renders its report there, from them; on two cores
    the three overlap). code_titles.csv and trend.csv are written before it starts; the folder's
    other files may not be complete yet."""
    from reports.bundle import write_bundle

    folder = Path(folder)
    today = result.started.date().isoformat()
    findings = carry(_with_first_seen(with_episode_facts(result.findings, result), changes, today),
                      result.data.carried)
    episodes = carry(result.episodes, result.data.carried)
    sheets = {"findings": findings, "episodes": episodes, "rejected": result.data.rejected}
    # The workbook (polars building its XML, ISA-L deflating it: both release the GIL) is written
    # in a thread from the start, and the report (`then`) in another once its bundle is built,
    # while the CSV files are written here. With the report rendered after every file, the
    # workbook was done first and the report ran alone, one core idle: at 1M episodes this stage
    # and the report took 0.70-0.80 s, now 0.56-0.63 s (docs/performance.md, session 22). The
    # pool's exit waits for both threads, so no file of the folder is still being written when
    # this returns, whatever failed.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="outputs") as pool:
        workbook = pool.submit(write_workbook, folder / FINDINGS_XLSX, sheets, result.started)
        flagged_sequences = sequences(result)
        # The two files the report reads besides its bundle (reports.frames.load_outputs), before it.
        if result.options.code_list is not None:
            write_csv(code_titles(flagged_sequences, result.options.code_list), folder / CODE_TITLES_CSV)
        if trend is not None:
            write_csv(trend, folder / TREND_CSV)
        head = {"run_id": run_id, "scope": scope, **summary(result)}
        changed = _changes_summary(changes)
        if changed is not None and other_scopes is not None:
            changed["other_scopes"] = other_scopes
        left_out = rows_left_out(sheets)  # known before the workbook is written
        content = {**head, "xlsx_rows_left_out": {sheet: n for sheet, n in left_out.items() if n},
                   "changes": changed, "volume": volume}
        bundle = report_bundle(findings, episodes, flagged_sequences, result.data.rejected, changes,
                               {**head, "changes": changed, "volume": volume}, worksheet_cap)
        reported = pool.submit(then, content, bundle) if then is not None else None
        write_csv(findings, folder / FINDINGS_CSV)
        findings.with_columns(pl.col("first_seen").str.to_date("%Y-%m-%d")).write_parquet(
            folder / FINDINGS_PARQUET, statistics=False)
        write_csv(episodes, folder / EPISODES_CSV)
        write_csv(result.data.rejected, folder / REJECTED_CSV)
        write_csv(flagged_sequences, folder / SEQUENCES_CSV)
        if changes is not None:
            write_csv(changes.keys, folder / CHANGES_CSV)
        write_bundle(bundle, folder)  # after the CSVs: bundle.json records their sizes
        (folder / SUMMARY_JSON).write_text(json.dumps(content, indent=2, default=int) + "\n", encoding="utf-8")
        for task in (reported, workbook):
            if task is not None:
                task.result()  # its error, if it failed, is this run's
    return content
