"""The report bundle: everything report.html shows, as aggregates and capped samples.

A run writes it beside its outputs, in `report-data/`: a few small Parquet files and
`report-data/bundle.json`. The page is rendered from summary.json and the bundle only, so its
cost does not grow with the export (a 1M-episode run's episodes.csv is never read back), and the
local and Spark engines share one renderer: each engine calls `build_bundle` on its output frames
and `write_bundle` into the run folder.

Counts are true totals over the whole run; lists are capped samples, deterministically sorted,
holding at least what the page shows at the caps the bundle was built with (a smaller cap takes
a prefix of each sample). A folder without a bundle (an older run, a folder made by hand), or a
re-render asking for larger caps, has its bundle built from the output CSVs instead.

Input frames are text, as the report reads the CSVs back (`text_frame`): "" for missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from audit.rules import ERROR, SUPERSEDED, WARNING
from reports.common import (
    BREAKDOWN_CAP,
    BREAKDOWN_SEARCH_CAP,
    BREAKDOWNS,
    CHANGE_KEY,
    CHANGES,
    COMPLIANT,
    DATA_QUALITY_CAP,
    DATE_UNCERTAIN,
    NON_COMPLIANT,
    PREDATES,
    RESOLVED,
    STILL_OPEN,
    SUPERSEDED_STATUS,
    as_int,
    capped_per,
    clean,
)
from reports.worklist import reasons

BUNDLE_DIR = "report-data"
BUNDLE_JSON = "bundle.json"
FORMAT = 1  # bumped when the bundle's content changes: an older bundle is then rebuilt from the CSVs
EPISODE_OPTIONAL = ("coder", "local_id")
REJECTED_COLUMNS = ("source_file", "source_row", "episode_id", "reason")
FRAMES = ("breakdowns", "card_episodes", "card_findings", "card_sequences", "changes", "findings_table", "guidance",
          "invalid_values", "no_operation", "reason_totals", "reasons", "rejected_reasons", "rejected_rows", "rules",
          "severities")
FACTS = {"findings", "pairs", "matched_episodes", "non_compliant_episodes", "superseded_episodes", "predates_episodes",
         "statuses", "finding_guidance", "list_episodes", "breakdown_totals", "changes", "carried", "rejected_total",
         "invalid_total", "no_operation_total"}
SOURCES = ("findings.csv", "episodes.csv", "sequences.csv", "rejected.csv", "changes.csv")  # audit.outputs names


@dataclass(frozen=True)
class Bundle:
    """Aggregates (whole-run counts) and samples (capped rows) of one run's outputs."""

    worksheet_cap: int
    findings_cap: int
    facts: dict  # scalar counts and small lists (see build_bundle)
    frames: dict[str, pl.DataFrame] = field(default_factory=dict)

    def __getitem__(self, name: str) -> pl.DataFrame:
        return self.frames[name]

    def covers(self, worksheet_cap: int, findings_cap: int) -> bool:
        return worksheet_cap <= self.worksheet_cap and findings_cap <= self.findings_cap


def text_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """An output frame as the report reads it back from its CSV: every column text, "" for
    missing, dates as yyyy-mm-dd (as audit.outputs.write_csv writes them)."""
    return frame.with_columns(
        pl.col(c).dt.strftime("%Y-%m-%d") if dtype == pl.Date else pl.col(c) for c, dtype in frame.schema.items()
    ).pipe(clean)


def status_counts(frame: pl.DataFrame, by: str) -> pl.DataFrame:
    return frame.group_by(by).agg(
        matched=pl.len(),
        compliant=(pl.col("status") == COMPLIANT).sum(),
        non_compliant=(pl.col("status") == NON_COMPLIANT).sum(),
        superseded=(pl.col("status") == SUPERSEDED_STATUS).sum(),
        predates=(pl.col("status") == PREDATES).sum(),
        date_uncertain=(pl.col("status") == DATE_UNCERTAIN).sum(),
    )


def severity_counts(frame: pl.DataFrame, by: str) -> pl.DataFrame:
    return frame.group_by(by).agg(
        findings=pl.len(),
        errors=(pl.col("severity") == ERROR).sum(),
        warnings=(pl.col("severity") == WARNING).sum(),
        superseded=(pl.col("severity") == SUPERSEDED).sum(),
        episodes=pl.col("episode_id").n_unique(),
    )


