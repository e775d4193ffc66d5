"""Rules over every episode, matched to a guidance or not.

- Slot rules, over every procedure field: what the primary (first filled) position may hold, the
  HES fillers `-` (no operation) and `&` (not known), invalid values, and codes outside the user's
  OPCS-4 code list. `-` in every slot after the last code is padding (some PAS exports fill unused
  slots so), not a finding.
- Spinal rules, over the valid codes in order: "Codes within category V55.- are assigned in second
  place each time a spinal operation is coded" (NICE IPG319 and IPG366 pages), so every spinal
  operation (audit/spinal_operations.csv) is followed directly by one V55 code.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from audit import codes, sequence
from audit.rules.base import INDEX, Rule, shown, text
from audit.rules.registry import ERROR, WARNING

_REAL = pl.col("code_kind").is_in([codes.PROCEDURE, codes.INVALID]).cast(pl.Int32)


def with_slot_context(procedures: pl.DataFrame) -> pl.DataFrame:
    """Add `first_filled` (the primary position: blank slots are not rows) and how many real
    (procedure or invalid) codes stand before and after each slot."""
    # Sorted by episode and position, so windows are boundary operations (audit.sequence; lazily).
    return sequence.in_episode_order(procedures).lazy().with_columns(
        first_filled=sequence.first_row(),
        real_before=sequence.cumulative_sum(_REAL) - _REAL,
        real_after=sequence.episode_sum(_REAL) - sequence.cumulative_sum(_REAL),
    ).collect()


def _future(as_of: date) -> list[Rule]:
    """An episode dated after the run's as-of date: a data-quality finding (the dates are wrong,
    so the episode is not judged against any guidance: audit.match timing). One per episode, on
    its first filled slot, at the first procedure dated in the future (none: an episode date)."""
    limit = pl.lit(as_of)
    episode_dates = [pl.col(c) for c in ("episode_end", "episode_start", "admission_date")]
    after = pl.col("procedure_date") > limit
    # The verdict, over every procedure, from the episode's boundaries (audit.sequence: the frame is
    # in episode order); the message's `over` windows run only on the failing episodes' rows (rules.base).
    dated_after = ((sequence.episode_sum(after.fill_null(False).cast(pl.Int32)) > 0)
                   | (pl.max_horizontal(*episode_dates) > limit).fill_null(False))
    latest = pl.max_horizontal(pl.col("procedure_date").max().over("episode_id"), *episode_dates)
    future_position = pl.when(after).then(pl.col("position")).min().over("episode_id")
    return [Rule(
        "date-in-future", WARNING, ~(pl.col("first_filled") & dated_after),
        position=future_position, code=shown(pl.col("code")).fill_null(pl.col("code_raw").str.strip_chars()),
        expected=pl.lit(f"a date on or before {as_of.isoformat()}"),
        message=text("the episode is dated ", latest.cast(pl.String), f", after the run's as-of date {as_of.isoformat()}:"
                     " correct the date (no guidance is judged on a date after the as-of date)"),
    )]


def slot_rules(known_codes: pl.Series | None = None, as_of: date | None = None) -> list[Rule]:
    code = shown(pl.col("code"))
    first = pl.col("first_filled")
    position = pl.col("position").cast(pl.String)
    later = pl.col("real_after").cast(pl.String)
    rules = [
        Rule(
            "subsidiary-code-primary", ERROR,
            ~(first & (codes.is_subsidiary(pl.col("code")) | codes.is_levels(pl.col("code")))).fill_null(False),
            position=pl.col("position"), code=code, expected=pl.lit("an action code"),
            message=pl.when(codes.is_levels(pl.col("code")))
            .then(text(code, " at position ", position, " is the primary position, but V55 levels of spine is only"
                       " ever assigned in second place, after the spinal operation"))
            .otherwise(text(code, " at position ", position, " is the primary position, but it is a Chapter ",
                            codes.chapter(pl.col("code")), " code, which is only ever secondary; the primary"
                            " procedure must be an action code")),
        ),
        Rule(
            "no-operation-with-codes", ERROR,
            ~(first & (pl.col("code_kind") == codes.NO_OPERATION) & (pl.col("real_after") > 0)),
            position=pl.col("position"), code=pl.lit("-"), expected=pl.lit("no codes after '-'"),
            message=text("position ", position, " says no operation (-) but ", later, " later position(s) hold codes"),
        ),
        Rule(
            "not-known-with-codes", ERROR,
            ~(first & (pl.col("code_kind") == codes.NOT_KNOWN) & (pl.col("real_after") > 0)),
            position=pl.col("position"), code=pl.lit("&"), expected=pl.lit("the primary procedure's code"),
            message=text("position ", position, " says the primary procedure is not known (&) but ", later,
                         " later position(s) hold codes; code the primary procedure first"),
        ),
        Rule(
            "no-operation-between-codes", ERROR,
            ~(~first & (pl.col("code_kind") == codes.NO_OPERATION)
              & (pl.col("real_before") > 0) & (pl.col("real_after") > 0)),
            position=pl.col("position"), code=pl.lit("-"), expected=pl.lit("a procedure code, or nothing"),
            message=text("position ", position, " holds '-' (no operation) between procedure codes; remove it"
                         " or code the procedure"),
        ),
        Rule(
            "invalid-code", ERROR, pl.col("code_kind") != codes.INVALID,
            position=pl.col("position"), code=pl.col("code_raw"), expected=pl.lit("an OPCS-4 code"),
            message=text("position ", position, " holds '", pl.col("code_raw").str.strip_chars(),
                         "', which is not an OPCS-4 code: ", pl.col("invalid_reason")),
        ),
    ]
    if as_of is not None:
        rules += _future(as_of)
    if known_codes is not None:
        rules.append(Rule(
            # A warning: a code retired or added between versions may be right for its episode.
            "code-not-in-opcs", WARNING,
            ~(pl.col("code").is_not_null() & ~pl.col("code").is_in(known_codes.implode())),
            position=pl.col("position"), code=code, expected=pl.lit("a code in the OPCS-4 code list"),
            message=text(code, " at position ", position,
                         " is not in the OPCS-4 code list given; check it against the version in force on the"
                         " episode date"),
        ))
    return rules


def spinal_sequence(procedures: pl.DataFrame) -> pl.DataFrame:
    """The valid codes of episodes with a spinal operation or a V55 code, in order, with the next
    and previous code and `operation_position`: the position of the action each code describes."""
    valid = sequence.in_episode_order(procedures.filter(pl.col("code_kind") == codes.PROCEDURE))
    spinal = codes.is_spinal_operation(pl.col("code")) | codes.is_levels(pl.col("code"))
    return (
        sequence.episodes_with(valid, spinal)
        .lazy().with_columns(
            next_code=sequence.shifted(pl.col("code"), -1),
            next_position=sequence.shifted(pl.col("position"), -1),
            previous_code=sequence.shifted(pl.col("code"), 1),
            previous_position=sequence.shifted(pl.col("position"), 1),
            operation_position=sequence.forward_filled(
                pl.when(codes.is_action(pl.col("code"))).then(pl.col("position"))),
        )
        .collect()
    )


def spinal_rules() -> list[Rule]:
    next_shown = shown(pl.col("next_code"))
    after = (
        pl.when(pl.col("next_code").is_null())
        .then(pl.lit("nothing follows it"))
        .otherwise(text("position ", pl.col("next_position").cast(pl.String), " holds ", next_shown))
    )
    return [
        Rule(
            "levels-not-second", ERROR,
            ~codes.is_spinal_operation(pl.col("code")) | codes.is_levels(pl.col("next_code")).fill_null(False),
            position=pl.coalesce("next_position", "position"),
            code=shown(pl.coalesce("next_code", "code")),
            expected=pl.lit("V55.-"),
            message=text(INDEX, " must be followed directly by a V55 levels-of-spine code; ", after),
        ),
        Rule(
            "levels-repeated", ERROR,
            ~(codes.is_levels(pl.col("code")) & codes.is_levels(pl.col("previous_code"))).fill_null(False),
            position=pl.col("position"), code=shown(pl.col("code")), expected=pl.lit("one V55 code"),
            message=text(INDEX, " directly follows ", shown(pl.col("previous_code")), " at position ",
                         pl.col("previous_position").cast(pl.String),
                         ": one V55 code gives the levels of one spinal operation; keep the one the notes support"),
        ),
    ]
