"""Stage 3: turn the raw exports into the canonical episodes and procedures frames.

- `episodes`: one row per audited episode (with or without procedures).
- `procedures`: one row per non-blank procedure field, with its position (1 = primary), the
  normalised code, the raw value as exported, its date, and the episode's dates and
  provider / specialty / consultant.

Rows that cannot be audited are set aside by `audit.validate` with a reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import polars as pl

from audit import codes, memory
from audit.codes import CodePattern
from audit.dates import any_odd_date, is_unparseable, odd_rows, parse_dates, typed_dates
from audit.layouts import DATE_FIELDS, EPISODE_FIELDS, date_column_names
from audit.load import CARRY_PREFIX, Export, is_parquet
from audit.prefilter import (
    LONG_FLAGS, ROW_NEEDS, TO_TRIAGE, long_episode_triage, long_row_triage, replace_rows, scanned, triage,
    triage_flagged,
)
from audit.validate import REJECTED_SCHEMA, first_failure, rejected_rows
from schemas import polars_schema
from schemas.canonical import EPISODES, PROCEDURES
from schemas.inputs import EPISODE_POSITIONS, IDENTITY, IDENTITY_ONE_FILE, position_number


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


def _episode_fields(frame: pl.DataFrame) -> list[pl.Expr | pl.Series]:
    """Episode-level fields, typed; absent ones are null so every frame has the same columns."""
    exprs: list[pl.Expr | pl.Series] = []
    for name in EPISODE_FIELDS:
        if name not in frame.columns:
            exprs.append(pl.lit(None, pl.Date if name in DATE_FIELDS else pl.String).alias(name))
        elif name in DATE_FIELDS:
            exprs.append(parse_dates(frame[name]))
        else:
            exprs.append(pl.col(name).str.strip_chars().replace("", None).alias(name))
    return exprs


def _unparseable_dates(odd_rows: pl.DataFrame) -> int:
    """How many date values of these rows (those the stream flagged with an odd date) are
    neither dates nor HES placeholders. The full test is too dear for every value of millions."""
    present = date_column_names(odd_rows.columns)
    if not present or odd_rows.height == 0:
        return 0
    return int(odd_rows.select(pl.sum_horizontal(is_unparseable(pl.col(c)) for c in present).sum()).item())


def _wide_slots(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per non-empty procedure field. Most of a wide export's slots are empty, so each
    slot is filtered before anything else is done with it, and only its own columns are copied
    (filtering the whole row first copied some 60 columns per slot: ten times the cost)."""
    slots = sorted(int(c.split("_")[1]) for c in rows.columns if c.startswith("code_"))
    parts = [
        rows.lazy().select(
            "episode_id",
            pl.lit(n, pl.Int32).alias("position"),
            pl.col(f"code_{n}").alias("code_raw"),
            pl.col(f"date_{n}").alias("procedure_date"),
            "source_file",
            "source_row",
        ).filter(pl.col("code_raw").is_not_null() & (pl.col("code_raw") != ""))
        for n in slots
    ]
    if not parts:
        return pl.DataFrame(schema={"episode_id": pl.String, "position": pl.Int32, "code_raw": pl.String,
                                    "procedure_date": pl.String, "source_file": pl.String, "source_row": pl.Int64})
    return pl.concat(parts).collect()


def _scan_notes(export: Export, in_full: bool) -> pl.Series | None:
    """The rows the record scan noted as holding a date value that is not plain, where it looked
    (a CSV file whose lines are its records: audit.records; where it tested the coding too, among
    the rows it leaves to triage), unless `in_full` (rows parsed from their lines, tested anew)."""
    return export.scan.odd_dates if export.scan is not None and not in_full else None


def _reads_parquet(export: Export) -> bool:
    """A Parquet file read here (not a partition's rows, as the Spark engine hands them over, nor
    a table): its text columns come from polars' Parquet decoder (`_tested_dates`)."""
    return isinstance(export, Export) and is_parquet(export.path)


def _odd_dates(export: Export, schema: pl.Schema, noted: pl.Series | None, until: date | None,
               parquet: bool) -> pl.Expr:
    """A row with a date value that needs the full validity test: one of the scan's `noted` rows,
    else tested here (typed dates as dates; `until`: a text date that may be after it counts,
    audit.dates.odd_date), but for a Parquet file (`parquet`: `_reads_parquet`), whose batches are
    tested once read (`_tested_dates`)."""
    if noted is not None:
        return pl.col("row").is_in(noted.implode())
    if parquet:
        return pl.lit(False)
    return any_odd_date(date_column_names(schema.names()), uk=_uk_dates(export), typed=typed_dates(schema),
                        until=until)


