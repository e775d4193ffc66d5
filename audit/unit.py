"""The unit of work every engine runs: audit a set of canonical rows, return fixed-schema frames.

`audit_rows(rows, ctx)` takes canonical rows (as `audit.load.Export.batches()` gives them: all
text, `episode_id`, episode fields, `code_n`/`date_n` or `position`/`code_raw`/`procedure_date`,
`carry:*`, `source_file`, `source_row`) from any of the run's input files. The rows must hold
**every** row of each episode id they contain (ids compared after stripping whitespace, with
`partition_key`). Under that contract the union of the results over any partitioning of a run
equals the result of the whole run (`combine`), because:

- the identity checks (an id in several files, on several wide rows, a repeated long position)
  only look at rows of one id, and all of them are present;
- every rule looks within one episode;
- every count is kept per episode's partition, so all of them add up, `episodes_audited` (a
  count of distinct ids) included.

The single-machine run (`audit.pipeline.run_audit`) is `audit_exports` over all the files at
once; a Spark partition is `audit_rows` over the rows hashed to it. Both run the same stages
(canonical, match, rules, judge) — there is no second copy of any rule.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import NamedTuple

import polars as pl

from audit import __version__, canonical, codes, judge, match, outputs, rules
from audit.catalogue import Catalogue
from audit.in_memory import in_memory
from audit.load import Export
from schemas.outputs import SEVERITIES, STATUSES

PARTITION_KEY = "episode_id"


def partition_key(episode_id: pl.Expr) -> pl.Expr:
    """The id an episode is grouped by: exactly the stripping canonical.build applies.

    Engines must partition with this polars expression, not their own trim: Spark's `trim` only
    removes spaces, so `"7\\t"` and `"7"` would land in different partitions and a duplicate
    would go unseen (scale-out.md P8)."""
    return episode_id.str.strip_chars()


def index_patterns(catalogue: Catalogue) -> tuple[codes.CodePattern, ...]:
    """Every auditable guidance's index codes: what the prefilter keeps rows for (audit.prefilter)."""
    return tuple(p for g in catalogue.auditable() for cs in g.code_sets for p in cs.index.patterns)


@dataclass(frozen=True)
class AuditContext:
    """What every partition needs besides its rows; built once on the driver and picklable."""

    catalogue: Catalogue
    as_of: date
    started: datetime
    exports: tuple[Export, ...]  # every input of the run, in order (their facts; rows are not read)
    code_list: pl.DataFrame | None = None  # the user's OPCS-4 code list, if given
    prefilter: bool = True  # set aside episodes that cannot fire any rule (audit.prefilter)

    @property
    def index(self):
        return index_patterns(self.catalogue) if self.prefilter else None

    @property
    def known_codes(self) -> pl.Series | None:
        return self.code_list["code"] if self.code_list is not None else None

    def portable(self) -> AuditContext:
        """The same context without in-memory CSV bytes, to ship to workers."""
        return replace(self, exports=tuple(replace(e, source=None) for e in self.exports))


COUNTS_SCHEMA = {"source_file": pl.String, "metric": pl.String, "key": pl.String, "value": pl.Int64}
FILE_METRICS = ("rows_read", "rows_rejected", "episodes_audited", "invalid_dates",
                "clean_procedures", "clean_no_operations")


@dataclass(frozen=True)
class PartitionResult:
    """Every frame has a fixed schema; all of them concatenate across partitions."""

    findings: pl.DataFrame
    episodes: pl.DataFrame  # episode statuses: one row per matched (episode, guidance) pair
    rejected: pl.DataFrame
    sequences: pl.DataFrame
    carried: pl.DataFrame  # episode_id + carried columns (export names)
    counts: pl.DataFrame  # COUNTS_SCHEMA: additive counters
    # Every accepted episode id, clean ones included: the history tells a finding that was fixed
    # from one whose episode left the export by it. An episode lives in one partition.
    episode_ids: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema={"episode_id": pl.String}))
    result: object = field(default=None, compare=False, repr=False)  # the AuditResult, locally


