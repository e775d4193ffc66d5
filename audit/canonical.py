"""Stage 3: turn the raw exports into the canonical episodes and procedures frames.

- `episodes`: one row per audited episode (with or without procedures).
- `procedures`: one row per non-blank procedure field, with its position (1 = primary), the
  normalised code, the raw value as exported, its date, and the episode's dates and
  provider / specialty / consultant.

Rows that cannot be audited are set aside by `audit.validate` with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from audit import codes
from audit.dates import is_unparseable, parse_date
from audit.layouts import DATE_FIELDS, EPISODE_FIELDS
from audit.load import RawExport
from audit.validate import REJECTED_SCHEMA, row_schema, split_rejected
from schemas.canonical import EPISODES, PROCEDURES
from schemas.inputs import IDENTITY, position_number


@dataclass(frozen=True)
class FileCounts:
    path: str
    layout: str
    sha256: str
    encoding: str
    rows_read: int
    rows_rejected: int
    episodes_audited: int
    invalid_dates: int
    columns_present: tuple[str, ...]

    @property
    def rows_audited(self) -> int:
        return self.rows_read - self.rows_rejected


@dataclass(frozen=True)
class Canonical:
    episodes: pl.DataFrame
    procedures: pl.DataFrame
    rejected: pl.DataFrame
    files: tuple[FileCounts, ...]


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


def _unparseable_dates(frame: pl.DataFrame, columns: list[str]) -> int:
    """How many non-blank date values are neither dates nor HES placeholders."""
    present = [c for c in columns if c in frame.columns]
    if not present or frame.height == 0:
        return 0
    flags = [is_unparseable(pl.col(c)).fill_null(False) for c in present]
    return int(frame.select(pl.sum_horizontal(flags).sum()).item())


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


def build(exports: list[RawExport]) -> Canonical:
    accepted, rejected = [], []
    for export in exports:
        rows = export.frame.with_columns(pl.col("episode_id").str.strip_chars())
        ok, bad = split_rejected(rows, row_schema(export.plan.shape))
        accepted.append((export, ok))
        rejected.append(bad)

    identity = pl.concat(
        [
            ok.select(
                "episode_id", "source_file", "source_row",
                pl.lit(export.plan.shape).alias("shape"),
                (pl.col("position") if export.plan.shape == "long" else pl.lit(None, pl.String)).alias("position"),
            )
            for export, ok in accepted
        ]
    )
    _, ambiguous = split_rejected(identity, IDENTITY)
    rejected.append(ambiguous)
    rejected_frame = pl.concat(rejected).sort("source_file", "source_row")

    episodes, procedures, files = [], [], []
    for export, ok in accepted:
        ok = ok.join(ambiguous.select("source_file", "source_row"), on=["source_file", "source_row"], how="anti")
        episodes.append(_episodes(ok, export.plan.shape))
        file_procedures, unreadable_dates = _procedures(ok, export.plan.shape)
        procedures.append(file_procedures)
        files.append(
            FileCounts(
                path=str(export.path),
                layout=export.plan.layout,
                sha256=export.sha256,
                encoding=export.encoding,
                rows_read=export.frame.height,
                rows_rejected=rejected_frame.filter(pl.col("source_file") == str(export.path)).height,
                episodes_audited=ok["episode_id"].n_unique(),
                invalid_dates=unreadable_dates + _unparseable_dates(ok, list(DATE_FIELDS)),
                columns_present=tuple(export.plan.episode_columns),
            )
        )
    episode_frame = pl.concat(episodes).sort("episode_id")
    procedure_frame = (
        pl.concat(procedures)
        .join(episode_frame.drop("source_file", "source_row"), on="episode_id", how="left")
        .select(PROCEDURE_COLUMNS)
        .sort("episode_id", "position")
    )
    return Canonical(
        episodes=EPISODES.validate(episode_frame),
        procedures=PROCEDURES.validate(procedure_frame),
        rejected=rejected_frame.select(list(REJECTED_SCHEMA)),
        files=tuple(files),
    )


PROCEDURE_COLUMNS = [
    "episode_id", "position", "code", "code_raw", "code_kind", "local_suffix", "invalid_reason",
    "procedure_date", *EPISODE_FIELDS, "source_file", "source_row",
]


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


def _procedures(rows: pl.DataFrame, shape: str) -> tuple[pl.DataFrame, int]:
    """The procedure rows, and how many of their dates could not be read."""
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
    procedures = (
        codes.with_normalised_codes(slots, "code_raw")
        .filter(pl.col("code_kind") != codes.BLANK)
        .with_columns(parse_date(pl.col("procedure_date")).alias("procedure_date_parsed"))
    )
    unreadable = _unparseable_dates(procedures, ["procedure_date"])
    return (
        procedures.select(
            "episode_id", "position", "code", "code_raw", "code_kind", "local_suffix",
            "invalid_reason", pl.col("procedure_date_parsed").alias("procedure_date"), "source_file", "source_row",
        ),
        unreadable,
    )
