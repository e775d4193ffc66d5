"""What an audit takes and gives: the types shared by the stages after it (outputs, history,
the pipeline), kept below them so none of those modules imports another to get them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import polars as pl

from audit import canonical
from audit.catalogue import Catalogue
from audit.layouts import Mapping
from audit.match import empty_possible


@dataclass(frozen=True)
class AuditOptions:
    inputs: list[Path]
    layout: str | None = None
    mapping: Mapping | None = None
    encoding: str = "auto"
    as_of: date = field(default_factory=date.today)
    code_list: pl.DataFrame | None = None  # the user's OPCS-4 code list (audit.opcs), if given


@dataclass(frozen=True)
class AuditResult:
    options: AuditOptions
    catalogue: Catalogue
    data: canonical.Canonical
    occurrences: pl.DataFrame
    findings: pl.DataFrame
    episodes: pl.DataFrame  # one row per matched (episode, guidance) pair, with its status
    started: datetime
    # Index codes without the evidence that identifies the procedure: per (episode, guidance),
    # counted as "possible, not audited", never findings (audit.match; issue 10).
    possible: pl.DataFrame = field(default_factory=empty_possible)
