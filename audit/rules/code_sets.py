"""Rules over one guidance code set's occurrences (audit.match): the components it lists, in order.

V55 after a spinal index code is the generic spinal rule's (audit.rules.generic): here only for an
index code outside the spinal table, so that one operation never gets two `levels-not-second`.
"""

from __future__ import annotations

import polars as pl

from audit import codes
from audit.catalogue import CodeSet, Component
from audit.match import component_present
from audit.rules.base import INDEX, Rule, shown, text
from audit.rules.registry import ERROR, RULES, WARNING


def _severity(component: Component, rule_id: str) -> str | None:
    """Missing components: required -> the rule's severity; conditional -> warning."""
    return {"required": RULES[rule_id].severity, "conditional": WARNING}.get(component.requirement)


def first_match(values: str, positions: str, match: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(position, code) of the first listed code for which `match` (over pl.element()) holds."""
    idx = pl.col(values).list.eval(match).list.arg_max()
    return pl.col(positions).list.get(idx, null_on_oob=True), pl.col(values).list.get(idx, null_on_oob=True)


def _levels_rules(component: Component) -> list[Rule]:
    next_is_levels = codes.is_levels(pl.col("next_code")).fill_null(False)
    after = (
        pl.when(pl.col("next_code").is_null())
        .then(pl.lit("nothing follows it"))
        .otherwise(text("position ", pl.col("next_position").cast(pl.String), " holds ", shown(pl.col("next_code"))))
    )
    rules = []
    if severity := _severity(component, "levels-not-second"):
        rules.append(Rule(
            "levels-not-second", severity, next_is_levels | codes.is_spinal_operation(pl.col("code")),
            position=pl.coalesce("next_position", "position"),
            code=shown(pl.coalesce("next_code", "code")),
            expected=pl.lit("V55.-"),
            message=text(INDEX, " must be followed directly by a V55 levels-of-spine code; ", after),
        ))
    rules.append(Rule(
        "levels-unspecified", WARNING, (pl.col("next_code") != "V559").fill_null(True),
        position=pl.col("next_position"), code=shown(pl.col("next_code")),
        expected=pl.lit("V55 code for the levels treated"),
        message=text("V55.9 at position ", pl.col("next_position").cast(pl.String),
                     " says the levels of spine are unspecified; record the levels if the notes give them"),
    ))
    return rules


def _missing_rule(rule_id: str, component: Component, what: str) -> Rule | None:
    severity = _severity(component, rule_id)
    if severity is None or (component.identifies and component.role != "index"):
        return None
    expected = " or ".join(str(p) for p in component.accepted)
    where = "later in the episode" if component.scope == "episode" else "among the codes after it"
    advice = (
        "; none is recorded"
        if severity == ERROR
        else f"; add it if it was done ({component.note or 'the code set lists it as conditional'})"
    )
    return Rule(
        rule_id, severity, component_present(component),
        position=pl.col("position"), code=shown(pl.col("code")), expected=pl.lit(expected),
        message=text(INDEX, f" needs {what} ({expected}) {where}", advice),
    )


def _site_rules(component: Component) -> list[Rule]:
    column, positions = (
        ("following", "following_positions") if component.scope == "episode"
        else ("qualifiers", "qualifier_positions")
    )
    site = codes.is_site(pl.element()) & codes.any_of(component.accepted, pl.element())
    has_site = pl.col(column).list.eval(site).list.any().fill_null(False)
    rules = []
    if (severity := _severity(component, "site-missing")) and not component.identifies:
        expected = " or ".join(str(p) for p in component.accepted).replace(
            "any Chapter Z code", "a Chapter Z site code")
        where = "later in the episode" if component.scope == "episode" else "among the codes after it"
        rules.append(Rule(
            "site-missing", severity, has_site,
            position=pl.col("position"), code=shown(pl.col("code")), expected=pl.lit(expected),
            message=text(INDEX, f" needs {expected} (not Z94 laterality) {where}; none is recorded"),
        ))
    if component.recommended:
        recommended = " or ".join(str(p) for p in component.recommended)
        position, code = first_match(column, positions, site)
        follows = pl.col(column).list.eval(
            site & codes.any_of(component.recommended, pl.element())).list.any()
        rules.append(Rule(
            "site-not-recommended", WARNING, (~has_site | follows).fill_null(True),
            position=position, code=shown(code), expected=pl.lit(recommended),
            message=text(shown(code), " at position ", position.cast(pl.String),
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


# Two neighbours out of PYZ order, in a string of the qualifiers' ranks (one digit each).
_DESCENDING = "[1-4]0|[2-4]1|[34]2|43"


def _order_rule() -> Rule:
    # The ranks as a string, one digit per qualifier, tested by one regular expression: a list
    # expression comparing neighbours (`diff`) is evaluated list by list, six times slower (0.14 s
    # for the 38,000 occurrences of one spinal code set).
    ranks = pl.col("qualifiers").list.eval(_RANK.cast(pl.String)).list.join("")
    in_order = (~ranks.str.contains(_DESCENDING)).fill_null(True)
    first_bad = ranks.str.find(_DESCENDING) + 1  # the second of the first pair: one character per qualifier
    position = pl.col("qualifier_positions").list.get(first_bad, null_on_oob=True)
    recorded = pl.col("qualifiers").list.eval(shown(pl.element())).list.join(", ")
    return Rule(
        "qualifier-order", ERROR, in_order,
        position=position,
        code=shown(pl.col("qualifiers").list.get(first_bad, null_on_oob=True)),
        expected=pl.lit("V55, then Y, then Z site, then Z94"),
        message=text("codes after ", INDEX, " are out of order (", recorded,
                     "): expected V55 levels, then Chapter Y codes, then the Z site, then Z94 laterality"),
    )


_WHAT = {"method": "the method code", "approach": "an approach code", "companion": "the code"}
_MISSING = {"method": "method-missing", "approach": "approach-missing", "companion": "companion-missing"}


def code_set_rules(code_set: CodeSet) -> list[Rule]:
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
        position, code = first_match("qualifiers", "qualifier_positions", pl.element() == "Y539")
        rules.append(Rule(
            "approach-unspecified", WARNING,
            ~pl.col("qualifiers").list.contains("Y539").fill_null(False),
            position=position, code=shown(code), expected=pl.lit("Y53 code for the image control used"),
            message=text("Y53.9 at position ", position.cast(pl.String),
                         " says the method of image control is unspecified; record it if the notes give it"),
        ))
    rules.append(_order_rule())
    return rules

