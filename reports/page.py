"""The typed context of report.html: one frozen dataclass per part of the page.

Every value is display text, already counted and formatted by `reports.context`; templates only
loop over these, test them and print them (autoescaped). The one exception is a worklist's
`items`: its rows and cards, built as escaped HTML by `reports.cards`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from markupsafe import Markup

FILTERED = ("provider", "specialty", "consultant", "coder")  # the columns the page's filters offer values of


@dataclass(frozen=True)
class Option:
    value: str
    label: str


@dataclass(frozen=True)
class Labelled:
    value: str
    label: str
    note: str = ""  # e.g. a rule's usual severity


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
    coverage: str  # "2 of 5 catalogue entries audited (with code sets); 3 recorded without one are not checked"
    chapters: str  # OPCS-4 chapters the audited code sets cover: "V (…), W (…)"
    inputs: tuple[InputFile, ...]
    guidance_used: tuple[GuidanceRef, ...]


@dataclass(frozen=True)
class BigNumber:
    label: str
    value: str
    note: str
    tone: str  # css modifier: neutral | ok | bad | superseded | warn
    length: str  # "", "long" or "longer": smaller type so 1,000,000 fits its box
    drill: str = ""  # "#filter=…" address of the rows behind the number, or ""


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
    uncertain: tuple[str, ...]  # what the catalogue marks as unverified or inferred for this guidance
    date_uncertain: str = "0"  # dated inside the window of a guidance date known to a month or year


@dataclass(frozen=True)
class RuleRow:
    id: str
    title: str
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
class Breakdown:
    column: str
    title: str
    rows: Markup  # every row the table holds (reports.tables.breakdown_rows), those past the cap hidden
    shown: str  # rows shown before searching
    total: str
    capped: bool
    rest: bool  # rows past the cap are held, found only by searching


@dataclass(frozen=True)
class CapRow:
    rule_id: str  # or, for the changes table, the kind of change as shown ("still open")
    total: str
    shown: str
    capped: bool


@dataclass(frozen=True)
class Rows:
    """Rows a list or table repeats, as escaped HTML built by polars (reports.cards, reports.tables),
    in order; `values`: each FILTERED column's value in each row, for the filters' choices."""

    html: Markup = Markup("")
    count: int = 0
    values: dict[str, tuple[str, ...]] = field(default_factory=lambda: {c: () for c in FILTERED})

    @classmethod
    def of(cls, frame, **more) -> Rows:
        """From a frame of an `html` column and the FILTERED columns, a row each."""
        return cls(Markup("".join(frame["html"])), frame.height,
                   {c: tuple(frame[c].to_list()) for c in FILTERED}, **more)


@dataclass(frozen=True)
class ListedEpisodes(Rows):
    """A worklist's episodes: one `<tbody>` each, its row and the card that opens from it."""

    show_local_id: bool = False  # any listed episode has one: the list shows the column
    show_coder: bool = False


@dataclass(frozen=True)
class FindingsTable:
    rows: Rows  # the shown findings
    shown: str
    total: str
    cap: str
    capped: bool
    per_rule: tuple[CapRow, ...]
    show_first_seen: bool  # only with a run history: without one every finding is "first seen" today


@dataclass(frozen=True)
class Worksheet:
    kind: str  # worklist | check
    rows: ListedEpisodes
    total: str
    shown: str
    cap: str
    capped: bool
    per_rule: tuple[CapRow, ...]
    total_count: int


@dataclass(frozen=True)
class SupersededGroup:
    guidance_id: str
    title: str
    url: str
    lineage: str
    replacement_url: str
    replacement_title: str
    total: str  # episodes with this guidance's status "superseded"


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
    changes: tuple[Option, ...]  # empty without a run history: no "Change" filter then
    providers: tuple[Option, ...]
    specialties: tuple[Option, ...]
    consultants: tuple[Option, ...]
    coders: tuple[Option, ...]  # empty when no listed episode names a coder


