"""What the report's sections share: labels, caps and small frame helpers."""

from __future__ import annotations

import polars as pl

from audit.catalogue import Catalogue, Guidance
from audit.rules import ERROR, RULES, SUPERSEDED, WARNING
from reports import align
from reports.page import BigNumber, CapRow, GuidanceRef
from reports.text import number
from schemas.outputs import STATUSES

COMPLIANT, NON_COMPLIANT, SUPERSEDED_STATUS, PREDATES, DATE_UNCERTAIN = STATUSES
WORKSHEET_STATUSES = (NON_COMPLIANT, SUPERSEDED_STATUS)
BREAKDOWN_CAP = 50  # rows per provider / specialty / consultant table
DATA_QUALITY_CAP = 50  # rows per data-quality list
NOT_RECORDED = "(not recorded)"
BREAKDOWNS = (("provider", "Provider"), ("specialty", "Treatment specialty"), ("consultant", "Consultant"))

STATUS_LABELS = {
    COMPLIANT: "compliant",
    NON_COMPLIANT: "non-compliant",
    SUPERSEDED_STATUS: "superseded guidance",
    PREDATES: "predates guidance",
    DATE_UNCERTAIN: "date uncertain",
}
SEVERITY_LABELS = {ERROR: "error", WARNING: "warning", SUPERSEDED: "superseded"}
NEW, STILL_OPEN, RESOLVED = "new", "still-open", "resolved"
EPISODE_GONE = "episode-gone"  # the finding went with its episode, which left the export
CHANGES = (NEW, STILL_OPEN, RESOLVED, EPISODE_GONE)  # the order of the "what changed" table
CHANGE_LABELS = {NEW: "new", STILL_OPEN: "still open", RESOLVED: "resolved",
                 EPISODE_GONE: "episode no longer exported"}
CHANGE_KEY = ["episode_id", "guidance_id", "rule_id", "position"]
LINE_LABELS = {
    align.OK: "as expected",
    align.MISSING: "missing",
    align.OPTIONAL: "not recorded (only if done)",
    align.EXTRA: "not expected here",
    align.DIFFERS: "differs",
    align.MISPLACED: "out of place",
    align.LATER: "due later in the episode",
}


def clean(frame: pl.DataFrame) -> pl.DataFrame:
    """Text columns with "" for missing, so templates never meet None."""
    return frame.with_columns(pl.all().cast(pl.String).fill_null(""))


def as_int(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.Int64, strict=False)


def capped_per(frame: pl.DataFrame, by: str, cap: int) -> pl.DataFrame:
    """The first `cap` rows of each group, in frame order."""
    return frame.filter(pl.int_range(pl.len()).over(by) < cap)


def cap_rows(totals: pl.DataFrame, shown: pl.DataFrame, by: str,
              known: tuple[str, ...] = tuple(RULES)) -> tuple[CapRow, ...]:
    total = dict(totals.group_by(by).len().iter_rows())
    seen = dict(shown.group_by(by).len().iter_rows()) if shown.height else {}
    order = [r for r in known if r in total] + sorted(set(total) - set(known))
    return tuple(
        CapRow(rule, number(total[rule]), number(seen.get(rule, 0)), seen.get(rule, 0) < total[rule])
        for rule in order
    )


def catalogue_ref(catalogue: Catalogue, guidance_id: str) -> GuidanceRef:
    g = catalogue.guidance.get(guidance_id)
    if g is None:
        return GuidanceRef(guidance_id, "not in this catalogue", "")
    return GuidanceRef(g.id, g.title, g.url)


def ordered_guidance_ids(catalogue: Catalogue, ids) -> list[str]:
    known = [gid for gid in catalogue.guidance if gid in ids]
    return known + sorted(set(ids) - set(known))


def big_number(label: str, value: int, note: str, tone: str) -> BigNumber:
    text = number(value)
    return BigNumber(label, text, note, tone, "longer" if len(text) > 10 else "long" if len(text) > 7 else "")


def lineage_text(g: Guidance | None) -> str:
    return f"{g.id} → {g.lineage}" if g is not None and g.replaced_by else ""
