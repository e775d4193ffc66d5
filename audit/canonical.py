"""Stage 3: turn the raw exports into the canonical episodes and procedures frames.

- `episodes`: one row per audited episode (with or without procedures).
- `procedures`: one row per non-blank procedure field, with its position (1 = primary), the
  normalised code, the raw value as exported, its date, and the episode's dates and
  provider / specialty / consultant.

Rows that cannot be audited are set aside by `audit.validate` with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import polars as pl

from audit import codes, memory
from audit.codes import CodePattern
from audit.dates import is_unparseable, odd_date, parse_date
from audit.layouts import DATE_FIELDS, EPISODE_FIELDS
from audit.load import CARRY_PREFIX, Export
from audit.prefilter import triage
from audit.validate import REJECTED_SCHEMA, first_failure, split_rejected
from schemas import polars_schema
from schemas.canonical import EPISODES, PROCEDURES
from schemas.inputs import IDENTITY, IDENTITY_ONE_FILE, position_number


@dataclass(frozen=True)
class FileCounts:
    path: str
    layout: str
    sha256: str
    encoding: str
    rows_read: int
    rows_rejected: int
    rows_audited: int  # counted from the rows that went on to the audit, not by subtraction
    episodes_audited: int
    invalid_dates: int
    columns_present: tuple[str, ...]
    # Fields of episodes set aside by the prefilter (clean coding, no index code): counted here,
    # since they never reach the procedures frame.
    clean_procedures: int = 0
    clean_no_operations: int = 0

    def __post_init__(self):
        # Three counts made in three places: if they disagree a row was lost, and the run must
        # not publish figures that hide it.
        if self.rows_read != self.rows_rejected + self.rows_audited:
            raise AccountingError(f"{self.rows_read} rows read but {self.rows_rejected} rejected "
                                  f"and {self.rows_audited} audited")


class AccountingError(RuntimeError):
    """Rows went missing between reading and auditing: a bug, never the user's input (exit 3)."""


def _check_read(export: Export, rows_read: int) -> None:
    """The parser's rows (plus those the scan set aside) must be the file's records."""
    if export.scan is not None and rows_read != export.scan.records:
        raise AccountingError(f"the parser read {rows_read} rows where the file has {export.scan.records} records")


@dataclass(frozen=True)
class Canonical:
    episodes: pl.DataFrame  # episodes that need the full audit (all of them without a prefilter)
    procedures: pl.DataFrame  # their procedures
    rejected: pl.DataFrame
    files: tuple[FileCounts, ...]
    carried: pl.DataFrame  # episode_id + the columns a mapping asked to carry (export names)
    # Every accepted episode id, the prefilter's clean ones included: the history tells "finding
    # gone, episode still exported" from "episode no longer in the export" by it.
    episode_ids: pl.Series = field(default_factory=lambda: pl.Series("episode_id", [], pl.String))

    @property
    def episodes_audited(self) -> int:
        return sum(f.episodes_audited for f in self.files)


def _episode_fields(frame: pl.DataFrame) -> list[pl.Expr]:
    """Episode-level fields, typed; absent ones are null so every frame has the same columns."""
    exprs = []
    for name in EPISODE_FIELDS:
        value = pl.col(name) if name in frame.columns else pl.lit(None, pl.String)
        if name in DATE_FIELDS:
            exprs.append(parse_date(value).alias(name))
        else:
            exprs.append(value.str.strip_chars().replace("", None).alias(name))
    return exprs


def _date_columns(columns: list[str]) -> list[str]:
    return [c for c in columns if c in DATE_FIELDS or c.startswith("date_") or c == "procedure_date"]


def _unparseable_dates(odd_rows: pl.DataFrame) -> int:
    """How many date values of these rows (those the stream flagged with an odd date) are
    neither dates nor HES placeholders. The full test is too dear for every value of millions."""
    present = _date_columns(odd_rows.columns)
    if not present or odd_rows.height == 0:
        return 0
    return int(odd_rows.select(pl.sum_horizontal(is_unparseable(pl.col(c)) for c in present).sum()).item())


