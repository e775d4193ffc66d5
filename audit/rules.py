"""Stage 5: the coding rules, as named vectorised pandera checks, and the findings they produce.

Every rule is a polars expression that is True where the coding follows the standard. Each
guidance code set compiles to a pandera schema over its index-code occurrences (one check per
rule that applies to it); the generic rules form one schema over the procedures frame. Findings
are built from the failing rows of each pandera check (`audit.checks`), joined back to the frame,
with the position, code, expected value and message computed as expressions too.

A rule is found by its id in `RULES`, with the standard behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

import pandera.polars as pa
import polars as pl

from audit import codes
from audit.catalogue import Catalogue, CodeSet, Component, Guidance
from audit.checks import failing_rows
from audit.match import AS_OF, component_present
from schemas import polars_schema
from schemas.outputs import FINDINGS, SEVERITIES

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
        RuleInfo("levels-unspecified", WARNING,
                 "V55.9 Unspecified levels of spine is for when the notes do not give the levels."),
        RuleInfo("approach-missing", ERROR,
                 "Y53 (or Y68) image-control codes classify interventions that are percutaneous and need image control."),
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
        RuleInfo("superseded-guidance", SUPERSEDED,
                 "Coding that matches guidance NICE has replaced should be checked against the replacement."),
        RuleInfo("subsidiary-code-primary", ERROR,
                 "OPCS-4 PRule 7 (as taught): Chapter Y and Z codes are only ever used in a secondary position."),
        RuleInfo("no-operation-with-codes", ERROR,
                 "'-' in the primary position means no operation was performed, so no procedure codes may follow."),
        RuleInfo("invalid-code", ERROR,
                 "NHS Data Dictionary OPCS-4 CODE: a chapter letter and three digits (an4); '-' and '&' are the only fillers."),
        RuleInfo("code-not-in-opcs", WARNING,
                 "With --opcs-codes: a well-formed code that the given OPCS-4 code list does not hold."),
    ]
}


@dataclass(frozen=True)
class Rule:
    """One rule applied to one frame: `passes` is True where the coding is right."""

    id: str
    severity: str
    passes: pl.Expr
    position: pl.Expr
    code: pl.Expr
    expected: pl.Expr
    message: pl.Expr


FINDINGS_SCHEMA = polars_schema(FINDINGS)
FINDINGS_SORT = ["episode_id", "guidance_id", "position", "rule_id", "expected"]


def _text(*parts) -> pl.Expr:
    return pl.concat_str([p if isinstance(p, pl.Expr) else pl.lit(p) for p in parts])


def _shown(code: pl.Expr) -> pl.Expr:
    return codes.display_expr(code)


def _severity(component: Component, rule_id: str) -> str | None:
    """Missing components: required -> the rule's severity; conditional -> warning."""
    return {"required": RULES[rule_id].severity, "conditional": WARNING}.get(component.requirement)