@dataclass(frozen=True)
class _Rows:
    """One export's facts with its rows already in memory (a partition's share of the file);
    quacks like `Export` for canonical.build."""

    export: Export
    rows: pl.DataFrame

    def __getattr__(self, attribute: str):
        if attribute in ("path", "plan", "sha256", "encoding"):  # the export's own facts
            return getattr(self.export, attribute)
        raise AttributeError(attribute)  # (and no recursion while `export` is not yet set)

    @property
    def name(self):
        return str(self.export.path)  # as the rows' source_file says

    scan = None  # the record scan ran where the rows were read (ingest), not per partition

    def structural_rejects(self):
        return self.export.structural_rejects().clear()

    def batches(self, extend=None, narrow=False):
        # `narrow` never applies: without a scan, canonical.build asks for every column.
        yield extend(self.rows.lazy()).collect() if extend else self.rows


def canonical_schema(export: Export) -> dict[str, pl.DataType]:
    """The columns (all text but source_row) that `export.batches()` yields, in order."""
    from audit.load import _canonical_names

    empty = pl.LazyFrame(schema={c: pl.String for c in export.plan.source_columns()})
    return dict(_canonical_names(empty, export.plan, export.path).collect_schema())


def _quiet(stage: str) -> None:
    pass


def audit_exports(exports, ctx: AuditContext, options=None, progress=_quiet):
    """canonical -> match -> rules -> judge over the given exports (or `_Rows`): an AuditResult."""
    from audit.result import AuditOptions, AuditResult

    progress("Validating rows")
    data = canonical.build(list(exports), index=ctx.index, known_codes=ctx.known_codes, as_of=ctx.as_of)
    with in_memory():  # small frames from here on (audit.in_memory)
        progress("Matching guidance")
        matches = match.match_guidance(data.procedures, ctx.catalogue, ctx.as_of)
        occurrences = matches.occurrences
        progress("Checking coding rules")
        findings = rules.audit_findings(data.procedures, occurrences, ctx.catalogue, ctx.as_of, ctx.known_codes)
        episodes = judge.judge(occurrences, findings, ctx.catalogue)
    if options is None:
        options = AuditOptions(inputs=[e.path for e in ctx.exports], as_of=ctx.as_of, code_list=ctx.code_list)
    return AuditResult(options, ctx.catalogue, data, occurrences, findings, episodes, ctx.started,
                       matches.possible)


def audit_rows(rows: pl.DataFrame, ctx: AuditContext) -> PartitionResult:
    """Audit rows holding every row of each episode they contain (see the module docstring)."""
    parts = []
    for export in ctx.exports:
        schema = canonical_schema(export)
        mine = rows.filter(pl.col("source_file") == str(export.path))
        # Rows of several files come as one frame with the union of their columns.
        parts.append(_Rows(export, mine.select(
            (pl.col(c) if c in rows.columns else pl.lit(None)).cast(t).alias(c) for c, t in schema.items())))
    return from_result(audit_exports(parts, ctx))


def from_result(result) -> PartitionResult:
    """The unit's frames out of a pipeline AuditResult."""
    data = result.data
    return PartitionResult(
        # The episode's date, status and row, as findings.csv gives them: all within the episode.
        findings=outputs.with_episode_facts(result.findings, result),
        episodes=result.episodes,
        rejected=data.rejected,
        sequences=outputs.sequences(result),
        carried=data.carried,
        counts=counts(result),
        episode_ids=data.episode_ids.alias("episode_id").to_frame(),
        result=result,
    )


def _count_rows(source_file: str, metric: str, frame: pl.DataFrame, column: str) -> pl.DataFrame:
    return frame.group_by(column).len().select(
        pl.lit(source_file).alias("source_file"), pl.lit(metric).alias("metric"),
        pl.col(column).cast(pl.String).fill_null("").alias("key"), pl.col("len").cast(pl.Int64).alias("value"))


