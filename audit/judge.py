"""Stage 6: a status for every matched (episode, guidance) pair.

- `superseded`: the superseded-guidance rule fired (episode dated on or after the replacement);
- `predates-guidance`: the episode is dated before the guidance was published;
- `non-compliant`: any error finding for that guidance;
- `compliant`: otherwise. Warnings never make an episode non-compliant.
"""

from __future__ import annotations

import polars as pl

from audit.catalogue import Catalogue
from audit.rules import ERROR, SUPERSEDED, WARNING

STATUSES = ("compliant", "non-compliant", "superseded", "predates-guidance")

EPISODE_STATUS_SCHEMA = {
    "episode_id": pl.String,
    "guidance_id": pl.String,
    "code_set": pl.String,
    "position": pl.Int32,
    "episode_date": pl.Date,
    "date_source": pl.String,
    "status": pl.String,
    "errors": pl.UInt32,
    "warnings": pl.UInt32,
    "provider": pl.String,
    "specialty": pl.String,
    "consultant": pl.String,
    "source_file": pl.String,
}


def judge(occurrences: pl.DataFrame, findings: pl.DataFrame, catalogue: Catalogue) -> pl.DataFrame:
    if occurrences.height == 0:
        return pl.DataFrame(schema=EPISODE_STATUS_SCHEMA)
    published = pl.DataFrame(
        {
            "guidance_id": [g.id for g in catalogue.auditable()],
            "published": [g.published.start for g in catalogue.auditable()],
        }
    )
    counts = (
        findings.filter(pl.col("guidance_id").is_not_null())
        .group_by("episode_id", "guidance_id")
        .agg(
            errors=(pl.col("severity") == ERROR).sum(),
            warnings=(pl.col("severity") == WARNING).sum(),
            superseded=(pl.col("severity") == SUPERSEDED).any(),
        )
    )
    # The pair is dated by its first occurrence (lowest position).
    pairs = occurrences.sort("position").unique(["episode_id", "guidance_id"], keep="first")
    return (
        pairs.join(counts, on=["episode_id", "guidance_id"], how="left")
        .join(published, on="guidance_id", how="left")
        .with_columns(
            pl.col("errors").fill_null(0).cast(pl.UInt32),
            pl.col("warnings").fill_null(0).cast(pl.UInt32),
            status=pl.when(pl.col("superseded").fill_null(False)).then(pl.lit("superseded"))
            .when(pl.col("episode_date") < pl.col("published")).then(pl.lit("predates-guidance"))
            .when(pl.col("errors").fill_null(0) > 0).then(pl.lit("non-compliant"))
            .otherwise(pl.lit("compliant")),
        )
        .select(list(EPISODE_STATUS_SCHEMA))
        .sort("episode_id", "guidance_id")
    )
