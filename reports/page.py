"""The typed context of report.html: one frozen dataclass per part of the page.

Every value is display text, already counted and formatted by `reports.context`; templates only
loop over these, test them and print them (autoescaped).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Option:
    value: str
    label: str


@dataclass(frozen=True)
class InputFile:
    name: str
    path: str
    layout: str
    rows_read: str
    rows_rejected: str
    episodes: str
    invalid_dates: str
    sha256: str
    sha256_prefix: str


@dataclass(frozen=True)
class GuidanceRef:
    id: str
    title: str
    url: str  # "" when the catalogue does not know the guidance


@dataclass(frozen=True)
class RunInfo:
    run_started: str
    as_of: str
    generated: str
    tool_version: str
    catalogue_version: str
    catalogue_note: str  # "" unless the catalogue given differs from the run's
    catalogue_entries: str
    inputs: tuple[InputFile, ...]
    guidance_used: tuple[GuidanceRef, ...]


@dataclass(frozen=True)
class BigNumber:
    label: str
    value: str
    note: str
    tone: str  # css modifier: neutral | ok | bad | superseded | warn
    length: str  # "", "long" or "longer": smaller type so 1,000,000 fits its box


@dataclass(frozen=True)
class GuidanceRow:
    id: str
    title: str
    url: str
    code_sets: str
    episodes: str
    compliant: str
    non_compliant: str
    superseded: str
    predates: str
    percent_compliant: str
    lineage: str  # "IPG319 → replaced by IPG544, January 2016", or "" when current
    replaces: str  # "replaces IPG81", or ""


@dataclass(frozen=True)
class RuleRow:
    id: str
    standard: str
    usual_severity: str
    findings: str
    errors: str
    warnings: str
    superseded: str
    episodes: str
    has_findings: bool


@dataclass(frozen=True)
class SeverityRow:
    severity: str
    label: str
    findings: str
    episodes: str


@dataclass(frozen=True)
class BreakdownRow:
    value: str
    matched: str
    compliant: str
    non_compliant: str
    superseded: str
    percent_compliant: str
    findings: str
    errors: str
    warnings: str


@dataclass(frozen=True)
class Breakdown:
    column: str
    title: str
    rows: tuple[BreakdownRow, ...]
    shown: str
    total: str
    capped: bool


@dataclass(frozen=True)
class FindingRow:
    episode_id: str
    episode_href: str  # "#ep-N" when the episode has a worksheet card, else ""
    guidance_id: str
    code_set: str
    rule_id: str
    severity: str
    severity_label: str
    status: str  # status of the (episode, guidance) pair; "" for generic rules
    position: str
    code: str
    expected: str
    message: str
    provider: str
    specialty: str
    consultant: str
    source_file: str


@dataclass(frozen=True)
class CapRow:
    rule_id: str
    total: str
    shown: str
    capped: bool


@dataclass(frozen=True)
class FindingsTable:
    rows: tuple[FindingRow, ...]
    shown: str
    total: str
    cap: str
    capped: bool
    per_rule: tuple[CapRow, ...]


@dataclass(frozen=True)
class SequenceCode:
    position: str
    code: str
    kind: str  # procedure | invalid | no-operation | not-known
    title: str
    flagged: bool
    flags: tuple[str, ...]  # "levels-not-second", "approach-unspecified (warning)", … at this position
    flags_text: str  # the same, comma-separated, for the row's aria-label
    level: str  # worst severity flagged here (error | superseded | warning), "" when not flagged


@dataclass(frozen=True)
class AlignedLine:
    recorded: str
    expected: str
    state: str
    label: str
    flagged: bool  # anything but "as expected"


@dataclass(frozen=True)
class PairView:
    guidance_id: str
    code_set: str
    status: str
    status_label: str
    episode_date: str
    date_source: str
    errors: str
    warnings: str
    lines: tuple[AlignedLine, ...]


@dataclass(frozen=True)
class WorksheetCard:
    anchor: str
    episode_id: str
    provider: str
    specialty: str
    consultant: str
    source_file: str
    date: str  # the first pair's episode date, for sorting
    errors: str
    worst: str  # error | superseded | none: the card's accent
    sequence: tuple[SequenceCode, ...]
    pairs: tuple[PairView, ...]
    findings: tuple[FindingRow, ...]
    # space-separated tokens for the client-side filter (data-* attributes)
    guidance_tokens: str
    rule_tokens: str
    severity_tokens: str
    status_tokens: str


@dataclass(frozen=True)
class Worksheet:
    cards: tuple[WorksheetCard, ...]
    total: str
    shown: str
    cap: str
    capped: bool
    per_rule: tuple[CapRow, ...]
    total_count: int


@dataclass(frozen=True)
class SupersededRow:
    episode_id: str
    episode_href: str
    episode_date: str
    provider: str
    specialty: str
    consultant: str
    errors: str
    warnings: str


@dataclass(frozen=True)
class SupersededGroup:
    guidance_id: str
    title: str
    url: str
    lineage: str
    replacement_url: str
    replacement_title: str
    rows: tuple[SupersededRow, ...]
    total: str
    shown: str
    capped: bool


@dataclass(frozen=True)
class LabelCount:
    label: str
    count: str
    note: str


@dataclass(frozen=True)
class InvalidValue:
    value: str
    occurrences: str
    episodes: str
    example: str


@dataclass(frozen=True)
class NoOperationRow:
    episode_id: str
    episode_href: str
    codes_after: str
    provider: str
    source_file: str


@dataclass(frozen=True)
class RejectedRow:
    source_file: str
    source_row: str
    episode_id: str
    reason: str


@dataclass(frozen=True)
class DataQuality:
    counters: tuple[LabelCount, ...]
    rejected_by_reason: tuple[LabelCount, ...]
    rejected_total: str
    rejected_rows: tuple[RejectedRow, ...]
    rejected_shown: str
    rejected_capped: bool
    invalid_values: tuple[InvalidValue, ...]
    invalid_shown: str
    invalid_total: str
    invalid_capped: bool
    no_operation: tuple[NoOperationRow, ...]
    no_operation_total: str
    no_operation_capped: bool


@dataclass(frozen=True)
class Filters:
    guidance: tuple[Option, ...]
    rules: tuple[Option, ...]
    severities: tuple[Option, ...]
    statuses: tuple[Option, ...]


@dataclass(frozen=True)
class ReportPage:
    """Everything report.html shows. Templates read only this."""

    title: str
    run: RunInfo
    sentence: str
    numbers: tuple[BigNumber, ...]
    guidance: tuple[GuidanceRow, ...]
    rules: tuple[RuleRow, ...]
    severities: tuple[SeverityRow, ...]
    breakdowns: tuple[Breakdown, ...]
    worksheet: Worksheet
    superseded: tuple[SupersededGroup, ...]
    findings: FindingsTable
    data_quality: DataQuality
    filters: Filters
    files: dict[str, str]  # names of the output files the page points to
    size_note: str  # why the caps are lower than asked, when the page would be too big; else ""