@dataclass(frozen=True)
class ChangeRow:
    episode_id: str
    episode_href: str
    guidance_id: str
    rule_id: str
    position: str
    change: str  # new | still-open | resolved
    change_label: str
    first_seen: str
    # filter tokens: severities of the finding now (none when resolved), status of the pair now
    severity_tokens: str
    status: str


@dataclass(frozen=True)
class TrendPoint:
    x: str  # SVG user units, formatted in Python
    y: str
    label: str  # "IPG319, 21 Nov 2026: 75.0% compliant (3 of 4)"
    marker: str  # path data of the marker drawn at (x, y)


@dataclass(frozen=True)
class TrendCell:
    percent: str  # "75.0%", or "–" when the guidance had no episodes in that run
    counts: str  # "3 of 4", or ""


@dataclass(frozen=True)
class TrendSeries:
    guidance_id: str
    title: str
    url: str
    colour: str
    dash: str  # stroke-dasharray, "" for a solid line
    line_name: str  # solid | dashed | dotted | …, said in words in the legend
    marker_name: str  # circle | square | triangle | …, said in words in the legend
    points: str  # the polyline's points attribute
    markers: tuple[TrendPoint, ...]
    swatch_marker: str  # marker path for the legend swatch
    latest: str  # "75.0% in this run" / "not matched in this run"
    cells: tuple[TrendCell, ...]  # one per run, oldest first


@dataclass(frozen=True)
class AxisTick:
    position: str  # x or y in SVG user units
    label: str
    sublabel: str  # second line under an x label (time, or "this run"); "" when none


@dataclass(frozen=True)
class TrendRun:
    label: str  # for the data table's header: "21 Nov 2026 02:00"
    run_id: str  # "" for this run
    current: bool


@dataclass(frozen=True)
class TrendChart:
    width: str
    height: str
    view_box: str
    plot_left: str
    plot_right: str
    plot_top: str
    plot_bottom: str
    title: str
    desc: str
    y_ticks: tuple[AxisTick, ...]
    x_ticks: tuple[AxisTick, ...]
    x_label_y: str  # baseline of the run labels under the axis
    x_sublabel_y: str
    y_tick_label_x: str  # right edge of the percentage labels
    y_label_x: str
    y_label_y: str
    y_label_transform: str  # rotates the axis title to run up the left edge
    series: tuple[TrendSeries, ...]
    runs: tuple[TrendRun, ...]
    run_count: str
    note: str  # how the percentage is defined, when it differs from the compliance table's


@dataclass(frozen=True)
class Changes:
    """The "what changed since the last run" section."""

    used: bool  # False: the run kept no history
    first_run: bool  # no previous run in the history: every finding is new
    previous_run: str
    previous_started: str  # long date and time, or ""
    numbers: tuple[BigNumber, ...]
    rows: tuple[ChangeRow, ...]
    shown: str
    total: str
    cap: str
    capped: bool
    per_change: tuple[CapRow, ...]
    quick_filters: tuple[Option, ...]  # "show only" links, when more than one kind of change is listed
    file_missing: bool  # summary.json has changes but changes.csv is not in the folder
    trend: TrendChart | None
    trend_note: str  # why there is no chart, when there is none


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
    changes: Changes
    worksheet: Worksheet
    check: Worksheet  # episodes only coded to superseded guidance
    superseded: tuple[SupersededGroup, ...]
    findings: FindingsTable
    data_quality: DataQuality
    filters: Filters
    files: dict[str, str]  # names of the output files the page points to
    size_note: str  # why the caps are lower than asked, when the page would be too big; else ""
    min_n: str  # judged episodes a breakdown row needs before it shows a percentage
    # (guidance id, episodes) carrying an index code without its identifying codes (issue 10)
    possible_not_audited: tuple[tuple[str, str], ...] = ()
    volume_alerts: tuple[str, ...] = ()  # the export shrank or was empty (summary.json "volume")
