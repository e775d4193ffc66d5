"""Stage 5: the coding rules, as named vectorised polars expressions, and the findings they produce.

- `generic`: rules over every episode (primary position, HES fillers, invalid codes, and the V55
  rule for every spinal operation);
- `code_sets`: rules over one guidance code set's occurrences;
- `dates`: an occurrence's date against its guidance's dates.

A rule is found by its id in `RULES`, with the standard behind it.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from audit.catalogue import Catalogue
from audit.match import OCCURRENCE_SCHEMA
from audit.rules.base import FINDINGS_SCHEMA, FINDINGS_SORT, Rule, empty_findings, findings_from
from audit.rules.code_sets import code_set_rules
from audit.rules.dates import JUDGED, dated_rules
from audit.rules.generic import slot_rules, spinal_rules, spinal_sequence, with_slot_context
from audit.rules.registry import ERROR, RULES, SUPERSEDED, WARNING, RuleInfo
from schemas.outputs import FINDINGS, SEVERITIES

__all__ = [
    "ERROR", "FINDINGS_SCHEMA", "FINDINGS_SORT", "RULES", "SEVERITIES", "SUPERSEDED", "WARNING",
    "Rule", "RuleInfo", "audit_findings", "empty_findings",
]


def _spinal_findings(procedures: pl.DataFrame, judged: pl.DataFrame) -> pl.DataFrame:
    """The V55 rule over every spinal operation; a finding on an operation a guidance matched (and
    judges) carries that guidance, so each operation gets one `levels-not-second`, not two."""
    found = findings_from(spinal_sequence(procedures), spinal_rules(), None, None, "spinal operations",
                          keep=(pl.col("operation_position").cast(pl.Int32).alias("_operation"),))
    matched = judged.select("episode_id", pl.col("position").alias("_operation"),
                            pl.col("guidance_id").alias("_guidance"), pl.col("code_set").alias("_code_set"))
    return (
        found.join(matched, on=["episode_id", "_operation"], how="left")
        .with_columns(guidance_id=pl.col("_guidance"), code_set=pl.col("_code_set"))
        .drop("_operation", "_guidance", "_code_set")
    )


def audit_findings(procedures: pl.DataFrame, occurrences: pl.DataFrame, catalogue: Catalogue,
                   as_of: date, known_codes: pl.Series | None = None) -> pl.DataFrame:
    """Every finding, generic and per guidance, sorted deterministically."""
    occurrences = occurrences if occurrences.width else pl.DataFrame(schema=OCCURRENCE_SCHEMA)
    judged = occurrences.filter(pl.col("timing").is_in(JUDGED))
    parts = [
        findings_from(with_slot_context(procedures), slot_rules(known_codes, as_of), None, None, "procedures"),
        _spinal_findings(procedures, judged),
    ]
    # Each code set's occurrences at once; code sets no episode matched fire nothing and cost nothing.
    by_code_set = occurrences.partition_by("guidance_id", "code_set", as_dict=True) if occurrences.height else {}
    for guidance in catalogue.auditable():
        for code_set in guidance.code_sets:
            these = by_code_set.get((guidance.id, code_set.name))
            if these is None:
                continue
            name = f"{guidance.id} {code_set.name}"
            parts.append(findings_from(these.filter(pl.col("timing").is_in(JUDGED)), code_set_rules(code_set),
                                       guidance.id, code_set.name, name))
            parts.append(findings_from(these, dated_rules(guidance, catalogue, as_of), guidance.id,
                                       code_set.name, f"{name} dates"))
    return FINDINGS.validate(pl.concat(parts).sort(FINDINGS_SORT, nulls_last=False))
