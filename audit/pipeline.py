"""The stages, in order. The CLI calls `run_audit`; tests call it too."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import polars as pl

from audit import canonical, judge, load, match, rules
from audit.catalogue import Catalogue
from audit.layouts import Mapping


@dataclass(frozen=True)
class AuditOptions:
    inputs: list[Path]
    layout: str | None = None
    mapping: Mapping | None = None
    encoding: str = "auto"
    as_of: date = field(default_factory=date.today)


@dataclass(frozen=True)
class AuditResult:
    options: AuditOptions
    catalogue: Catalogue
    data: canonical.Canonical
    occurrences: pl.DataFrame
    findings: pl.DataFrame
    episodes: pl.DataFrame  # one row per matched (episode, guidance) pair, with its status
    started: datetime


def run_audit(options: AuditOptions, catalogue: Catalogue, started: datetime) -> AuditResult:
    exports = load.read_exports(
        options.inputs, layout=options.layout, mapping=options.mapping, encoding=options.encoding
    )
    data = canonical.build(exports)
    occurrences = match.find_occurrences(data.procedures, catalogue, options.as_of)
    findings = rules.audit_findings(data.procedures, occurrences, catalogue, options.as_of)
    episodes = judge.judge(occurrences, findings, catalogue)
    return AuditResult(options, catalogue, data, occurrences, findings, episodes, started)