def _wide_slots(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per non-empty procedure field. Most of a wide export's slots are empty, so each
    slot is filtered before anything else is done with it."""
    slots = sorted(int(c.split("_")[1]) for c in rows.columns if c.startswith("code_"))
    parts = [
        rows.filter(pl.col(f"code_{n}").is_not_null() & (pl.col(f"code_{n}") != "")).select(
            "episode_id",
            pl.lit(n, pl.Int32).alias("position"),
            pl.col(f"code_{n}").alias("code_raw"),
            pl.col(f"date_{n}").alias("procedure_date"),
            "source_file",
            "source_row",
        )
        for n in slots
    ]
    if not parts:
        return pl.DataFrame(schema={"episode_id": pl.String, "position": pl.Int32, "code_raw": pl.String,
                                    "procedure_date": pl.String, "source_file": pl.String, "source_row": pl.Int64})
    return pl.concat(parts)


_TRIAGE = ["needs_audit", "filled", "no_operation"]
_STREAM = ["_reason", "_odd_dates", *_TRIAGE]  # the columns the file's query adds to its rows


def _checks(export: Export, index: tuple[CodePattern, ...] | None, known_codes: pl.Series | None,
            as_of: date | None):
    """What the file's one streaming query adds to its rows: the id stripped, `_reason` (why
    the row is rejected, null when it is not), `_odd_dates` (a date value needs the full validity
    test) and the prefilter's columns (audit.prefilter; without an index, or for a long file,
    every row needs the audit)."""
    shape = export.plan.shape

    def extend(rows: pl.LazyFrame) -> pl.LazyFrame:
        dates = _date_columns(rows.collect_schema().names())
        rows = rows.with_columns(
            pl.col("episode_id").str.strip_chars(),
            first_failure(shape).alias("_reason"),
            pl.any_horizontal([odd_date(pl.col(c)).fill_null(False) for c in dates] or [pl.lit(False)])
            .alias("_odd_dates"),
        )
        if index is None or shape == "long":
            return rows.with_columns(needs_audit=pl.lit(True), filled=pl.lit(0, pl.UInt8),
                                     no_operation=pl.lit(0, pl.UInt8))
        return triage(rows, [slot.position for slot in export.plan.slots], index, known_codes, as_of,
                      odd_dates=pl.col("_odd_dates"))

    return extend


def build(exports: list[Export], index: tuple[CodePattern, ...] | None = None,
          known_codes: pl.Series | None = None, as_of: date | None = None) -> Canonical:
    """Validate every row, keep those that need the full audit, reshape them to procedures.

    `index`: the catalogue's index-code patterns, to set aside wide rows that cannot fire any
    rule (see audit.prefilter); None audits every row in full. `known_codes`: the user's OPCS-4
    code list, when given (a row with a code outside it needs the audit too). `as_of`: the run's
    as-of date, when given (a row that may be dated after it needs the audit too).
    """
    rejected, identity, kept, invalid_dates, rows_read = [], [], [], {}, {}
    for number, export in enumerate(exports):
        name = memory.reading = export.name
        structural = export.structural_rejects()
        rejected.append(structural)
        rows_read[name], invalid_dates[name] = structural.height, 0
        for batch in export.batches(_checks(export, index, known_codes, as_of)):
            rows_read[name] += batch.height
            # Each part is selected before it is filtered: only the rows it keeps are copied.
            rows, ok = batch.lazy(), pl.col("_reason").is_null()
            bad, odd, ids, audit = pl.collect_all([
                rows.filter(~ok).select("source_file", "source_row", "episode_id", pl.col("_reason").alias("reason"),
                                        _source_line(batch)),
                rows.filter(ok & pl.col("_odd_dates")).select(_date_columns(batch.columns)),
                rows.filter(ok).select(
                    "episode_id",
                    pl.lit(str(number)).alias("source_file"),  # a file number keeps this frame small
                    "source_row", _source_line(batch),
                    pl.lit(export.plan.shape).alias("shape"),
                    (pl.col("position") if export.plan.shape == "long" else pl.lit(None, pl.String)).alias("position"),
                    *_TRIAGE,
                ),
                rows.filter(ok & pl.col("needs_audit")).drop(_STREAM),
            ])
            rejected.append(bad)
            invalid_dates[name] += _unparseable_dates(odd)
            identity.append(ids)
            kept.append((export, audit))
        _check_read(export, rows_read[name])

    identity_frame = pl.concat(identity) if identity else pl.DataFrame()
    ambiguous = _ambiguous(identity_frame, exports)
    rejected.append(ambiguous)
    rejected_frame = pl.concat(rejected).sort("source_file", "source_row")

    accepted = identity_frame.join(
        ambiguous.select(pl.col("source_file").replace_strict({e.name: str(i) for i, e in enumerate(exports)}),
                         "source_row"),
        on=["source_file", "source_row"], how="anti",
    ) if ambiguous.height else identity_frame
    episodes, procedures, carried = [], [], []
    for export, ok in _whole_long_episodes(kept):
        if ambiguous.height:
            ok = ok.join(ambiguous.select("source_file", "source_row"), on=["source_file", "source_row"], how="anti")
        episodes.append(_episodes(ok, export.plan.shape))
        procedures.append(_procedures(ok, export.plan.shape))
        carried.append(_carried(ok))
    files = tuple(
        _file_counts(export, number, accepted, rejected_frame, rows_read, invalid_dates)
        for number, export in enumerate(exports)
    )
    episode_frame = pl.concat(episodes).sort("episode_id") if episodes else _empty(EPISODES)
    procedure_frame = (
        pl.concat(procedures)
        .join(episode_frame.drop("source_file", "source_row"), on="episode_id", how="left")
        .select(PROCEDURE_COLUMNS)
        .sort("episode_id", "position")
    ) if procedures else _empty(PROCEDURES)
    return Canonical(
        episodes=EPISODES.validate(episode_frame),
        procedures=PROCEDURES.validate(procedure_frame),
        rejected=rejected_frame.select(list(REJECTED_SCHEMA)),
        files=files,
        carried=pl.concat(carried, how="diagonal").unique("episode_id", keep="first").sort("episode_id")
        if carried else pl.DataFrame(schema={"episode_id": pl.String}),
        # A wide row is a whole episode, and every copy of a repeated id is rejected: only a long
        # file's ids repeat.
        episode_ids=(accepted["episode_id"].unique() if any(e.plan.shape == "long" for e in exports)
                     else accepted["episode_id"]) if accepted.height else pl.Series("episode_id", [], pl.String),
    )


def _source_line(rows: pl.DataFrame) -> pl.Expr:
    return pl.col("source_line") if "source_line" in rows.columns else pl.lit(None, pl.Int64).alias("source_line")


def _whole_long_episodes(kept: list[tuple[Export, pl.DataFrame]]) -> list[tuple[Export, pl.DataFrame]]:
    """A long file's kept rows as one frame: its episodes' fields are gathered from all their rows,
    and an export need not keep an episode's rows together (its batches are episode-aligned only
    where it does). Wide rows are whole episodes: their batches stay as they are."""
    wide = [(export, rows) for export, rows in kept if export.plan.shape == "wide"]
    long: dict[int, tuple[Export, list[pl.DataFrame]]] = {}
    for export, rows in kept:
        if export.plan.shape == "long":
            long.setdefault(id(export), (export, []))[1].append(rows)
    return wide + [(export, pl.concat(parts)) for export, parts in long.values()]


def _empty(schema) -> pl.DataFrame:
    return pl.DataFrame(schema=polars_schema(schema))


def _ambiguous(identity: pl.DataFrame, exports: list[Export]) -> pl.DataFrame:
    """Rows whose episode identity is ambiguous across the whole run, with file paths restored."""
    if identity.height == 0:
        return pl.DataFrame(schema=REJECTED_SCHEMA)
    _, ambiguous = split_rejected(identity, IDENTITY if len(exports) > 1 else IDENTITY_ONE_FILE)
    paths = {str(i): e.name for i, e in enumerate(exports)}
    return ambiguous.with_columns(pl.col("source_file").replace_strict(paths, return_dtype=pl.String))


def _file_counts(export: Export, number: int, accepted: pl.DataFrame, rejected: pl.DataFrame,
                 rows_read: dict, invalid_dates: dict) -> FileCounts:
    name = export.name
    mine = accepted.filter(pl.col("source_file") == str(number)) if accepted.height else accepted
    clean = mine.filter(~pl.col("needs_audit")) if mine.height else mine
    return FileCounts(
        path=name,
        layout=export.plan.layout,
        sha256=export.sha256,
        encoding=export.encoding,
        rows_read=rows_read[name],
        rows_rejected=rejected.filter(pl.col("source_file") == name).height,
        rows_audited=mine.height,
        # Accepted wide rows are one per episode (audit.validate rejects every copy of a repeated id).
        episodes_audited=(mine["episode_id"].n_unique() if export.plan.shape == "long" else mine.height)
        if mine.height else 0,
        invalid_dates=invalid_dates[name],
        columns_present=tuple(export.plan.episode_columns),
        clean_procedures=int((clean["filled"].cast(pl.Int64) - clean["no_operation"].cast(pl.Int64)).sum()) if clean.height else 0,
        clean_no_operations=int(clean["no_operation"].sum()) if clean.height else 0,
    )


PROCEDURE_COLUMNS = [
    "episode_id", "position", "code", "code_raw", "code_kind", "local_suffix", "invalid_reason",
    "procedure_date", *EPISODE_FIELDS, "source_file", "source_row",
]


def _carried(rows: pl.DataFrame) -> pl.DataFrame:
    """The mapping's carried columns, one row per episode, under their export names."""
    names = [c for c in rows.columns if c.startswith(CARRY_PREFIX)]
    return rows.select("episode_id", *[pl.col(c).alias(c.removeprefix(CARRY_PREFIX)) for c in names])


def _episodes(rows: pl.DataFrame, shape: str) -> pl.DataFrame:
    typed = rows.select("episode_id", *_episode_fields(rows), "source_file", "source_row")
    if shape == "long":
        # Episode fields repeat on every procedure row; take the first non-null.
        typed = typed.sort("source_row").group_by("episode_id", maintain_order=True).agg(
            *[pl.col(name).drop_nulls().first() for name in EPISODE_FIELDS],
            pl.col("source_file").first(),
            pl.col("source_row").min(),
        )
    return typed


def _procedures(rows: pl.DataFrame, shape: str) -> pl.DataFrame:
    if shape == "wide":
        slots = _wide_slots(rows)
    else:
        slots = rows.select(
            "episode_id",
            position_number(pl.col("position")).alias("position"),
            "code_raw",
            "procedure_date",
            "source_file",
            "source_row",
        )
    return (
        codes.with_normalised_codes(slots, "code_raw")
        .filter(pl.col("code_kind") != codes.BLANK)
        .select(
            "episode_id", "position", "code", "code_raw", "code_kind", "local_suffix",
            "invalid_reason", parse_date(pl.col("procedure_date")).alias("procedure_date"),
            "source_file", "source_row",
        )
    )
