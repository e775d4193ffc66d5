"""HTML built by polars string expressions, for the parts of the page repeated per episode or per
finding (reports.cards, reports.tables): a jinja2 loop over a thousand of them, each value
autoescaped, cost a third of a second; these expressions build them column by column.

Every value from the data passes through `escaped`, which replaces the five characters jinja2's
autoescape (markupsafe) replaces, the same way; literal markup is written as Python strings.
"""

from __future__ import annotations

import polars as pl

# markupsafe.escape's replacements, so a value reads the same as jinja2 would have written it.
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;"}


def escaped(value: pl.Expr) -> pl.Expr:
    return value.str.replace_many(list(_ESCAPES), list(_ESCAPES.values()))


def html(*parts: pl.Expr | str) -> pl.Expr:
    """Literal markup (str) and expressions (already escaped), concatenated."""
    return pl.concat_str([pl.lit(p) if isinstance(p, str) else p for p in parts])


def when(condition: pl.Expr, *parts: pl.Expr | str) -> pl.Expr:
    return pl.when(condition).then(html(*parts)).otherwise(pl.lit(""))


def badge(kind: str, value: pl.Expr, icons: dict[str, str], labels: dict[str, str]) -> pl.Expr:
    """As _macros.html writes a badge: `kind` st (status), sev (severity) or ch (change)."""
    return html(f'<span class="badge {kind}-', escaped(value), '"><i aria-hidden="true">',
                value.replace_strict(icons, default="•", return_dtype=pl.String), "</i>",
                escaped(value.replace_strict(labels, default=value, return_dtype=pl.String)), "</span>")


def grouped_digits(count: pl.Expr) -> pl.Expr:
    """A count as reports.text.number writes it: 1,234."""
    return count.cast(pl.String).str.reverse().str.extract_all(r"[0-9]{1,3}").list.join(",").str.reverse()


def looked_up(frame: pl.DataFrame, keys: list[str], name: str, look_up) -> pl.LazyFrame:
    """The distinct keys of `frame` with column `name`, look_up(*key) of each, to join on: titles,
    alignments and the like are Python, but a run has a few hundred distinct ones however many rows."""
    distinct = frame.select(keys).unique()
    values = [look_up(*key) for key in distinct.iter_rows()]
    return distinct.with_columns(pl.Series(name, values, dtype=pl.String)).lazy()
