"""reports.cards: the worklist's rows and cards built as HTML by polars expressions."""

from __future__ import annotations

from html.parser import HTMLParser

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import escape

from audit.catalogue import load_catalogue
from reports.bundle import Bundle
from reports.cards import listed
from reports.markup import escaped, grouped_digits
from reports.text import number


@given(st.lists(st.text(), max_size=20))
def test_escaped_is_what_jinja2_autoescape_writes(values):
    got = pl.DataFrame({"v": values}, schema={"v": pl.String}).select(escaped(pl.col("v")))["v"].to_list()
    assert got == [str(escape(v)) for v in values]


@pytest.mark.parametrize("n", [0, 7, 999, 1000, 12_345, 999_999, 1_000_000, 123_456_789])
def test_counts_are_written_as_the_rest_of_the_page_writes_them(n):
    assert pl.select(grouped_digits(pl.lit(n))).item() == number(n)


def _frame(header: str, *rows: str) -> pl.DataFrame:
    """An inline table: `|`-separated columns, every value text (as the bundle holds them)."""
    names = [c.strip() for c in header.split("|")]
    values = [[c.strip() for c in row.split("|")] for row in rows]
    return pl.DataFrame(values, schema={n: pl.String for n in names}, orient="row")


FINDING_COLUMNS = "row | episode_id | guidance_id | code_set | rule_id | severity | position | code | expected | message"
EPISODE_FACTS = {"provider": "RX1", "specialty": "110", "consultant": "C1", "source_file": "e.csv",
                 "episode_date": "2024-03-01", "first_seen": "2026-12-01", "change": "", "local_id": "", "coder": ""}


def _bundle(findings: pl.DataFrame, sequences: pl.DataFrame, pairs: pl.DataFrame | None = None) -> Bundle:
    findings = findings.with_columns(pl.col("row").cast(pl.UInt32), *(pl.lit(v).alias(k) for k, v in EPISODE_FACTS.items()))
    if pairs is None:
        pairs = pl.DataFrame(schema={c: pl.String for c in [
            "episode_id", "guidance_id", "code_set", "status", "episode_date", "date_source", "errors", "warnings",
            "actual_sequence", "expected_sequence", *EPISODE_FACTS]})
    return Bundle(200, 200, {"carried": []}, {"card_findings": findings, "card_episodes": pairs,
                                              "card_sequences": sequences})


class _Text(HTMLParser):
    """The text of the elements with a given class, in document order."""

    def __init__(self, wanted: str):
        super().__init__()
        self.wanted, self.depth, self.found = wanted, 0, []

    def handle_starttag(self, tag, attrs):
        if self.depth:
            self.depth += 1
        elif self.wanted in (dict(attrs).get("class") or "").split():
            self.depth = 1
            self.found.append("")

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.found[-1] += data


def test_a_card_flags_each_rule_once_per_position_and_lists_every_finding():
    findings = _frame(
        FINDING_COLUMNS,
        "0 | 7 |  | | levels-not-second | error   | 2 | Z99.3 | V55.- | <V29.4> then Z99.3",
        "1 | 7 |  | | levels-not-second | error   | 2 | Z99.3 | V55.- | the same rule again",
        "2 | 7 |  | | approach-missing  | warning | 2 | Z99.3 |       | a warning there",
        "3 | 7 |  | | invalid-code      | error   |   |       |       | not at a position",
    )
    sequences = _frame("episode_id | position | code | code_kind", "7 | 1 | V29.4 | procedure",
                       "7 | 2 | Z99.3 | procedure", "7 | 3 | XX | invalid")
    cards = listed({"worklist": ["7"]}, {"7": "ep-1"}, _bundle(findings, sequences), load_catalogue([]), False)["worklist"]
    html = str(cards.html)
    assert cards.count == 1 and html.count("<tbody class=\"wl-item") == 1
    flags = _Text("flag")
    flags.feed(html)
    # In the findings' order (position, then rule); the position's worst severity colours the row.
    assert flags.found == ["approach-missing (warning)", "levels-not-second"]
    assert 'class="off off-error" aria-label="Position 2, Z99.3, flagged: approach-missing (warning), ' \
           'levels-not-second"' in html
    assert "<td>not an OPCS-4 code</td>" in html  # position 3's kind, not a title
    items = _Text("card-findings")
    items.feed(html)
    assert items.found[0].count("—") == 4  # every finding is listed, repeated ones too
    assert "&lt;V29.4&gt; then Z99.3" in html and "<V29.4>" not in html
    assert 'data-rule="approach-missing invalid-code levels-not-second"' in html
    assert 'data-severity="error warning"' in html and 'data-errors="3"' in html
    rules = _Text("rule-ref")
    rules.feed(html)
    assert [r.split()[-1] for r in rules.found] == ["approach-missing", "levels-not-second", "invalid-code"]
    assert '<td class="n">2</td>' in html  # positions: each once
    assert "general rules" in html and "No NICE guidance matched this episode" in html


def test_an_empty_list_is_no_html():
    empty = _bundle(_frame(FINDING_COLUMNS), _frame("episode_id | position | code | code_kind"))
    cards = listed({"check": []}, {}, empty, load_catalogue([]), False)["check"]
    assert (str(cards.html), cards.count, cards.show_coder) == ("", 0, False)
