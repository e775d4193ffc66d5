"""Build the report's typed context (`reports.page`) from a run's output frames.

Every number the page shows is counted here, from the findings / episodes / sequences / rejected
frames or summary.json, and handed to the templates as display text: the templates only loop,
test and print. Every list that can grow with the data is capped, with its true total beside it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePath

import polars as pl
from markupsafe import Markup

from audit.catalogue import Catalogue
from audit.outputs import (
    CHANGES_CSV,
    EPISODES_CSV,
    FINDINGS_CSV,
    REJECTED_CSV,
    TREND_CSV,
)
from audit.rules import ERROR, RULES, SEVERITIES, SUPERSEDED, WARNING
from reports.changes import (
    change_clause,
    change_counts,
    changes_section,
    history_used,
)
from reports.common import (
    BREAKDOWNS,
    CHANGE_LABELS,
    CHANGES,
    SEVERITY_LABELS,
    STATUS_LABELS,
    MIN_N,
    big_number,
    cap_rows,
    capped_per,
    catalogue_ref,
    lineage_text,
    ordered_guidance_ids,
    rule_title,
)
from reports.bundle import Bundle
from reports.frames import Outputs
from reports.cards import specialty_name
from reports.tables import breakdown_rows, finding_rows
from reports.worklist import build_lists
from reports.page import (
    BigNumber,
    Breakdown,
    DataQuality,
    Filters,
    FindingsTable,
    GuidanceRow,
    InputFile,
    InvalidValue,
    LabelCount,
    NoOperationRow,
    Option,
    RejectedRow,
    ReportPage,
    RuleRow,
    RunInfo,
    SeverityRow,
    SupersededGroup,
    Worksheet,
)
from reports.text import (
    long_date,
    long_datetime,
    number,
    parse_date,
    parse_datetime,
    percent,
    plural,
)
from schemas.outputs import STATUSES

# --- Building ----------------------------------------------------------------------------------


def _run_info(outputs: Outputs, catalogue: Catalogue, generated: datetime | None,
              guidance_ids: list[str]) -> RunInfo:
    s = outputs.summary
    started = parse_datetime(s.get("run_started", ""))
    as_of = parse_date(s.get("as_of", ""))
    when = generated or started
    run_version = str(s.get("catalogue_version", ""))
    note = ""
    if run_version and run_version != catalogue.version:
        note = (f"This page was rendered with catalogue {catalogue.version}; the run used "
                f"{run_version}. Titles and links come from {catalogue.version}.")
    inputs = tuple(
        InputFile(
            name=PurePath(str(f.get("path", ""))).name,
            path=str(f.get("path", "")),
            layout=str(f.get("layout", "")),
            rows_read=number(int(f.get("rows_read", 0))),
            rows_rejected=number(int(f.get("rows_rejected", 0))),
            episodes=number(int(f.get("episodes_audited", 0))),
            invalid_dates=number(int(f.get("invalid_dates", 0))),
            sha256=str(f.get("sha256", "")),
            sha256_prefix=str(f.get("sha256", ""))[:12],
        )
        for f in s.get("inputs", [])
    )
    auditable = catalogue.auditable()
    known = len(catalogue.guidance)
    without = known - len(auditable)
    coverage = (f"{number(len(auditable))} of {plural(known, 'catalogue entry', 'catalogue entries')} audited "
                f"(with code sets)")
    if without:
        coverage += (f"; {number(without)} recorded without a code set {'is' if without == 1 else 'are'} "
                     "not checked")
    chapters = sorted({p.prefix[:1] for g in auditable for cs in g.code_sets for p in cs.index.patterns})
    return RunInfo(
        run_started=long_datetime(started) if started else str(s.get("run_started", "not recorded")),
        as_of=long_date(as_of) if as_of else str(s.get("as_of", "not recorded")),
        generated=long_datetime(when) if when else "not recorded",
        tool_version=str(s.get("tool_version", "")),
        catalogue_version=run_version or catalogue.version,
        catalogue_note=note,
        catalogue_entries=f"{plural(len(catalogue.guidance), 'entry', 'entries')}, "
                          f"{number(len(auditable))} with code sets audited",
        coverage=coverage,
        chapters=", ".join(chapters) or "none",
        inputs=inputs,
        guidance_used=tuple(catalogue_ref(catalogue, gid) for gid in guidance_ids),
    )


def _judged(row: dict) -> int:
    """Pairs that can be compliant: episodes dated before the guidance was published, or inside
    the window of a guidance date known only to a month or a year, cannot."""
    return row["matched"] - row["predates"] - row["date_uncertain"]


def _guidance_rows(bundle: Bundle, catalogue: Catalogue) -> tuple[GuidanceRow, ...]:
    counts = {r["guidance_id"]: r for r in bundle["guidance"].iter_rows(named=True)}
    rows = []
    for gid in ordered_guidance_ids(catalogue, counts):
        c, g = counts[gid], catalogue.guidance.get(gid)
        ref = catalogue_ref(catalogue, gid)
        rows.append(GuidanceRow(
            id=gid, title=ref.title, url=ref.url, code_sets=c["code_sets"] or "",
            episodes=number(c["matched"]), compliant=number(c["compliant"]),
            non_compliant=number(c["non_compliant"]), superseded=number(c["superseded"]),
            predates=number(c["predates"]), percent_compliant=percent(c["compliant"], _judged(c)),
            lineage=lineage_text(g),
            replaces=f"replaces {', '.join(g.replaces)}" if g is not None and g.replaces else "",
            uncertain=g.uncertain if g is not None else (),
            date_uncertain=number(c["date_uncertain"]),
        ))
    return tuple(rows)


def _rule_rows(bundle: Bundle) -> tuple[RuleRow, ...]:
    counts = {r["rule_id"]: r for r in bundle["rules"].iter_rows(named=True)}
    rows = []
    for rule_id in list(RULES) + sorted(set(counts) - set(RULES)):
        c = counts.get(rule_id, {"findings": 0, "errors": 0, "warnings": 0, "superseded": 0, "episodes": 0})
        info = RULES.get(rule_id)
        rows.append(RuleRow(
            id=rule_id,
            title=rule_title(rule_id),
            standard=info.standard if info else "Not a rule of this version of nice-audit.",
            usual_severity=info.severity if info else "",
            findings=number(c["findings"]), errors=number(c["errors"]), warnings=number(c["warnings"]),
            superseded=number(c["superseded"]), episodes=number(c["episodes"]),
            has_findings=c["findings"] > 0,
        ))
    return tuple(rows)


def _severity_rows(bundle: Bundle) -> tuple[SeverityRow, ...]:
    counts = {r["severity"]: r for r in bundle["severities"].iter_rows(named=True)}
    return tuple(
        SeverityRow(s, SEVERITY_LABELS.get(s, s), number(counts.get(s, {}).get("findings", 0)),
                    number(counts.get(s, {}).get("episodes", 0)))
        for s in list(SEVERITIES) + sorted(set(counts) - set(SEVERITIES))
    )


def area_breakdowns(bundle: Bundle) -> tuple[Breakdown, ...]:
    """The by-provider / specialty / consultant / coder tables: the same whatever the caps, so a
    render that builds its page more than once (reports.render) builds these once."""
    totals = bundle.facts["breakdown_totals"]
    rows = breakdown_rows(bundle["breakdowns"])
    result = []
    for column, title in BREAKDOWNS:
        if column not in totals:
            continue
        these = rows.filter(pl.col("column") == column)  # most errors first (reports.bundle)
        shown, total = int((~these["rest"]).sum()), int(totals[column])
        result.append(Breakdown(column, title, Markup("".join(these["html"])), number(shown), number(total),
                                total > shown, bool(these["rest"].any())))
    return tuple(result)


# --- Superseded and data quality ---------------------------------------------------------------


def _superseded(bundle: Bundle, catalogue: Catalogue) -> tuple[SupersededGroup, ...]:
    """One heading per replaced guidance: its lineage and replacement, over the superseded list."""
    counts = {r["guidance_id"]: r["superseded_episodes"] for r in bundle["guidance"].iter_rows(named=True)
              if r["superseded_episodes"]}
    groups = []
    for gid in ordered_guidance_ids(catalogue, set(counts)):
        g = catalogue.guidance.get(gid)
        ref = catalogue_ref(catalogue, gid)
        replacement = catalogue_ref(catalogue, g.replaced_by) if g is not None and g.replaced_by else None
        groups.append(SupersededGroup(
            guidance_id=gid, title=ref.title, url=ref.url,
            lineage=lineage_text(g) or f"{gid} → replacement not recorded in this catalogue",
            replacement_url=replacement.url if replacement else "",
            replacement_title=replacement.title if replacement else "",
            total=number(counts[gid]),
        ))
    return tuple(groups)


def _data_quality(outputs: Outputs, anchors: dict[str, str]) -> DataQuality:
    bundle, dq = outputs.bundle, outputs.summary.get("data_quality", {})
    counters = tuple(
        LabelCount(label, number(int(dq.get(key, 0))), note)
        for key, label, note in (
            ("invalid_codes", "Invalid procedure values", "not a letter and three digits; listed below"),
            ("not_known_codes", "'&' not known", "HES 'not known' marker; not a procedure"),
            ("no_operation_markers", "'-' no operation", "HES 'no operation performed' marker"),
            ("local_fifth_characters", "Local fifth characters removed", "a fifth character added locally; "
                                                                         "audited on the first four"),
            ("invalid_dates", "Invalid dates", "date values that could not be read as dates"),
        )
    )
    by_reason = tuple(LabelCount(r, number(n), "") for r, n in bundle["rejected_reasons"].iter_rows())
    rejected_rows = tuple(
        RejectedRow(r["source_file"], r["source_row"], r["episode_id"], r["reason"])
        for r in bundle["rejected_rows"].iter_rows(named=True)
    )
    invalid_rows = tuple(
        InvalidValue(r["code"], number(r["occurrences"]), number(r["episodes"]), r["example"])
        for r in bundle["invalid_values"].iter_rows(named=True)
    )
    no_op_rows = tuple(
        NoOperationRow(r["episode_id"], anchors.get(r["episode_id"], ""), r["codes_after"], r["provider"],
                       r["source_file"])
        for r in bundle["no_operation"].iter_rows(named=True)
    )
    facts = bundle.facts
    return DataQuality(
        counters=counters, rejected_by_reason=by_reason, rejected_total=number(facts["rejected_total"]),
        rejected_rows=rejected_rows, rejected_shown=number(len(rejected_rows)),
        rejected_capped=facts["rejected_total"] > len(rejected_rows),
        invalid_values=invalid_rows, invalid_shown=number(len(invalid_rows)),
        invalid_total=number(facts["invalid_total"]), invalid_capped=facts["invalid_total"] > len(invalid_rows),
        no_operation=no_op_rows, no_operation_total=number(facts["no_operation_total"]),
        no_operation_capped=facts["no_operation_total"] > len(no_op_rows),
    )


# --- Summary -----------------------------------------------------------------------------------


def _headline(outputs: Outputs, worksheet: Worksheet, check: Worksheet) -> tuple[str, tuple[BigNumber, ...]]:
    totals, facts = outputs.summary.get("totals", {}), outputs.bundle.facts
    audited = int(totals.get("episodes_audited", 0))
    rows_read, rejected = int(totals.get("rows_read", 0)), int(totals.get("rows_rejected", 0))
    files = len(outputs.summary.get("inputs", []))
    matched = facts["matched_episodes"]
    non_compliant = facts["non_compliant_episodes"]
    superseded = facts["superseded_episodes"]
    predates = facts["predates_episodes"]
    finding_count = facts["findings"]
    severity = {r["severity"]: r["findings"] for r in outputs.bundle["severities"].iter_rows(named=True)}
    errors, warnings = severity.get(ERROR, 0), severity.get(WARNING, 0)
    parts = [
        f"{plural(audited, 'episode')} audited from {plural(files, 'file')} "
        f"({plural(rows_read, 'row')} read, {number(rejected)} rejected)",
        f"{number(matched)} matched NICE guidance",
        f"{number(non_compliant)} non-compliant",
        f"{number(superseded)} follow{'s' if superseded == 1 else ''} superseded guidance",
    ]
    if predates:
        parts.append(f"{number(predates)} predate{'s' if predates == 1 else ''} the guidance {'it' if predates == 1 else 'they'} match{'es' if predates == 1 else ''}")
    sentence = "; ".join(parts) + ". "
    sentence += (
        f"{plural(finding_count, 'finding')}: {plural(errors, 'error')}, {plural(warnings, 'warning')}, "
        f"{number(severity.get(SUPERSEDED, 0))} superseded"
    )
    if finding_count:
        top_rule, top_count = (
            outputs.bundle["rules"].sort(["findings", "rule_id"], descending=[True, False])
            .select("rule_id", "findings").row(0)
        )
        sentence += f"; the most frequent rule is {top_rule} ({number(top_count)})"
    sentence += (
        f". The worklist has {plural(worksheet.total_count, 'episode')} to send back to coders"
        if worksheet.total_count else ". No episode needs to go back to coders"
    )
    sentence += "" if not worksheet.capped else f" (the first {worksheet.shown} are listed)"
    if check.total_count:
        sentence += (f"; {plural(check.total_count, 'more episode', 'more episodes')} only "
                     f"follow{'s' if check.total_count == 1 else ''} superseded guidance: check "
                     f"{'it' if check.total_count == 1 else 'them'} against the replacement")
    sentence += "."
    numbers = (
        big_number("Episodes audited", audited, f"{plural(rows_read, 'row')} in {plural(files, 'file')}", "neutral"),
        big_number("Matched NICE guidance", matched,
             plural(facts["pairs"], "episode–guidance match", "episode–guidance matches"), "neutral"),
        big_number("Non-compliant", non_compliant, f"{percent(non_compliant, matched)} of matched episodes", "bad",
                   "#filter=status:non-compliant&in=worklist"),
        big_number("Superseded guidance", superseded, f"{percent(superseded, matched)} of matched episodes",
                   "superseded", "#filter=status:superseded&in=check"),
        big_number("Findings", finding_count, f"{plural(errors, 'error')} · {plural(warnings, 'warning')}", "warn",
                   "#filter=&in=findings"),
        big_number("Rows rejected", rejected, f"of {plural(rows_read, 'row')} read", "bad" if rejected else "ok"),
    )
    return sentence, numbers


def _choices(values) -> tuple[Option, ...]:
    return tuple(Option(v, v) for v in sorted({v for v in values if v}))


def _filters(bundle: Bundle, catalogue: Catalogue, history: bool,
             lists: tuple[Worksheet | FindingsTable, ...]) -> Filters:
    def listed(column: str) -> list[str]:
        return [v for shown in lists for v in shown.rows.values[column]]

    guidance = set(bundle["guidance"]["guidance_id"]) | set(bundle.facts["finding_guidance"])
    guidance.discard("")
    rules = set(bundle["rules"]["rule_id"])
    severities = set(bundle["severities"]["severity"])
    statuses = list(STATUSES) + sorted(set(bundle.facts["statuses"]) - set(STATUSES) - {""})
    return Filters(
        guidance=tuple(Option(g, g) for g in ordered_guidance_ids(catalogue, guidance)),
        rules=tuple(Option(r, f"{rule_title(r)} ({r})")
                    for r in [r for r in RULES if r in rules] + sorted(rules - set(RULES))),
        severities=tuple(Option(s, SEVERITY_LABELS.get(s, s))
                         for s in [s for s in SEVERITIES if s in severities] + sorted(severities - set(SEVERITIES))),
        statuses=tuple(Option(s, STATUS_LABELS.get(s, s)) for s in statuses),
        changes=tuple(Option(c, CHANGE_LABELS[c]) for c in CHANGES) if history else (),
        providers=_choices(listed("provider")),
        specialties=tuple(
            Option(o.value, f"{o.value} {specialty_name(o.value)}".strip()) for o in _choices(listed("specialty"))
        ),
        consultants=_choices(listed("consultant")),
        coders=_choices(listed("coder")),
    )


def listed_counts(outputs: Outputs, worksheet_cap: int, findings_cap: int) -> tuple[int, int]:
    """(worklist and superseded-list cards, findings and changes table rows) the page lists at these
    caps, counted from the bundle without building the page (what its size grows with)."""
    bundle = outputs.bundle
    why = bundle["reasons"]
    cards = sum(capped_per(why.filter(pl.col("list") == kind), "reason", worksheet_cap)["episode_id"].n_unique()
                for kind in why["list"].unique())
    rows = capped_per(bundle["findings_table"], "rule_id", findings_cap).height
    if history_used(outputs):
        rows += capped_per(bundle["changes"], "change", findings_cap).height
    return cards, rows


def build_page(outputs: Outputs, catalogue: Catalogue, *, worksheet_cap: int = 200, findings_cap: int = 200,
               generated: datetime | None = None, size_note: str = "",
               breakdowns: tuple[Breakdown, ...] | None = None) -> ReportPage:
    """The page from summary.json and the run's bundle (reports.bundle), whatever the run's size.
    breakdowns: area_breakdowns(outputs.bundle), where the caller has them already."""
    if worksheet_cap < 0 or findings_cap < 0:
        raise ValueError("caps must be zero or more")
    bundle = outputs.bundle
    if not bundle.covers(worksheet_cap, findings_cap):
        raise ValueError("the bundle was built with smaller caps")
    history = history_used(outputs)
    worksheet, check, anchors = build_lists(bundle, catalogue, worksheet_cap, history)
    shown = capped_per(bundle["findings_table"], "rule_id", findings_cap)
    rule_totals = {r["rule_id"]: r["findings"] for r in bundle["rules"].iter_rows(named=True)}
    findings_table = FindingsTable(
        rows=finding_rows(shown, anchors, show_first_seen=history),
        shown=number(shown.height), total=number(bundle.facts["findings"]), cap=number(findings_cap),
        capped=shown.height < bundle.facts["findings"], per_rule=cap_rows(rule_totals, shown, "rule_id"),
        show_first_seen=history,
    )
    sentence, numbers = _headline(outputs, worksheet, check)
    counts = change_counts(outputs)
    sentence += change_clause(outputs, counts)
    guidance_ids = ordered_guidance_ids(catalogue, set(bundle["guidance"]["guidance_id"]))
    return ReportPage(
        title="NICE procedure coding audit",
        run=_run_info(outputs, catalogue, generated, guidance_ids),
        sentence=sentence,
        numbers=numbers,
        guidance=_guidance_rows(bundle, catalogue),
        rules=_rule_rows(bundle),
        severities=_severity_rows(bundle),
        breakdowns=area_breakdowns(bundle) if breakdowns is None else breakdowns,
        changes=changes_section(outputs, catalogue, anchors, findings_cap, counts),
        worksheet=worksheet,
        check=check,
        superseded=_superseded(bundle, catalogue),
        findings=findings_table,
        data_quality=_data_quality(outputs, anchors),
        filters=_filters(bundle, catalogue, history, (worksheet, check, findings_table)),
        files={"findings": FINDINGS_CSV, "episodes": EPISODES_CSV, "rejected": REJECTED_CSV,
               "changes": CHANGES_CSV, "trend": TREND_CSV},
        size_note=size_note,
        min_n=number(MIN_N),
        possible_not_audited=tuple(
            (gid, number(n)) for gid, n in sorted(outputs.summary.get("possible_not_audited", {}).items())),
        volume_alerts=tuple((outputs.summary.get("volume") or {}).get("alerts") or ()),
    )