def _dates_bounded(export: Export, index: tuple[CodePattern, ...] | None, as_of: date | None, in_full: bool) -> bool:
    """Whether `_odd_dates` also flags a row whose text date may be after `as_of`, for the prefilter
    (audit.prefilter.maybe_after's `later_in_odd`): where the dates are tested here, not noted by the scan."""
    return _scan_notes(export, in_full) is None and index is not None and as_of is not None


def _tested_dates(export: Export, index: tuple[CodePattern, ...] | None,
                  as_of: date | None) -> Callable[[pl.DataFrame], pl.DataFrame] | None:
    """For a Parquet file: each batch, once read, with `_odd_dates` tested over each date column's
    non-null values only (audit.dates.odd_rows: polars leaves text behind the null slots, which a
    test inside the query read; a 500,000-row slice's date checks 200 -> 82 ms), and the rows it
    flags needing the audit where the prefilter asks (`_dates_bounded`). None for other files."""
    if not _reads_parquet(export):
        return None
    bounded = _dates_bounded(export, index, as_of, in_full=False)
    needs = ROW_NEEDS if export.plan.shape == "long" else "needs_audit"

    def tested(batch: pl.DataFrame) -> pl.DataFrame:
        odd = odd_rows(batch, date_column_names(batch.columns), typed=typed_dates(batch.schema),
                       until=as_of if bounded else None)
        return batch.with_columns(odd, *([pl.col(needs) | odd] if bounded else []))

    return tested


def _as_text(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Rows kept for the full audit with their typed dates (a Parquet file's, audit.dates.typed_dates,
    tested as dates in the stream) cast to text, as every later stage reads them."""
    typed = typed_dates(rows.collect_schema())
    return rows.with_columns(pl.col(c).cast(pl.String) for c in typed) if typed else rows


def _uk_dates(export: Export) -> bool:
    """Whether `dd/mm/yyyy` dates are plain in this file: a CSV file, which the record scan read
    (a PAS report opened in Excel writes them so; the scan takes them in), not Parquet or a table
    (ISO text or typed dates there; testing for them cost 7% of a 1M run)."""
    return export.scan is not None


def _to_triage(export: Export, index: tuple[CodePattern, ...] | None) -> pl.Series | None:
    """The rows the record scan could not certify clean, where it looked for this audit's index
    codes (audit.prefilter.plain_coding); None: every row is triaged."""
    if export.scan is None or export.scan.to_triage is None or export.clean_for != index:
        return None
    return export.scan.to_triage


def _narrow(export: Export, index: tuple[CodePattern, ...] | None, as_of: date | None) -> bool:
    """Whether every row can be parsed for its id and codes only (`Export.batches`' `narrow`):
    the record scan certified this audit's clean coding, with no date after the run's as-of date,
    and kept the lines of the rows it did not certify, whose columns are parsed from them. A
    certified row needs nothing else, unless the user's code list sends it to the audit (a code
    not in the list: its line is read again, `_listed_again`)."""
    scan = export.scan
    return (_to_triage(export, index) is not None and scan.triage_lines is not None
            and (as_of is None or (scan.until is not None and scan.until <= as_of)))


_TRIAGE = ["needs_audit", "filled", "no_operation"]
_STREAM = ["_reason", "_odd_dates", TO_TRIAGE, *LONG_FLAGS, *_TRIAGE]  # the columns the file's query adds to its rows


def _checks(export: Export, index: tuple[CodePattern, ...] | None, known_codes: pl.Series | None,
            as_of: date | None, in_full: bool = False):
    """What the file's one streaming query adds to its rows: the id stripped, `_reason` (why
    the row is rejected, null when it is not), `_odd_dates` (a date value needs the full validity
    test; where tested here for the prefilter, or may be after `as_of`: the two in one pattern)
    and the prefilter's columns (audit.prefilter; without an index, or for a long file,
    every row needs the audit). `in_full`: for the rows the record scan left to triage, parsed
    from their lines (`Export.triage_rows`): their dates tested and their coding triaged here,
    rather than taken from the scan's notes and triaged again (1M CSV: 50,587 rows, 226 -> 178 ms)."""
    shape, uk = export.plan.shape, _uk_dates(export)
    noted = _scan_notes(export, in_full)
    later_in_odd = _dates_bounded(export, index, as_of, in_full)
    parquet = _reads_parquet(export)  # (once: it opens the file to look)

    def extend(rows: pl.LazyFrame) -> pl.LazyFrame:
        rows = rows.with_columns(
            pl.col("episode_id").str.strip_chars(),
            first_failure(shape).alias("_reason"),
            _odd_dates(export, rows.collect_schema(), noted, as_of if later_in_odd else None, parquet)
            .alias("_odd_dates"),
        )
        if index is None:
            return rows.with_columns(needs_audit=pl.lit(True), filled=pl.lit(0, pl.UInt8),
                                     no_operation=pl.lit(0, pl.UInt8))
        if shape == "long":  # the episode's triage needs all its rows: per batch, in `build`
            return long_row_triage(rows, index, known_codes, as_of, odd_dates=pl.col("_odd_dates"), uk=uk,
                                   later_in_odd=later_in_odd)
        slots = [slot.position for slot in export.plan.slots]
        if not in_full and (flagged := _to_triage(export, index)) is not None:
            # Where the scan tested the coding, the rows it flags as possibly odd-dated are these.
            to_triage = (pl.col("_odd_dates") if flagged is export.scan.odd_dates
                         else pl.col("row").is_in(flagged.implode()))
            return scanned(rows, slots, to_triage, known_codes, as_of, odd_dates=pl.col("_odd_dates"), uk=uk)
        return triage(rows, slots, index, known_codes, as_of, odd_dates=pl.col("_odd_dates"), uk=uk,
                      later_in_odd=later_in_odd)

    return extend