def counts(result) -> pl.DataFrame:
    """Additive counters of one result: per input file, per code kind, per rule, status, reason."""
    data = result.data
    per_file = pl.DataFrame(
        [(f.path, metric, "", int(getattr(f, metric))) for f in data.files for metric in FILE_METRICS],
        schema=COUNTS_SCHEMA, orient="row",
    )
    findings, episodes = result.findings, result.episodes
    parts = [
        per_file,
        _count_rows("", "code_kind", data.procedures, "code_kind"),
        pl.DataFrame([("", "local_fifth_characters", "", int(data.procedures["local_suffix"].is_not_null().sum())),
                      ("", "matched_episodes", "", episodes["episode_id"].n_unique()),
                      ("", "findings", "", findings.height)],
                     schema=COUNTS_SCHEMA, orient="row"),
        _count_rows("", "rule", findings, "rule_id"),
        _count_rows("", "severity", findings, "severity"),
        _count_rows("", "status", episodes, "status"),
        _count_rows("", "guidance", episodes, "guidance_id"),
        episodes.group_by("guidance_id", "status").len().select(
            pl.lit("").alias("source_file"), pl.lit("guidance_status").alias("metric"),
            pl.concat_str("guidance_id", "status", separator="|").alias("key"),
            pl.col("len").cast(pl.Int64).alias("value")),
        _count_rows("", "rejected_reason", data.rejected, "reason"),
        # An episode lives in one partition, so distinct episodes per guidance add up.
        result.possible.group_by("guidance_id").agg(pl.col("episode_id").n_unique()).select(
            pl.lit("").alias("source_file"), pl.lit("possible").alias("metric"),
            pl.col("guidance_id").alias("key"), pl.col("episode_id").cast(pl.Int64).alias("value")),
    ]
    return sum_counts(pl.concat(parts))


def sum_counts(counts_frame: pl.DataFrame) -> pl.DataFrame:
    return (counts_frame.group_by("source_file", "metric", "key").agg(pl.col("value").sum())
            .select(list(COUNTS_SCHEMA)).sort("source_file", "metric", "key"))


def _sorted(frame: pl.DataFrame, first: list[str]) -> pl.DataFrame:
    """A total order: the stage's own sort keys first, then every other column."""
    rest = [c for c in frame.columns if c not in first]
    return frame.sort([*first, *rest], nulls_last=False, maintain_order=True)


FINDINGS_ORDER = rules.FINDINGS_SORT
EPISODES_ORDER = ["episode_id", "guidance_id"]
REJECTED_ORDER = ["source_file", "source_row"]
SEQUENCES_ORDER = ["episode_id", "position"]


def combine(parts: list[PartitionResult]) -> PartitionResult:
    """The union of partition results, in a total order: equal to the whole run's."""
    def cat(name: str) -> pl.DataFrame:
        return pl.concat([getattr(p, name) for p in parts], how="diagonal_relaxed")

    return PartitionResult(
        findings=_sorted(cat("findings"), FINDINGS_ORDER),
        episodes=_sorted(cat("episodes"), EPISODES_ORDER),
        rejected=_sorted(cat("rejected"), REJECTED_ORDER),
        sequences=_sorted(cat("sequences"), SEQUENCES_ORDER),
        carried=_sorted(cat("carried"), ["episode_id"]),
        counts=sum_counts(cat("counts")),
        episode_ids=cat("episode_ids").sort("episode_id"),
    )


def canonical_order(part: PartitionResult) -> PartitionResult:
    """One result in the same total order `combine` gives (to compare a whole run with a union)."""
    return combine([part])


# --- The summary, reduced from counts ----------------------------------------------------------


class InputFacts(NamedTuple):
    """What summary.json says of one input besides its counts. `path`: the name its counts are
    kept under (source_file)."""

    path: str
    layout: str
    sha256: str
    encoding: str
    columns_present: tuple[str, ...]


def summary_from_counts(counts_frame: pl.DataFrame, ctx: AuditContext) -> dict:
    """summary.json from additive counts alone: what a cluster driver can afford to collect."""
    inputs = [InputFacts(str(e.path), e.plan.layout, e.sha256, e.encoding, tuple(e.plan.episode_columns))
              for e in ctx.exports]
    return reduce_summary(counts_frame, inputs, ctx.catalogue, ctx.as_of, ctx.started)


