"""Every rule the audit applies, by id, with its usual severity and the standard behind it."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.outputs import SEVERITIES

ERROR, WARNING, SUPERSEDED = SEVERITIES


@dataclass(frozen=True)
class RuleInfo:
    id: str
    severity: str  # the usual severity; a conditional component turns errors into warnings
    standard: str  # one line: the coding standard behind the rule, for the report


RULES = {
    r.id: r
    for r in [
        RuleInfo("levels-not-second", ERROR,
                 "NICE spinal pages: a V55 levels-of-spine code is assigned directly after each spinal operation code."),
        RuleInfo("levels-repeated", ERROR,
                 "NICE spinal pages: one V55 code, in second place, gives the levels of each spinal operation; two in a row conflict."),
        RuleInfo("levels-unspecified", WARNING,
                 "V55.9 Unspecified levels of spine is for when the notes do not give the levels."),
        RuleInfo("approach-missing", ERROR,
                 "Y53 image-control codes classify interventions that are percutaneous and need image control."),
        RuleInfo("approach-unspecified", WARNING,
                 "Y53.9 is for when the method of image control is not specified."),
        RuleInfo("method-missing", ERROR,
                 "The guidance's code set includes a Chapter Y method code among the codes after the operation."),
        RuleInfo("site-missing", ERROR,
                 "The guidance's code set includes a Chapter Z site code (not Z94 laterality) after the operation."),
        RuleInfo("site-not-recommended", WARNING,
                 "The guidance names a particular site category; another site code may be a coding error."),
        RuleInfo("companion-missing", ERROR,
                 "The guidance's code set includes a further operation code in the same episode."),
        RuleInfo("qualifier-order", ERROR,
                 "PYZ sequencing: action, then V55 levels, then Chapter Y codes, then the Z site, then Z94 laterality."),
        RuleInfo("date-missing", WARNING,
                 "An episode needs a procedure or episode date to be judged against guidance dates."),
        RuleInfo("date-in-future", WARNING,
                 "An episode cannot be dated after the run's as-of date: the date is wrong, so the episode is not judged."),
        RuleInfo("superseded-guidance", SUPERSEDED,
                 "Coding that matches guidance NICE has replaced should be checked against the replacement."),
        RuleInfo("subsidiary-code-primary", ERROR,
                 "OPCS-4 PRule 7 (as taught): Chapter Y and Z codes, and V55 levels, are only ever used in a secondary position."),
        RuleInfo("no-operation-with-codes", ERROR,
                 "'-' in the primary (first filled) position means no operation was performed, so no procedure codes may follow."),
        RuleInfo("not-known-with-codes", ERROR,
                 "'&' (not known) in the primary (first filled) position, yet later positions hold codes: the primary procedure is uncoded."),
        RuleInfo("no-operation-between-codes", ERROR,
                 "'-' (no operation) between procedure codes contradicts them; only unused slots after the last code may hold '-'."),
        RuleInfo("invalid-code", ERROR,
                 "NHS Data Dictionary OPCS-4 CODE: a chapter letter and three digits (an4); '-' and '&' are the only fillers."),
        RuleInfo("code-not-in-opcs", WARNING,
                 "With --opcs-codes: a well-formed code that the given OPCS-4 code list does not hold."),
    ]
}