@dataclass
class _FileRead:
    """What one file's streaming pass leaves: counts, and the small frames the run goes on with."""

    rows_read: int = 0
    invalid_dates: int = 0
    rejected: list[pl.DataFrame] = field(default_factory=list)  # by the record scan and the row checks
    identity: list[pl.DataFrame] = field(default_factory=list)  # every accepted row's keys and counts
    kept: list[pl.DataFrame] = field(default_factory=list)  # the rows that need the full audit
    repeated_positions: list[pl.DataFrame] = field(default_factory=list)  # long: rejected by EPISODE_POSITIONS
    episode_ids: pl.Series | None = None  # long: each accepted id once (wide: one row is one episode)


_REPEATED = "_repeated"  # a long episode lists a position twice (schemas.inputs, EPISODE_POSITIONS)


def _long_episodes(batch: pl.DataFrame, accepted: pl.Expr, triaged: bool) -> pl.DataFrame:
    """Each episode of a long batch once, from its `accepted` rows: `_REPEATED`, and with
    `triaged`, whether it needs the audit (audit.prefilter.long_episode_triage), from one grouping
    by the text id (three, for the ids, the triage and the positions, cost 0.67 s of the
    1M-episode long file's 1.33 s pass; one costs 0.34 s)."""
    repeated = (_position_number(batch, "long").n_unique() < pl.len()).alias(_REPEATED)
    if triaged:
        return long_episode_triage(batch, accepted, repeated)
    return batch.lazy().filter(accepted).group_by("episode_id").agg(repeated).collect()


