"""Rules about an occurrence's date against its guidance's dates (the `timing` audit.match gives it).

Only episodes the guidance applies to are judged on its code set: an episode dated before the
guidance was published, inside the window of a date known only to a month or year, or after the
as-of date (a generic `date-in-future` finding) gets no guidance-rule findings (its status says why).
"""

from __future__ import annotations

from datetime import date

import polars as pl

from audit.catalogue import Catalogue, Guidance
from audit.match import AS_OF, IN_FORCE, SUPERSEDED_TIMING
from audit.rules.base import INDEX, Rule, shown, text
from audit.rules.registry import SUPERSEDED, WARNING

JUDGED = (IN_FORCE, SUPERSEDED_TIMING)  # timings whose occurrences are checked against the code set


def _replacement_note(guidance: Guidance, catalogue: Catalogue) -> str:
    """What the catalogue knows about the replacement's own coding."""
    successor = catalogue.guidance.get(guidance.replaced_by)
    if successor is None or not successor.code_sets:
        return (f"; {guidance.replaced_by}'s code set is not in the catalogue, so the coding could not be"
                f" checked against it")
    return f": check the coding against {guidance.replaced_by}"


def dated_rules(guidance: Guidance, catalogue: Catalogue, as_of: date) -> list[Rule]:
    rules = [
        Rule(
            "date-missing", WARNING, pl.col("date_source") != AS_OF,
            position=pl.col("position"), code=shown(pl.col("code")),
            expected=pl.lit("a procedure or episode date"),
            message=text("no procedure or episode date for ", INDEX,
                         f"; judged as of the run date {as_of.isoformat()}"),
        ),
    ]
    if guidance.replaced_by and guidance.replaced_on:
        rules.append(Rule(
            "superseded-guidance", SUPERSEDED, pl.col("timing") != SUPERSEDED_TIMING,
            position=pl.col("position"), code=shown(pl.col("code")),
            expected=pl.lit(guidance.replaced_by),
            message=text(
                INDEX, f" follows {guidance.id}, which {guidance.replaced_by} replaced in "
                f"{guidance.replaced_on}; episode dated ",
                pl.col("episode_date").cast(pl.String),
                f", after {guidance.replaced_by} replaced {guidance.id}",
                _replacement_note(guidance, catalogue),
                " (the replacement date is not verified: see `nice-audit catalogue show "
                f"{guidance.id}`)" if "replaced_on" in guidance.unverified else "",
            ),
        ))
    return rules