def prepared(findings: pl.DataFrame, episodes: pl.DataFrame,
             changes: pl.DataFrame | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(findings, episodes) as the page uses them: each finding with its row number in
    findings.csv, the status of its (episode, guidance) pair and its change since the last run."""
    episodes = clean(episodes)
    for column in EPISODE_OPTIONAL:  # optional columns (audit.layouts): "" when the run has none
        if column not in episodes.columns:
            episodes = episodes.with_columns(pl.lit("").alias(column))
    status = episodes.select("episode_id", "guidance_id", "status").unique(["episode_id", "guidance_id"],
                                                                            keep="first", maintain_order=True)
    findings = (
        clean(findings).drop("status", strict=False).with_row_index("row")
        .join(status, on=["episode_id", "guidance_id"], how="left", maintain_order="left")
        .with_columns(pl.col("status").fill_null(""))
    )
    if changes is None:
        findings = findings.with_columns(change=pl.lit(""))
    else:
        keys = (clean(changes).filter(pl.col("change") != RESOLVED)
                .unique(CHANGE_KEY, keep="first", maintain_order=True).select(*CHANGE_KEY, "change"))
        findings = (findings.join(keys, on=CHANGE_KEY, how="left", maintain_order="left")
                    .with_columns(pl.col("change").fill_null("")))
    for column in EPISODE_OPTIONAL:
        if column not in findings.columns:
            findings = findings.with_columns(pl.lit("").alias(column))
    return findings, episodes


def _breakdowns(findings: pl.DataFrame, episodes: pl.DataFrame, columns_present: set[str]) -> tuple[pl.DataFrame, dict]:
    """Per provider / specialty / consultant / coder value: statuses and findings, most errors
    first, the first BREAKDOWN_CAP + BREAKDOWN_SEARCH_CAP values; with each table's true size.
    One lazy query per column, run together, counting only what the table shows: on the
    200,000-episode spinal benchmark 35-40 ms, against 50-53 ms one after another."""
    columns = [column for column, _ in BREAKDOWNS if column in findings.columns and column in episodes.columns
               and (column in columns_present or bool((findings[column] != "").any() or (episodes[column] != "").any()))]
    tables = pl.collect_all([
        status_counts(episodes.lazy(), column)
        .join(findings.lazy().group_by(column).agg(findings=pl.len(), errors=(pl.col("severity") == ERROR).sum(),
                                                   warnings=(pl.col("severity") == WARNING).sum()),
              on=column, how="full", coalesce=True)
        .fill_null(0)
        .sort(["errors", "findings", column], descending=[True, True, False])
        for column in columns
    ])
    totals = {column: joined.height for column, joined in zip(columns, tables)}
    schema = {"column": pl.String, **{c: pl.Int64 for c in ("matched", "compliant", "non_compliant", "superseded",
                                                             "predates", "date_uncertain", "findings", "errors",
                                                             "warnings")}, "value": pl.String}
    parts = [joined.head(BREAKDOWN_CAP + BREAKDOWN_SEARCH_CAP).rename({column: "value"})
             .select(pl.lit(column).alias("column"), pl.exclude("value").cast(pl.Int64), "value")
             for column, joined in zip(columns, tables)]
    frame = pl.concat([p.select(list(schema)) for p in parts]) if parts else pl.DataFrame(schema=schema)
    return frame.cast(schema), totals


def _changes(findings: pl.DataFrame, episodes: pl.DataFrame, changes: pl.DataFrame | None,
             cap: int) -> tuple[pl.DataFrame, dict]:
    """The changes table's rows, ordered and capped per kind of change, and its totals."""
    schema = {c: pl.String for c in [*CHANGE_KEY, "change", "first_seen"]}
    frame = clean(changes) if changes is not None else pl.DataFrame(schema=schema)
    # Without a history there is no row to give tokens to: tokenising every finding cost 0.1 s at 67k.
    scored = findings if changes is not None else findings.clear()
    severities = (scored.group_by(CHANGE_KEY)
                  .agg(severity_tokens=pl.col("severity").unique().sort().str.join(" ")))
    status = episodes.select("episode_id", "guidance_id", "status")
    # (without a history there is no row to give a status to: 40-60 ms at 10M episodes)
    status = status.unique(["episode_id", "guidance_id"], keep="first", maintain_order=True) if changes is not None \
        else status.clear()
    rank = {c: n for n, c in enumerate(CHANGES)}
    ordered = (
        frame.join(severities, on=CHANGE_KEY, how="left", maintain_order="left")
        .join(status, on=["episode_id", "guidance_id"], how="left", maintain_order="left")
        .with_columns(pl.col("severity_tokens", "status").fill_null(""),
                      _rank=pl.col("change").replace_strict(rank, default=len(rank), return_dtype=pl.Int64),
                      _since=pl.when(pl.col("change") == STILL_OPEN).then(pl.col("first_seen")).otherwise(pl.lit("")))
        .sort("_rank", "_since", "episode_id", "guidance_id", "rule_id", as_int("position"), nulls_last=True)
        .drop("_rank", "_since")
    )
    oldest = frame.filter((pl.col("change") == STILL_OPEN) & (pl.col("first_seen") != ""))["first_seen"].min()
    facts = {
        "present": changes is not None,
        "total": frame.height,
        "by_change": {str(c): int(n) for c, n in sorted(frame.group_by("change").len().iter_rows())},
        "oldest_first_seen": oldest or "",
    }
    return capped_per(ordered, "change", cap), facts


def _data_quality(findings: pl.DataFrame, sequences: pl.DataFrame, rejected: pl.DataFrame) -> dict:
    reasons_ = rejected.group_by("reason").len().sort(["len", "reason"], descending=[True, False])
    invalid = (
        findings.filter(pl.col("rule_id") == "invalid-code")
        .group_by("code")
        .agg(occurrences=pl.len(), episodes=pl.col("episode_id").n_unique(), example=pl.col("message").first())
        .sort(["occurrences", "code"], descending=[True, False])
    )
    no_op = findings.filter(pl.col("rule_id") == "no-operation-with-codes").unique("episode_id", keep="first")
    shown_no_op = no_op.sort("episode_id").head(DATA_QUALITY_CAP)
    after = (
        sequences.join(shown_no_op.select("episode_id"), on="episode_id", how="semi")
        .filter(as_int("position") > 1)
        .sort("episode_id", as_int("position"))
        .group_by("episode_id", maintain_order=True)
        .agg(codes_after=pl.col("code").str.join(" "))
    )
    return {
        "rejected_reasons": reasons_.with_columns(pl.col("len").cast(pl.Int64)),
        "rejected_rows": rejected.select(REJECTED_COLUMNS).head(DATA_QUALITY_CAP),
        "invalid_values": invalid.head(DATA_QUALITY_CAP).with_columns(pl.col("occurrences", "episodes").cast(pl.Int64)),
        "no_operation": shown_no_op.select("episode_id", "provider", "source_file")
        .join(after, on="episode_id", how="left", maintain_order="left")
        .with_columns(pl.col("codes_after").fill_null("")),
        "_facts": {"rejected_total": rejected.height, "invalid_total": invalid.height,
                   "no_operation_total": no_op.height},
    }


def build_bundle(findings: pl.DataFrame, episodes: pl.DataFrame, sequences: pl.DataFrame, rejected: pl.DataFrame,
                 changes: pl.DataFrame | None, *, columns_present: set[str], carried: tuple[str, ...] = (),
                 worksheet_cap: int = 200, findings_cap: int = 200) -> Bundle:
    """The bundle of one run from its output frames as text (`text_frame`): findings.csv,
    episodes.csv, sequences.csv, rejected.csv and changes.csv (None without a run history).
    columns_present: the export columns the run read (summary.json inputs); carried: columns a
    mapping asked to carry, shown on the cards."""
    findings, episodes = prepared(findings, episodes, changes)
    sequences, rejected = clean(sequences), clean(rejected)
    for column in REJECTED_COLUMNS:
        if column not in rejected.columns:
            rejected = rejected.with_columns(pl.lit("").alias(column))
    why = reasons(findings, episodes)
    chosen = capped_per(why, ["list", "reason"], worksheet_cap).select("episode_id").unique()

    def sampled(frame: pl.DataFrame) -> pl.DataFrame:
        """The rows of the episodes listed at the bundle's cap: every reason and card row of each."""
        return frame.join(chosen, on="episode_id", how="semi")

    guidance = (
        status_counts(episodes, "guidance_id")
        .join(episodes.group_by("guidance_id").agg(code_sets=pl.col("code_set").unique().sort().str.join(", ")),
              on="guidance_id", how="left")
        .join(episodes.filter(pl.col("status") == SUPERSEDED_STATUS).group_by("guidance_id")
              .agg(superseded_episodes=pl.col("episode_id").n_unique()), on="guidance_id", how="left")
        .with_columns(pl.col("superseded_episodes").fill_null(0))
        .sort("guidance_id")
    )
    breakdowns, breakdown_totals = _breakdowns(findings, episodes, columns_present)
    changes_rows, changes_facts = _changes(findings, episodes, changes, findings_cap)
    quality = _data_quality(findings, sequences, rejected)

    def episodes_with(status: str) -> int:
        return episodes.filter(pl.col("status") == status)["episode_id"].n_unique()

    facts = {
        "format": FORMAT,
        "findings": findings.height,
        "pairs": episodes.height,
        "matched_episodes": episodes["episode_id"].n_unique(),
        "non_compliant_episodes": episodes_with(NON_COMPLIANT),
        "superseded_episodes": episodes_with(SUPERSEDED_STATUS),
        "predates_episodes": episodes_with(PREDATES),
        # (distinct values from polars: a Python set over the column iterated 145,000 values)
        "statuses": sorted(episodes["status"].unique().to_list()),
        "finding_guidance": sorted(findings["guidance_id"].unique().to_list()),
        "list_episodes": {str(k): int(n) for k, n in why.group_by("list").agg(pl.col("episode_id").n_unique())
                          .sort("list").iter_rows()},
        "breakdown_totals": breakdown_totals,
        "changes": changes_facts,
        "carried": list(carried),
        **quality.pop("_facts"),
    }
    counts = ("findings", "errors", "warnings", "superseded", "episodes", "matched", "compliant", "non_compliant",
              "predates", "date_uncertain", "superseded_episodes", "len")  # one integer type, whatever the engine
    frames = {
        "guidance": guidance,
        "rules": severity_counts(findings, "rule_id").sort("rule_id"),
        "severities": severity_counts(findings, "severity").sort("severity"),
        "breakdowns": breakdowns,
        "reason_totals": why.group_by("list", "reason").agg(episodes=pl.len()).sort("list", "reason"),
        "reasons": sampled(why),
        "card_findings": sampled(findings),
        "card_episodes": sampled(episodes),
        "card_sequences": sampled(sequences),
        "findings_table": capped_per(findings, "rule_id", findings_cap),
        "changes": changes_rows,
        **quality,
    }
    frames = {name: frame.with_columns(pl.col(c).cast(pl.Int64) for c in counts if c in frame.columns
                                       and frame.schema[c].is_integer())
              for name, frame in frames.items()}
    return Bundle(worksheet_cap, findings_cap, facts, frames)


def _sources(folder: Path) -> dict[str, int]:
    """The size of each output CSV the bundle summarises: a CSV rewritten after the run (by hand,
    or by a tool) no longer matches, and the bundle is rebuilt from the CSVs. Sizes, not times or
    hashes: the same run gives the same bundle.json, and checking costs a stat per file."""
    return {name: (Path(folder) / name).stat().st_size for name in SOURCES if (Path(folder) / name).is_file()}


def _json(content: dict) -> str:
    return json.dumps(content, indent=1, sort_keys=True) + "\n"


def write_bundle(bundle: Bundle, folder: Path) -> Path:
    """Write the bundle into folder/report-data/, after the CSVs it summarises (bundle.json last:
    a folder holding it is complete)."""
    target = Path(folder) / BUNDLE_DIR
    target.mkdir(exist_ok=True)
    for name, frame in sorted(bundle.frames.items()):
        frame.write_parquet(target / f"{name}.parquet", statistics=False)
    content = {"format": FORMAT, "worksheet_cap": bundle.worksheet_cap, "findings_cap": bundle.findings_cap,
               "frames": sorted(bundle.frames), "facts": bundle.facts, "sources": _sources(folder)}
    (target / BUNDLE_JSON).write_text(_json(content), encoding="utf-8")
    return target


def as_written(bundle: Bundle) -> Bundle:
    """The bundle as `read_bundle` gives it back once written: its facts through bundle.json's
    JSON (keys sorted, tuples as lists). Its frames are as Parquet gives them back
    (tests/test_report.py keeps the two equal)."""
    return Bundle(bundle.worksheet_cap, bundle.findings_cap, json.loads(_json(bundle.facts)), bundle.frames)


def read_bundle(folder: Path) -> Bundle | None:
    """The bundle a run wrote, or None when there is none usable (absent, older format, or
    damaged: the renderer then builds it from the CSVs)."""
    target = Path(folder) / BUNDLE_DIR
    try:
        content = json.loads((target / BUNDLE_JSON).read_text(encoding="utf-8"))
        if not isinstance(content, dict) or content.get("format") != FORMAT or content.get("sources") != _sources(folder):
            return None
        if sorted(content["frames"]) != list(FRAMES) or not FACTS <= set(content["facts"]):
            return None  # not all the bundle this version writes
        frames = {name: pl.read_parquet(target / f"{name}.parquet") for name in FRAMES}
        return Bundle(int(content["worksheet_cap"]), int(content["findings_cap"]), content["facts"], frames)
    except (OSError, ValueError, KeyError, TypeError, pl.exceptions.PolarsError):
        return None