def _read(export: Export, number: int, index: tuple[CodePattern, ...] | None, known_codes: pl.Series | None,
          as_of: date | None) -> _FileRead:
    """One file's pass: its rows parsed, checked and triaged in its streaming query, each batch
    split into rejected rows, identity rows and the rows that need the full audit."""
    read = _FileRead(rejected=[export.structural_rejects()])
    read.rows_read = read.rejected[0].height
    checks = _checks(export, index, known_codes, as_of)
    full_checks = _checks(export, index, known_codes, as_of, in_full=True)  # the flagged rows' own
    long, long_triage = export.plan.shape == "long", export.plan.shape == "long" and index is not None
    uk = _uk_dates(export)
    narrow = _narrow(export, index, as_of)
    slots = [slot.position for slot in export.plan.slots]
    tested_dates = _tested_dates(export, index, as_of)
    batch_ids, listed_lines = [], []
    for batch in export.batches(checks, narrow=narrow):
        if tested_dates is not None:
            batch = tested_dates(batch)
        whole = batch  # the batch's rows that may need more than their id and codes, in every column
        if narrow:
            flagged = batch[TO_TRIAGE]
            whole = export.triage_rows(batch.filter(flagged)["source_line"], full_checks)
            batch = replace_rows(batch, flagged, whole.select(_TRIAGE))
            if known_codes is not None:  # certified rows holding a code the user's list lacks
                listed_lines.append(batch.filter(~flagged & pl.col("needs_audit") & pl.col("_reason").is_null())
                                    ["source_line"])
        elif TO_TRIAGE in batch.columns:
            batch = whole = triage_flagged(batch, slots, index, known_codes, as_of, odd_dates="_odd_dates", uk=uk)
        read.rows_read += batch.height
        rows, ok = batch.lazy(), pl.col("_reason").is_null()
        needs = pl.col("needs_audit")
        if long:  # each episode once (a batch ends where an episode does): its triage, from all its rows
            episodes = _long_episodes(batch, ok, long_triage)
            if long_triage:
                needs = pl.col("episode_id").is_in(episodes.filter("needs_audit")["episode_id"].implode())
        # Each part is selected before it is filtered: only the rows it keeps are copied.
        bad, odd, ids, audit = pl.collect_all([
            rows.filter(~ok).select("source_file", "source_row", "episode_id", pl.col("_reason").alias("reason"),
                                    _source_line(batch)),
            whole.lazy().filter(ok & pl.col("_odd_dates")).select(date_column_names(whole.columns)),
            rows.filter(ok).select(
                "episode_id",
                pl.lit(str(number)).alias("source_file"),  # a file number keeps this frame small
                "source_row", _source_line(batch),
                pl.lit(export.plan.shape).alias("shape"),
                _position_number(batch, export.plan.shape),
                needs.alias("needs_audit"), "filled", "no_operation",
            ),
            _as_text(whole.lazy().filter(ok & needs).drop(_STREAM, strict=False)),
        ])
        read.rejected.append(bad)
        read.invalid_dates += _unparseable_dates(odd)
        read.identity.append(ids)
        read.kept.append(audit)
        if long:  # an episode's positions are checked where its rows are: in its batch
            batch_ids.append(episodes["episode_id"])
            repeated = episodes.filter(_REPEATED)["episode_id"]
            if repeated.len():  # (rare) pandera says which rows, over those episodes' rows only
                read.repeated_positions.append(
                    rejected_rows(ids.filter(pl.col("episode_id").is_in(repeated.implode())), EPISODE_POSITIONS))
    _check_read(export, read.rows_read)
    if listed_lines:
        _listed_again(read, export, checks, pl.concat(listed_lines))
    if long:
        read.episode_ids = pl.concat(batch_ids) if batch_ids else pl.Series("episode_id", [], pl.String)
        # Ids in several batches, found by their 64-bit hashes (half the cost of the text's): a
        # collision only sends two episodes through the scattered path, which is exact for any.
        scattered_ids = read.episode_ids.filter(read.episode_ids.hash().is_duplicated()).unique()
        if scattered_ids.len():  # rows the file spreads over batches: their episodes checked over all of them
            read.episode_ids = read.episode_ids.unique()
            scattered = pl.col("episode_id").is_in(scattered_ids.implode())
            read.repeated_positions.append(rejected_rows(pl.concat(read.identity).filter(scattered), EPISODE_POSITIONS))
            if long_triage:
                _audit_in_full(read, export, checks, scattered)
    return read