def summary_of(result) -> dict:
    """summary.json of a whole local run: its counts reduced as a Spark driver reduces its
    partitions' (audit.outputs.summary), so both engines' summaries come from one reduction."""
    inputs = [InputFacts(f.path, f.layout, f.sha256, f.encoding, tuple(f.columns_present)) for f in result.data.files]
    return reduce_summary(counts(result), inputs, result.catalogue, result.options.as_of, result.started)


def reduce_summary(counts_frame: pl.DataFrame, inputs: list[InputFacts], catalogue: Catalogue, as_of: date,
                   started: datetime) -> dict:
    totals = sum_counts(counts_frame)

    def values(metric: str, source_file: str = "") -> dict[str, int]:
        rows = totals.filter((pl.col("metric") == metric) & (pl.col("source_file") == source_file))
        return dict(rows.select("key", "value").iter_rows())

    def value(metric: str, source_file: str = "") -> int:
        return int(values(metric, source_file).get("", 0))

    files = []
    for facts in inputs:
        name = facts.path
        read, rejected = value("rows_read", name), value("rows_rejected", name)
        files.append({
            # Files by absolute path; tables and JDBC sources by their name.
            "path": name if facts.encoding in ("table", "jdbc") else os.path.abspath(name), "layout": facts.layout,
            "sha256": facts.sha256, "encoding": facts.encoding,
            "rows_read": read, "rows_rejected": rejected, "rows_audited": read - rejected,
            "episodes_audited": value("episodes_audited", name), "invalid_dates": value("invalid_dates", name),
            "columns_present": list(facts.columns_present),
        })

    def file_total(metric: str) -> int:
        return sum(value(metric, facts.path) for facts in inputs)

    kinds = {kind: int(values("code_kind").get(kind, 0)) for kind in codes.CODE_KINDS}
    guidance_status = values("guidance_status")
    by_guidance = {
        g: {"episodes": n, **{s: int(guidance_status.get(f"{g}|{s}", 0)) for s in STATUSES}}
        for g, n in sorted(values("guidance").items())
    }

    def keyed(metric: str, keys) -> dict[str, int]:
        found = values(metric)
        return {k: int(found.get(k, 0)) for k in keys}

    by_rule = keyed("rule", rules.RULES)
    reasons = values("rejected_reason")
    return {
        "tool_version": __version__,
        "run_started": started.isoformat(timespec="seconds"),
        "as_of": as_of.isoformat(),
        "catalogue_version": catalogue.version,
        "catalogue_files": [str(Path(f).resolve()) for f in catalogue.files],  # for `report DIR`
        "guidance_in_catalogue": len(catalogue.guidance),
        "inputs": files,
        "totals": {
            "rows_read": sum(f["rows_read"] for f in files),
            "rows_rejected": sum(f["rows_rejected"] for f in files),
            "rows_audited": sum(f["rows_audited"] for f in files),
            "episodes_audited": file_total("episodes_audited"),
            "procedures": kinds[codes.PROCEDURE] + file_total("clean_procedures"),
            "matched_pairs": sum(n for n in values("guidance").values()),
            "matched_episodes": value("matched_episodes"),
            "findings": value("findings"),
        },
        "by_guidance": by_guidance,
        # Episodes carrying a guidance's index code without the evidence that identifies the
        # procedure (issue 10): counted per guidance, never findings.
        "possible_not_audited": {g: int(n) for g, n in sorted(values("possible").items())},
        "by_status": keyed("status", STATUSES),
        "by_rule": by_rule,
        "by_severity": keyed("severity", SEVERITIES),
        "rejected_by_reason": {k: int(v) for k, v in sorted(reasons.items())},
        "data_quality": {
            "invalid_codes": kinds[codes.INVALID],
            "not_known_codes": kinds[codes.NOT_KNOWN],
            "no_operation_markers": kinds[codes.NO_OPERATION] + file_total("clean_no_operations"),
            "local_fifth_characters": value("local_fifth_characters"),
            "invalid_dates": sum(f["invalid_dates"] for f in files),
        },
    }

