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
BREAKDOWN_CAP = 50  # rows per provider / specialty / consultant / coder table
BREAKDOWN_SEARCH_CAP = 500  # rows past that cap kept (hidden) for the table's search box
DATA_QUALITY_CAP = 50  # rows per data-quality list
NOT_RECORDED = "(not recorded)"
BREAKDOWNS = (("provider", "Provider"), ("specialty", "Treatment specialty"), ("consultant", "Consultant"),
              ("coder", "Coder"))

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
# Badges carry an icon beside their text label (colour only reinforces it): the templates' macros
# (as jinja2 globals) and reports.cards write the same ones.
STATUS_ICONS = {COMPLIANT: "✓", NON_COMPLIANT: "✗", SUPERSEDED_STATUS: "↻", PREDATES: "◷"}
SEVERITY_ICONS = {ERROR: "✗", WARNING: "⚠", SUPERSEDED: "↻"}
CHANGE_ICONS = {NEW: "+", STILL_OPEN: "●", RESOLVED: "✓"}
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


def cap_rows(total: dict[str, int], shown: pl.DataFrame, by: str,
             known: tuple[str, ...] = tuple(RULES)) -> tuple[CapRow, ...]:
    """Per group: its true total (`total`, counted over the whole run) and how many are shown."""
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


def big_number(label: str, value: int, note: str, tone: str, drill: str = "") -> BigNumber:
    """drill: the `#filter=` address listing what the number counts ("" for none)."""
    text = number(value)
    return BigNumber(label, text, note, tone, "longer" if len(text) > 10 else "long" if len(text) > 7 else "",
                     drill if value else "")


def lineage_text(g: Guidance | None) -> str:
    return f"{g.id} → {g.lineage}" if g is not None and g.replaced_by else ""


MIN_N = 10  # fewer judged episodes than this: a breakdown shows no percentage (no league table of one)

# Plain titles, shown before the rule id. Rules added later fall back to their id.
RULE_TITLES = {
    "levels-not-second": "Levels-of-spine code not straight after the operation",
    "levels-unspecified": "Levels of spine unspecified (V55.9)",
    "approach-missing": "Image-control (approach) code missing",
    "approach-unspecified": "Image control unspecified (Y53.9)",
    "method-missing": "Method code missing",
    "site-missing": "Site code missing",
    "site-not-recommended": "Site differs from the one the guidance names",
    "companion-missing": "Companion operation code missing",
    "qualifier-order": "Qualifier codes out of order",
    "date-missing": "No date to judge the episode by",
    "superseded-guidance": "Coded to superseded guidance",
    "subsidiary-code-primary": "Chapter Y or Z code in the primary position",
    "no-operation-with-codes": "Codes after the 'no operation' marker",
    "invalid-code": "Not a valid OPCS-4 code",
    "code-not-in-opcs": "Code not in the OPCS-4 list given",
    "levels-repeated": "Two levels-of-spine codes in a row",
    "date-in-future": "Episode dated after the as-of date",
    "not-known-with-codes": "Codes after the 'not known' marker",
    "no-operation-between-codes": "'No operation' marker between codes",
}


def rule_title(rule_id: str) -> str:
    if rule_id.startswith("status: "):
        return f"Episode {STATUS_LABELS.get(rule_id.removeprefix('status: '), rule_id)} without a finding"
    return RULE_TITLES.get(rule_id, rule_id)
