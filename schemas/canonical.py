"""The canonical frames every stage after loading relies on.

Built-in pandera checks only (vectorised polars expressions, never element-wise).
"""

import polars as pl

from audit.codes import CODE_KINDS
from schemas.engine import pa

OPCS4_CODE = r"^[A-HJ-Z][0-9]{3}$"  # NHS Data Dictionary OPCS-4 CODE: an4, no chapter I

_EPISODE_FIELDS = {
    "admission_date": pa.Column(pl.Date, nullable=True),
    "episode_start": pa.Column(pl.Date, nullable=True),
    "episode_end": pa.Column(pl.Date, nullable=True),
    "provider": pa.Column(pl.String, nullable=True),
    "specialty": pa.Column(pl.String, nullable=True),
    "consultant": pa.Column(pl.String, nullable=True),
}
_SOURCE = {
    "source_file": pa.Column(pl.String),
    "source_row": pa.Column(pl.Int64, pa.Check.ge(1)),
}

EPISODES = pa.DataFrameSchema(
    {"episode_id": pa.Column(pl.String, unique=True), **_EPISODE_FIELDS, **_SOURCE},
    strict=True,
    ordered=True,
    name="episodes",
)

PROCEDURES = pa.DataFrameSchema(
    {
        "episode_id": pa.Column(pl.String),
        "position": pa.Column(pl.Int32, pa.Check.in_range(1, 999)),
        "code": pa.Column(pl.String, pa.Check.str_matches(OPCS4_CODE), nullable=True),
        "code_raw": pa.Column(pl.String),
        "code_kind": pa.Column(pl.Enum(CODE_KINDS)),
        "local_suffix": pa.Column(pl.String, nullable=True),
        "invalid_reason": pa.Column(pl.String, nullable=True),
        "procedure_date": pa.Column(pl.Date, nullable=True),
        **_EPISODE_FIELDS,
        **_SOURCE,
    },
    strict=True,
    ordered=True,
    unique=["episode_id", "position"],
    name="procedures",
)