def _first_match(values: str, positions: str, match: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(position, code) of the first listed code for which `match` (over pl.element()) holds."""
    idx = pl.col(values).list.eval(match).list.arg_max()
    return pl.col(positions).list.get(idx, null_on_oob=True), pl.col(values).list.get(idx, null_on_oob=True)


_INDEX = _text(_shown(pl.col("code")), " at position ", pl.col("position").cast(pl.String))


# --- Rules over one code set's occurrences ---------------------------------------------------


def _levels_rules(component: Component) -> list[Rule]:
    next_is_levels = codes.is_levels(pl.col("next_code")).fill_null(False)
    after = (
        pl.when(pl.col("next_code").is_null())
        .then(pl.lit("nothing follows it"))
        .otherwise(_text("position ", pl.col("next_position").cast(pl.String), " holds ",
                         _shown(pl.col("next_code"))))
    )
    rules = []
    if severity := _severity(component, "levels-not-second"):
        rules.append(Rule(
            "levels-not-second", severity, next_is_levels,
            position=pl.coalesce("next_position", "position"),
            code=_shown(pl.coalesce("next_code", "code")),
            expected=pl.lit("V55.-"),
            message=_text(_INDEX, " must be followed directly by a V55 levels-of-spine code; ", after),
        ))
    rules.append(Rule(
        "levels-unspecified", WARNING, (pl.col("next_code") != "V559").fill_null(True),
        position=pl.col("next_position"), code=_shown(pl.col("next_code")),
        expected=pl.lit("V55 code for the levels treated"),
        message=_text("V55.9 at position ", pl.col("next_position").cast(pl.String),
                      " says the levels of spine are unspecified; record the levels if the notes give them"),
    ))
    return rules


def image_control(component: Component) -> tuple[codes.CodePattern, ...]:
    """Y68 'Other approach to organ under image control' is accepted wherever Y53 is asked for:
    the OPCS-4.9 TAVI standard (PCSK1) allows it [unverified], and demanding Y53 alone would
    flag correct coding."""
    if any(p.prefix.startswith("Y53") for p in component.patterns):
        return component.patterns + (codes.parse_pattern("Y68.-"),)
    return component.patterns


def _missing_rule(rule_id: str, component: Component, what: str) -> Rule | None:
    severity = _severity(component, rule_id)
    if severity is None or (component.identifies and component.role != "index"):
        return None
    patterns = image_control(component) if component.role == "approach" else component.patterns
    accepted = replace(component, patterns=patterns)
    expected = " or ".join(str(p) for p in patterns)
    where = "later in the episode" if component.scope == "episode" else "among the codes after it"
    advice = (
        "; none is recorded"
        if severity == ERROR
        else f"; add it if it was done ({component.note or 'the code set lists it as conditional'})"
    )
    return Rule(
        rule_id, severity, component_present(accepted),
        position=pl.col("position"), code=_shown(pl.col("code")), expected=pl.lit(expected),
        message=_text(_INDEX, f" needs {what} ({expected}) {where}", advice),
    )


def _site_rules(component: Component) -> list[Rule]:
    column, positions = (
        ("following", "following_positions") if component.scope == "episode"
        else ("qualifiers", "qualifier_positions")
    )
    site = codes.is_site(pl.element()) & codes.any_of(component.patterns, pl.element())
    has_site = pl.col(column).list.eval(site).list.any().fill_null(False)
    rules = []
    if severity := _severity(component, "site-missing"):
        expected = " or ".join(str(p) for p in component.patterns).replace(
            "any Chapter Z code", "a Chapter Z site code")
        where = "later in the episode" if component.scope == "episode" else "among the codes after it"
        rules.append(Rule(
            "site-missing", severity, has_site,
            position=pl.col("position"), code=_shown(pl.col("code")), expected=pl.lit(expected),
            message=_text(_INDEX, f" needs {expected} (not Z94 laterality) {where}; none is recorded"),
        ))
    if component.recommended:
        recommended = " or ".join(str(p) for p in component.recommended)
        position, code = _first_match(column, positions, site)
        follows = pl.col(column).list.eval(
            site & codes.any_of(component.recommended, pl.element())).list.any()
        rules.append(Rule(
            "site-not-recommended", WARNING, (~has_site | follows).fill_null(True),
            position=position, code=_shown(code), expected=pl.lit(recommended),
            message=_text(_shown(code), " at position ", position.cast(pl.String),
                          f" is not the site the guidance names ({recommended}); check the site code"),
        ))
    return rules


# PYZ order of the codes that describe an action.
_RANK = (
    pl.when(codes.is_levels(pl.element())).then(1)
    .when(codes.chapter(pl.element()) == "Y").then(2)
    .when(codes.is_laterality(pl.element())).then(4)
    .when(codes.chapter(pl.element()) == "Z").then(3)
    .otherwise(0)
)


def _order_rule() -> Rule:
    ranks = pl.col("qualifiers").list.eval(_RANK)
    in_order = (ranks.list.eval(pl.element().diff().fill_null(0) >= 0).list.all()).fill_null(True)
    first_bad = ranks.list.eval(pl.element().diff().fill_null(0) < 0).list.arg_max()
    position = pl.col("qualifier_positions").list.get(first_bad, null_on_oob=True)
    recorded = pl.col("qualifiers").list.eval(_shown(pl.element())).list.join(", ")
    return Rule(
        "qualifier-order", ERROR, in_order,
        position=position,
        code=_shown(pl.col("qualifiers").list.get(first_bad, null_on_oob=True)),
        expected=pl.lit("V55, then Y, then Z site, then Z94"),
        message=_text("codes after ", _INDEX, " are out of order (", recorded,
                      "): expected V55 levels, then Chapter Y codes, then the Z site, then Z94 laterality"),
    )


def _dated_rules(guidance: Guidance, as_of: date) -> list[Rule]:
    rules = [Rule(
        "date-missing", WARNING, pl.col("date_source") != AS_OF,
        position=pl.col("position"), code=_shown(pl.col("code")),
        expected=pl.lit("a procedure or episode date"),
        message=_text("no procedure or episode date for ", _INDEX,
                      f"; judged as of the run date {as_of.isoformat()}"),
    )]
    if guidance.replaced_by and guidance.replaced_on:
        rules.append(Rule(
            "superseded-guidance", SUPERSEDED,
            pl.col("episode_date") < pl.lit(guidance.replaced_on.start),
            position=pl.col("position"), code=_shown(pl.col("code")),
            expected=pl.lit(guidance.replaced_by),
            message=_text(
                _INDEX, f" follows {guidance.id}, which {guidance.replaced_by} replaced in "
                f"{guidance.replaced_on}; episode dated ",
                pl.col("episode_date").cast(pl.String),
                f": check the coding against {guidance.replaced_by}",
                " (the replacement date is not verified: see `nice-audit catalogue show "
                f"{guidance.id}`)" if "replaced_on" in guidance.unverified else "",
            ),
        ))
    return rules


_WHAT = {"method": "the method code", "approach": "an approach code", "companion": "the code"}
_MISSING = {"method": "method-missing", "approach": "approach-missing", "companion": "companion-missing"}


def code_set_rules(guidance: Guidance, code_set: CodeSet, as_of: date) -> list[Rule]:
    rules: list[Rule] = []
    for component in code_set.components:
        if component.role == "levels":
            rules += _levels_rules(component)
        elif component.role == "site":
            rules += _site_rules(component)
        elif component.role in _MISSING:
            if rule := _missing_rule(_MISSING[component.role], component, _WHAT[component.role]):
                rules.append(rule)
    if any(p.prefix.startswith("Y53") for c in code_set.of_role("approach") for p in c.patterns):
        position, code = _first_match("qualifiers", "qualifier_positions", pl.element() == "Y539")
        rules.append(Rule(
            "approach-unspecified", WARNING,
            ~pl.col("qualifiers").list.contains("Y539").fill_null(False),
            position=position, code=_shown(code), expected=pl.lit("Y53 code for the image control used"),
            message=_text("Y53.9 at position ", position.cast(pl.String),
                          " says the method of image control is unspecified; record it if the notes give it"),
        ))
    rules.append(_order_rule())
    return rules + _dated_rules(guidance, as_of)


# --- Generic rules over the procedures frame -------------------------------------------------


def generic_rules(known_codes: pl.Series | None = None) -> list[Rule]:
    code = _shown(pl.col("code"))
    later_codes = (
        ((pl.col("position") > 1) & pl.col("code_kind").is_in([codes.PROCEDURE, codes.INVALID]))
        .sum().over("episode_id")
    )
    rules = [
        Rule(
            "subsidiary-code-primary", ERROR,
            ~((pl.col("position") == 1) & codes.is_subsidiary(pl.col("code"))).fill_null(False),
            position=pl.col("position"), code=code, expected=pl.lit("an action code"),
            message=_text(code, " at position 1 is a Chapter ", codes.chapter(pl.col("code")),
                          " code, which is only ever secondary; the primary procedure must be an action code"),
        ),
        Rule(
            "no-operation-with-codes", ERROR,
            ~((pl.col("position") == 1) & (pl.col("code_kind") == codes.NO_OPERATION) & (later_codes > 0)),
            position=pl.col("position"), code=pl.lit("-"), expected=pl.lit("no codes after '-'"),
            message=_text("position 1 says no operation (-) but ", later_codes.cast(pl.String),
                          " later position(s) hold codes"),
        ),
        Rule(
            "invalid-code", ERROR, pl.col("code_kind") != codes.INVALID,
            position=pl.col("position"), code=pl.col("code_raw"), expected=pl.lit("an OPCS-4 code"),
            message=_text("position ", pl.col("position").cast(pl.String), " holds '",
                          pl.col("code_raw").str.strip_chars(), "', which is not an OPCS-4 code: ",
                          pl.col("invalid_reason")),
        ),
    ]
    if known_codes is not None:
        rules.append(Rule(
            # A warning: a code retired or added between versions may be right for its episode.
            "code-not-in-opcs", WARNING,
            ~(pl.col("code").is_not_null() & ~pl.col("code").is_in(known_codes.implode())),
            position=pl.col("position"), code=code, expected=pl.lit("a code in the OPCS-4 code list"),
            message=_text(code, " at position ", pl.col("position").cast(pl.String),
                          " is not in the OPCS-4 code list given; check it against the version in force on the"
                          " episode date"),
        ))
    return rules


# --- From pandera failure cases to findings --------------------------------------------------


def schema_for(rules: list[Rule], name: str) -> pa.DataFrameSchema:
    checks = [
        pa.Check(lambda data, expr=rule.passes: data.lazyframe.select(expr), name=rule.id)
        for rule in rules
    ]
    return pa.DataFrameSchema(checks=checks, name=name)


def findings_from(frame: pl.DataFrame, rules: list[Rule], guidance_id, code_set, name: str) -> pl.DataFrame:
    if frame.height == 0 or not rules:
        return empty_findings()
    failing = failing_rows(frame, schema_for(rules, name))
    indexed = frame.with_row_index("index")
    parts = []
    for number, rule in enumerate(rules):
        rows = failing.filter(pl.col("check_number") == number).select("index")
        if rows.height == 0:
            continue
        # Messages may look across the episode (window expressions), so evaluate them over the
        # failing rows' whole episodes, then keep the failing rows.
        episodes = indexed.join(rows, on="index", how="semi").select("episode_id").unique()
        parts.append(
            indexed.join(episodes, on="episode_id", how="semi")
            .with_columns(pl.col("index").is_in(rows["index"].implode()).alias("_failing"))
            .select(
                "_failing",
                "episode_id",
                pl.lit(guidance_id, pl.String).alias("guidance_id"),
                pl.lit(code_set, pl.String).alias("code_set"),
                pl.lit(rule.id).alias("rule_id"),
                pl.lit(rule.severity).alias("severity"),
                rule.position.cast(pl.Int32).alias("position"),
                rule.code.cast(pl.String).alias("code"),
                rule.expected.cast(pl.String).alias("expected"),
                rule.message.alias("message"),
                "provider", "specialty", "consultant", "source_file",
            )
            .filter("_failing")
            .drop("_failing")
        )
    return pl.concat(parts) if parts else empty_findings()


def empty_findings() -> pl.DataFrame:
    return pl.DataFrame(schema=FINDINGS_SCHEMA)


def audit_findings(procedures: pl.DataFrame, occurrences: pl.DataFrame, catalogue: Catalogue,
                   as_of: date, known_codes: pl.Series | None = None) -> pl.DataFrame:
    """Every finding, generic and per guidance, sorted deterministically."""
    parts = [findings_from(procedures, generic_rules(known_codes), None, None, "procedures")]
    for guidance in catalogue.auditable():
        for code_set in guidance.code_sets:
            these = occurrences.filter(
                (pl.col("guidance_id") == guidance.id) & (pl.col("code_set") == code_set.name)
            )
            rules = code_set_rules(guidance, code_set, as_of)
            parts.append(findings_from(these, rules, guidance.id, code_set.name,
                                       f"{guidance.id} {code_set.name}"))
    return FINDINGS.validate(pl.concat(parts).sort(FINDINGS_SORT, nulls_last=False))
