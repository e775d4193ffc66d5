"""The output contract: findings and episode statuses, as the report and scripts read them."""

import polars as pl

from schemas.engine import pa


SEVERITIES = ["error", "warning", "superseded"]
# date-uncertain: dated inside the window of a guidance date known only to a month or a year (issue 10).
STATUSES = ["compliant", "non-compliant", "superseded", "predates-guidance", "date-uncertain"]

_WHERE = {
    "provider": pa.Column(pl.String, nullable=True),
    "specialty": pa.Column(pl.String, nullable=True),
    "consultant": pa.Column(pl.String, nullable=True),
    "source_file": pa.Column(pl.String),
}

FINDINGS = pa.DataFrameSchema(
    {
        "episode_id": pa.Column(pl.String),
        "guidance_id": pa.Column(pl.String, nullable=True),  # null for the generic rules
        "code_set": pa.Column(pl.String, nullable=True),
        "rule_id": pa.Column(pl.String),
        "severity": pa.Column(pl.String, pa.Check.isin(SEVERITIES)),
        "position": pa.Column(pl.Int32, pa.Check.ge(1), nullable=True),
        "code": pa.Column(pl.String, nullable=True),
        "expected": pa.Column(pl.String, nullable=True),
        "message": pa.Column(pl.String),
        **_WHERE,
    },
    strict=True,
    ordered=True,
    name="findings",
)

EPISODE_STATUSES = pa.DataFrameSchema(
    {
        "episode_id": pa.Column(pl.String),
        "guidance_id": pa.Column(pl.String),
        "code_set": pa.Column(pl.String),
        "position": pa.Column(pl.Int32, pa.Check.ge(1)),
        "episode_date": pa.Column(pl.Date),
        "date_source": pa.Column(pl.String),
        "status": pa.Column(pl.String, pa.Check.isin(STATUSES)),
        "errors": pa.Column(pl.UInt32),
        "warnings": pa.Column(pl.UInt32),
        **_WHERE,
        "actual_sequence": pa.Column(pl.String),
        "expected_sequence": pa.Column(pl.String),
    },
    strict=True,
    ordered=True,
    unique=["episode_id", "guidance_id"],
    name="episode statuses",
)