def build(exports: list[Export], index: tuple[CodePattern, ...] | None = None,
          known_codes: pl.Series | None = None, as_of: date | None = None) -> Canonical:
    """Validate every row, keep those that need the full audit, reshape them to procedures.

    `index`: the catalogue's index-code patterns, to set aside rows that cannot fire any rule
    (see audit.prefilter); None audits every row in full. `known_codes`: the user's OPCS-4
    code list, when given (a row with a code outside it needs the audit too). `as_of`: the run's
    as-of date, when given (a row that may be dated after it needs the audit too).
    """
    reads = []
    for number, export in enumerate(exports):
        memory.reading = export.name
        reads.append(_read(export, number, index, known_codes, as_of))

    identity = [part for read in reads for part in read.identity]
    identity_frame = pl.concat(identity) if identity else pl.DataFrame()
    ambiguous = _ambiguous(identity_frame, exports, [part for read in reads for part in read.repeated_positions])
    rejected_frame = pl.concat([part for read in reads for part in read.rejected] + [ambiguous]).sort(
        "source_file", "source_row")

    accepted = identity_frame.join(
        ambiguous.select(pl.col("source_file").replace_strict({e.name: str(i) for i, e in enumerate(exports)}),
                         "source_row"),
        on=["source_file", "source_row"], how="anti",
    ) if ambiguous.height else identity_frame
    episodes, procedures, carried = [], [], []
    for export, ok in _kept_per_file(exports, reads):
        if ambiguous.height:
            ok = ok.join(ambiguous.select("source_file", "source_row"), on=["source_file", "source_row"], how="anti")
        episodes.append(_episodes(ok, export.plan.shape))
        procedures.append(_procedures(ok, export.plan.shape))
        if (columns := _carried(ok)) is not None:
            carried.append(columns)
    # Identity checks reject every row of an episode (all its copies, or all its rows), so an
    # episode is accepted when any of its rows is, and none of an ambiguous episode's are.
    ambiguous_ids = ambiguous["episode_id"].unique()
    long_ids = [read.episode_ids.filter(~read.episode_ids.is_in(ambiguous_ids)) if ambiguous_ids.len()
                else read.episode_ids for read in reads if read.episode_ids is not None]
    files = tuple(
        _file_counts(export, number, read, accepted, rejected_frame, ambiguous_ids)
        for number, (export, read) in enumerate(zip(exports, reads))
    )
    episode_frame = pl.concat(episodes).sort("episode_id") if episodes else _empty(EPISODES)
    # Procedures in (episode_id, position) order, sorted by the episode's rank in episode_frame
    # (an episode id is unique there): two integer keys sort several times faster than text ones.
    procedure_frame = (
        pl.concat(procedures)
        .join(episode_frame.drop("source_file", "source_row").with_row_index("_rank"), on="episode_id", how="left")
        .sort("_rank", "position")
        .select(PROCEDURE_COLUMNS)
    ) if procedures else _empty(PROCEDURES)
    return Canonical(
        episodes=EPISODES.validate(episode_frame),
        procedures=PROCEDURES.validate(procedure_frame),
        rejected=rejected_frame.select(list(REJECTED_SCHEMA)),
        files=files,
        carried=pl.concat(carried, how="diagonal").unique("episode_id", keep="first").sort("episode_id")
        if carried else pl.DataFrame(schema={"episode_id": pl.String}),
        # A wide row is a whole episode; an id on rows of two files is ambiguous (rejected), so
        # the files' accepted ids do not overlap.
        episode_ids=_accepted_ids(accepted, long_ids, wide=any(e.plan.shape == "wide" for e in exports)),
    )


def _accepted_ids(accepted: pl.DataFrame, long_ids: list[pl.Series], wide: bool) -> pl.Series:
    """Every accepted episode id once. A wide row is a whole episode; an id on rows of two files
    is ambiguous (rejected), so the files' accepted ids do not overlap."""
    if accepted.height == 0:
        return pl.Series("episode_id", [], pl.String)
    if not long_ids:
        return accepted["episode_id"]
    parts = [accepted.filter(pl.col("shape") == "wide")["episode_id"]] if wide else []
    return pl.concat(parts + long_ids) if len(parts + long_ids) > 1 else long_ids[0]


def _listed_again(read: _FileRead, export: Export, checks, lines: pl.Series) -> None:
    """Rows the record scan certified (clean coding, dates on or before as-of), parsed for their
    id and codes only, that hold a code the user's OPCS-4 code list lacks: they need the full
    audit, so their lines, which the scan did not keep, are read again and parsed whole. With a
    list of the export's own OPCS-4 version there are few or none (1M episodes, none: 3.62 s
    when every row was parsed whole for the list, 3.28 s so)."""
    if lines.len():
        rows = export.triage_rows(lines, checks, again=True)
        read.kept.append(rows.filter(pl.col("_reason").is_null() & pl.col("needs_audit")).drop(_STREAM, strict=False))


def _audit_in_full(read: _FileRead, export: Export, checks, scattered: pl.Expr) -> None:
    """The `scattered` episodes of a long file (each batch triaged only part of one) audited in
    full: their rows are read again, in a second pass that only a file which does not keep an
    episode's rows together needs."""
    again = export.batches(lambda rows: checks(rows).filter(scattered))
    read.identity = [part.with_columns(pl.col("needs_audit") | scattered) for part in read.identity]
    read.kept = ([part.filter(~scattered) for part in read.kept]
                 + [_as_text(batch.lazy().filter(pl.col("_reason").is_null()).drop(_STREAM, strict=False)).collect()
                    for batch in again])


def _position_number(rows: pl.DataFrame, shape: str) -> pl.Expr:
    """A long row's position as a number (the long triage's, where it ran), for the identity checks."""
    if shape == "wide":
        return pl.lit(None, pl.Int32).alias("position")
    return (pl.col("_position") if "_position" in rows.columns else position_number(pl.col("position"))).alias("position")


def _source_line(rows: pl.DataFrame) -> pl.Expr:
    return pl.col("source_line") if "source_line" in rows.columns else pl.lit(None, pl.Int64).alias("source_line")


def _kept_per_file(exports: list[Export], reads: list[_FileRead]) -> list[tuple[Export, pl.DataFrame]]:
    """Each file's kept rows as one frame. A long file's episodes' fields are gathered from all
    their rows, and an export need not keep an episode's rows together (its batches are
    episode-aligned only where it does); a wide file's rows are whole episodes, but reshaping its
    batches' rows at once is one query per stage, not one per batch (10M episodes in Parquet, 20
    batches: 1.4-2.2 s of reshaping as 60 queries, 0.57-0.66 s as 3)."""
    return [(export, pl.concat(read.kept) if len(read.kept) > 1 else read.kept[0])
            for export, read in zip(exports, reads) if read.kept]


def _empty(schema) -> pl.DataFrame:
    return pl.DataFrame(schema=polars_schema(schema))


def _ambiguous(identity: pl.DataFrame, exports: list[Export], repeated_positions: list[pl.DataFrame]) -> pl.DataFrame:
    """Rows whose episode identity is ambiguous across the whole run, with file paths restored.
    `repeated_positions`: the long files' rows rejected by EPISODE_POSITIONS, checked batch by
    batch; the run-wide checks' reasons come first (schemas.inputs.IDENTITY_CHECKS)."""
    if identity.height == 0:
        return pl.DataFrame(schema=REJECTED_SCHEMA)
    ambiguous = pl.concat([rejected_rows(identity, IDENTITY if len(exports) > 1 else IDENTITY_ONE_FILE),
                           *repeated_positions]).unique(["source_file", "source_row"], keep="first", maintain_order=True)
    paths = {str(i): e.name for i, e in enumerate(exports)}
    return ambiguous.with_columns(pl.col("source_file").replace_strict(paths, return_dtype=pl.String))


def _file_counts(export: Export, number: int, read: _FileRead, accepted: pl.DataFrame, rejected: pl.DataFrame,
                 ambiguous_ids: pl.Series) -> FileCounts:
    name = export.name
    clean = ~pl.col("needs_audit")
    # One aggregation over the file's accepted rows: a filtered copy of them (or their distinct
    # ids) cost a gigabyte at ten million long rows.
    rows, clean_fields, clean_dashes = accepted.lazy().filter(pl.col("source_file") == str(number)).select(
        pl.len().alias("rows"),
        pl.col("filled").cast(pl.Int64).filter(clean).sum().alias("clean_fields"),
        pl.col("no_operation").cast(pl.Int64).filter(clean).sum().alias("clean_dashes"),
    ).collect().row(0) if accepted.height else (0, 0, 0)
    return FileCounts(
        path=name,
        layout=export.plan.layout,
        sha256=export.sha256,
        encoding=export.encoding,
        rows_read=read.rows_read,
        rows_rejected=rejected.filter(pl.col("source_file") == name).height,
        rows_audited=int(rows),
        # Accepted wide rows are one per episode (audit.validate rejects every copy of a repeated id).
        episodes_audited=int(rows) if read.episode_ids is None
        else int((~read.episode_ids.is_in(ambiguous_ids)).sum()),
        invalid_dates=read.invalid_dates,
        columns_present=tuple(export.plan.episode_columns),
        clean_procedures=int(clean_fields) - int(clean_dashes),
        clean_no_operations=int(clean_dashes),
    )


PROCEDURE_COLUMNS = [
    "episode_id", "position", "code", "code_raw", "code_kind", "local_suffix", "invalid_reason",
    "procedure_date", *EPISODE_FIELDS, "source_file", "source_row",
]


def _carried(rows: pl.DataFrame) -> pl.DataFrame | None:
    """The mapping's carried columns, one row per episode, under their export names; None when it
    carries none (most do not: the kept ids would be deduplicated and sorted for no column)."""
    names = [c for c in rows.columns if c.startswith(CARRY_PREFIX)]
    if not names:
        return None
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
    procedures = codes.with_normalised_codes(slots, "code_raw").filter(pl.col("code_kind") != codes.BLANK)
    return procedures.select(
        "episode_id", "position", "code", "code_raw", "code_kind", "local_suffix",
        "invalid_reason", parse_dates(procedures["procedure_date"]), "source_file", "source_row",
    )
