"""Build the report's typed context (`reports.page`) from a run's output frames.

Every number the page shows is counted here, from the findings / episodes / sequences / rejected
frames or summary.json, and handed to the templates as display text: the templates only loop,
test and print. Every list that can grow with the data is capped, with its true total beside it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import PurePath

import polars as pl

from audit.catalogue import Catalogue
from audit.outputs import (
    CHANGES_CSV,
    EPISODES_CSV,
    FINDINGS_CSV,
    REJECTED_CSV,
    TREND_CSV,
)
from audit.rules import ERROR, RULES, SEVERITIES, SUPERSEDED, WARNING
from reports import align
from reports.changes import (
    change_clause,
    change_counts,
    change_of_findings,
    changes_section,
    history_used,
)
from reports.common import (
    BREAKDOWN_CAP,
    BREAKDOWNS,
    CHANGE_LABELS,
    CHANGES,
    COMPLIANT,
    DATA_QUALITY_CAP,
    LINE_LABELS,
    NON_COMPLIANT,
    NOT_RECORDED,
    DATE_UNCERTAIN,
    PREDATES,
    SEVERITY_LABELS,
    STATUS_LABELS,
    SUPERSEDED_STATUS,
    WORKSHEET_STATUSES,
    as_int,
    big_number,
    cap_rows,
    capped_per,
    catalogue_ref,
    clean,
    lineage_text,
    ordered_guidance_ids,
)
from reports.frames import Outputs
from reports.page import (
    AlignedLine,
    BigNumber,
    Breakdown,
    BreakdownRow,
    CapRow,
    DataQuality,
    Filters,
    FindingRow,
    FindingsTable,
    GuidanceRow,
    InputFile,
    InvalidValue,
    LabelCount,
    NoOperationRow,
    Option,
    PairView,
    RejectedRow,
    ReportPage,
    RuleRow,
    RunInfo,
    SequenceCode,
    SeverityRow,
    SupersededGroup,
    SupersededRow,
    Worksheet,
    WorksheetCard,
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
    auditable = len(catalogue.auditable())
    return RunInfo(
        run_started=long_datetime(started) if started else str(s.get("run_started", "not recorded")),
        as_of=long_date(as_of) if as_of else str(s.get("as_of", "not recorded")),
        generated=long_datetime(when) if when else "not recorded",
        tool_version=str(s.get("tool_version", "")),
        catalogue_version=run_version or catalogue.version,
        catalogue_note=note,
        catalogue_entries=f"{plural(len(catalogue.guidance), 'entry', 'entries')}, "
                          f"{number(auditable)} with code sets audited",
        inputs=inputs,
        guidance_used=tuple(catalogue_ref(catalogue, gid) for gid in guidance_ids),
    )


def _status_counts(frame: pl.DataFrame, by: str) -> pl.DataFrame:
    return frame.group_by(by).agg(
        matched=pl.len(),
        compliant=(pl.col("status") == COMPLIANT).sum(),
        non_compliant=(pl.col("status") == NON_COMPLIANT).sum(),
        superseded=(pl.col("status") == SUPERSEDED_STATUS).sum(),
        predates=(pl.col("status") == PREDATES).sum(),
        date_uncertain=(pl.col("status") == DATE_UNCERTAIN).sum(),
    )


def _severity_counts(frame: pl.DataFrame, by: str) -> pl.DataFrame:
    return frame.group_by(by).agg(
        findings=pl.len(),
        errors=(pl.col("severity") == ERROR).sum(),
        warnings=(pl.col("severity") == WARNING).sum(),
        superseded=(pl.col("severity") == SUPERSEDED).sum(),
        episodes=pl.col("episode_id").n_unique(),
    )


def _judged(row: dict) -> int:
    """Pairs that can be compliant: episodes dated before the guidance was published, or inside
    the window of a guidance date known only to a month or a year, cannot."""
    return row["matched"] - row["predates"] - row["date_uncertain"]


def _guidance_rows(episodes: pl.DataFrame, catalogue: Catalogue) -> tuple[GuidanceRow, ...]:
    counts = {r["guidance_id"]: r for r in _status_counts(episodes, "guidance_id").iter_rows(named=True)}
    code_sets = {
        gid: ", ".join(sorted(set(these)))
        for gid, these in episodes.group_by("guidance_id").agg(pl.col("code_set").unique())
        .iter_rows()
    }
    rows = []
    for gid in ordered_guidance_ids(catalogue, counts):
        c, g = counts[gid], catalogue.guidance.get(gid)
        ref = catalogue_ref(catalogue, gid)
        rows.append(GuidanceRow(
            id=gid, title=ref.title, url=ref.url, code_sets=code_sets.get(gid, ""),
            episodes=number(c["matched"]), compliant=number(c["compliant"]),
            non_compliant=number(c["non_compliant"]), superseded=number(c["superseded"]),
            predates=number(c["predates"]), percent_compliant=percent(c["compliant"], _judged(c)),
            lineage=lineage_text(g),
            replaces=f"replaces {', '.join(g.replaces)}" if g is not None and g.replaces else "",
            uncertain=g.uncertain if g is not None else (),
            date_uncertain=number(c["date_uncertain"]),
        ))
    return tuple(rows)


def _rule_rows(findings: pl.DataFrame) -> tuple[RuleRow, ...]:
    counts = {r["rule_id"]: r for r in _severity_counts(findings, "rule_id").iter_rows(named=True)}
    rows = []
    for rule_id in list(RULES) + sorted(set(counts) - set(RULES)):
        c = counts.get(rule_id, {"findings": 0, "errors": 0, "warnings": 0, "superseded": 0, "episodes": 0})
        info = RULES.get(rule_id)
        rows.append(RuleRow(
            id=rule_id,
            standard=info.standard if info else "Not a rule of this version of nice-audit.",
            usual_severity=info.severity if info else "",
            findings=number(c["findings"]), errors=number(c["errors"]), warnings=number(c["warnings"]),
            superseded=number(c["superseded"]), episodes=number(c["episodes"]),
            has_findings=c["findings"] > 0,
        ))
    return tuple(rows)


def _severity_rows(findings: pl.DataFrame) -> tuple[SeverityRow, ...]:
    counts = {r["severity"]: r for r in _severity_counts(findings, "severity").iter_rows(named=True)}
    return tuple(
        SeverityRow(s, SEVERITY_LABELS.get(s, s), number(counts.get(s, {}).get("findings", 0)),
                    number(counts.get(s, {}).get("episodes", 0)))
        for s in list(SEVERITIES) + sorted(set(counts) - set(SEVERITIES))
    )


def _columns_present(outputs: Outputs) -> set[str]:
    present = set()
    for f in outputs.summary.get("inputs", []):
        present.update(f.get("columns_present", []))
    return present


def _breakdowns(outputs: Outputs, findings: pl.DataFrame, episodes: pl.DataFrame) -> tuple[Breakdown, ...]:
    present = _columns_present(outputs)
    result = []
    for column, title in BREAKDOWNS:
        recorded = (findings[column] != "").any() or (episodes[column] != "").any()
        if column not in present and not recorded:
            continue
        status = _status_counts(episodes, column)
        severity = _severity_counts(findings, column).drop("episodes", "superseded")
        joined = (
            status.join(severity, on=column, how="full", coalesce=True)
            .fill_null(0)
            .sort(["errors", "findings", column], descending=[True, True, False])
        )
        rows = tuple(
            BreakdownRow(
                value=r[column] or NOT_RECORDED, matched=number(r["matched"]), compliant=number(r["compliant"]),
                non_compliant=number(r["non_compliant"]), superseded=number(r["superseded"]),
                percent_compliant=percent(r["compliant"], _judged(r)), findings=number(r["findings"]),
                errors=number(r["errors"]), warnings=number(r["warnings"]),
            )
            for r in joined.head(BREAKDOWN_CAP).iter_rows(named=True)
        )
        result.append(Breakdown(column, title, rows, number(len(rows)), number(joined.height),
                                joined.height > len(rows)))
    return tuple(result)


def _finding_row(r: dict, anchors: dict[str, str]) -> FindingRow:
    return FindingRow(
        episode_id=r["episode_id"], episode_href=anchors.get(r["episode_id"], ""),
        guidance_id=r["guidance_id"], code_set=r["code_set"], rule_id=r["rule_id"],
        severity=r["severity"], severity_label=SEVERITY_LABELS.get(r["severity"], r["severity"]),
        status=r["status"], position=r["position"], code=r["code"], expected=r["expected"],
        message=r["message"], provider=r["provider"], specialty=r["specialty"],
        consultant=r["consultant"], source_file=r["source_file"],
        first_seen=r["first_seen"], change=r["change"], change_label=CHANGE_LABELS.get(r["change"], r["change"]),
    )


# --- Worksheet ---------------------------------------------------------------------------------


def _worksheet_reasons(findings: pl.DataFrame, episodes: pl.DataFrame) -> pl.DataFrame:
    """(episode_id, reason): why each episode belongs in the worksheet. An episode with an error or
    superseded finding is there for that rule; a non-compliant or superseded pair without one
    (hand-edited outputs) is there for its status."""
    by_rule = (
        findings.filter(pl.col("severity").is_in([ERROR, SUPERSEDED]))
        .select("episode_id", pl.col("rule_id").alias("reason"))
    )
    by_status = (
        episodes.filter(pl.col("status").is_in(WORKSHEET_STATUSES))
        .join(by_rule, on="episode_id", how="anti")
        .select("episode_id", pl.concat_str(pl.lit("status: "), pl.col("status")).alias("reason"))
    )
    return pl.concat([by_rule, by_status]).unique().sort("reason", "episode_id")


def _titles(catalogue: Catalogue, code: str) -> str:
    key = code.replace(".", "")
    if key in catalogue.titles:
        return catalogue.titles[key]
    category = f"{key[:3]}.-"
    if len(key) == 4 and category in catalogue.titles:
        return f"{catalogue.titles[category]} ({category})"
    return ""


def _sequence(rows: list[dict], flags: dict[str, list[str]], levels: dict[str, set[str]],
              catalogue: Catalogue) -> tuple[SequenceCode, ...]:
    result = []
    for r in rows:
        marks = flags.get(r["position"], [])
        severities = levels.get(r["position"], set())
        title = _titles(catalogue, r["code"]) if r["code_kind"] == "procedure" else {
            "invalid": "not an OPCS-4 code",
            "no-operation": "no operation performed",
            "not-known": "not known",
        }.get(r["code_kind"], "")
        level = next((s for s in (ERROR, SUPERSEDED, WARNING) if s in severities), "")
        result.append(SequenceCode(r["position"], r["code"], r["code_kind"], title, bool(marks),
                                   tuple(marks), ", ".join(marks), level))
    return tuple(result)


def _pair_view(r: dict) -> PairView:
    lines = tuple(
        AlignedLine(line.recorded, line.expected, line.state, LINE_LABELS[line.state],
                    line.state != align.OK)
        for line in align.align(r["actual_sequence"], r["expected_sequence"])
    )
    return PairView(
        guidance_id=r["guidance_id"], code_set=r["code_set"], status=r["status"], status_label=STATUS_LABELS.get(r["status"], r["status"]),
        episode_date=r["episode_date"], date_source=r["date_source"].replace("_", " "),
        errors=r["errors"], warnings=r["warnings"], lines=lines,
    )


def _worksheet(findings: pl.DataFrame, episodes: pl.DataFrame, sequences: pl.DataFrame,
               catalogue: Catalogue, cap: int) -> tuple[Worksheet, dict[str, str]]:
    reasons = _worksheet_reasons(findings, episodes)
    chosen = capped_per(reasons, "reason", cap)
    ids = sorted(set(chosen["episode_id"]))
    anchors = {episode_id: f"ep-{n}" for n, episode_id in enumerate(ids, start=1)}
    wanted = pl.DataFrame({"episode_id": ids}, schema={"episode_id": pl.String})

    def grouped(frame: pl.DataFrame) -> dict[str, list[dict]]:
        groups: dict[str, list[dict]] = defaultdict(list)
        for row in frame.join(wanted, on="episode_id", how="semi").iter_rows(named=True):
            groups[row["episode_id"]].append(row)
        return groups

    card_findings = grouped(findings.sort(as_int("position"), "rule_id", "guidance_id", "row", nulls_last=True))
    card_pairs = grouped(episodes.sort("guidance_id"))
    card_sequences = grouped(sequences.sort(as_int("position")))
    cards = []
    for episode_id in ids:
        found, pairs = card_findings.get(episode_id, []), card_pairs.get(episode_id, [])
        flags: dict[str, list[str]] = defaultdict(list)
        levels: dict[str, set[str]] = defaultdict(set)
        for f in found:
            mark = f["rule_id"] if f["severity"] in (ERROR, SUPERSEDED) else f"{f['rule_id']} ({f['severity']})"
            if f["position"] and mark not in flags[f["position"]]:
                flags[f["position"]].append(mark)
                levels[f["position"]].add(f["severity"])
        first = (pairs or found)[0]
        cards.append(WorksheetCard(
            anchor=anchors[episode_id], episode_id=episode_id, provider=first["provider"],
            specialty=first["specialty"], consultant=first["consultant"], source_file=first["source_file"],
            date=pairs[0]["episode_date"] if pairs else "",
            errors=number(sum(f["severity"] == ERROR for f in found)),
            worst=next((s for s in (ERROR, SUPERSEDED) if any(f["severity"] == s for f in found)), "none"),
            sequence=_sequence(card_sequences.get(episode_id, []), flags, levels, catalogue),
            pairs=tuple(_pair_view(p) for p in pairs),
            findings=tuple(_finding_row(f, anchors) for f in found),
            guidance_tokens=" ".join(sorted({p["guidance_id"] for p in pairs} |
                                            {f["guidance_id"] for f in found if f["guidance_id"]})),
            rule_tokens=" ".join(sorted({f["rule_id"] for f in found})),
            severity_tokens=" ".join(sorted({f["severity"] for f in found})),
            status_tokens=" ".join(sorted({p["status"] for p in pairs})),
            change_tokens=" ".join(sorted({f["change"] for f in found if f["change"]})),
        ))
    total = reasons["episode_id"].n_unique()
    worksheet = Worksheet(
        cards=tuple(cards), total=number(total), shown=number(len(cards)), cap=number(cap),
        capped=len(cards) < total, per_rule=_distinct_cap_rows(reasons, chosen), total_count=total,
    )
    return worksheet, anchors


def _distinct_cap_rows(reasons: pl.DataFrame, chosen: pl.DataFrame) -> tuple[CapRow, ...]:
    """Per reason: episodes with it, and how many of those have a card (chosen for any reason)."""
    shown_ids = chosen.select("episode_id").unique()
    shown = reasons.join(shown_ids, on="episode_id", how="semi")
    return cap_rows(reasons, shown, "reason")


# --- Superseded and data quality ---------------------------------------------------------------


def _superseded(episodes: pl.DataFrame, catalogue: Catalogue, anchors: dict[str, str],
                cap: int) -> tuple[SupersededGroup, ...]:
    these = episodes.filter(pl.col("status") == SUPERSEDED_STATUS).sort("guidance_id", "episode_id")
    groups = []
    for gid in ordered_guidance_ids(catalogue, set(these["guidance_id"])):
        rows = these.filter(pl.col("guidance_id") == gid)
        g = catalogue.guidance.get(gid)
        ref = catalogue_ref(catalogue, gid)
        replacement = catalogue_ref(catalogue, g.replaced_by) if g is not None and g.replaced_by else None
        shown = tuple(
            SupersededRow(r["episode_id"], anchors.get(r["episode_id"], ""), r["episode_date"], r["provider"],
                          r["specialty"], r["consultant"], r["errors"], r["warnings"])
            for r in rows.head(cap).iter_rows(named=True)
        )
        groups.append(SupersededGroup(
            guidance_id=gid, title=ref.title, url=ref.url,
            lineage=lineage_text(g) or f"{gid} → replacement not recorded in this catalogue",
            replacement_url=replacement.url if replacement else "",
            replacement_title=replacement.title if replacement else "",
            rows=shown, total=number(rows.height), shown=number(len(shown)), capped=rows.height > len(shown),
        ))
    return tuple(groups)


def _data_quality(outputs: Outputs, findings: pl.DataFrame, sequences: pl.DataFrame,
                  rejected: pl.DataFrame, anchors: dict[str, str]) -> DataQuality:
    dq = outputs.summary.get("data_quality", {})
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
    reasons = rejected.group_by("reason").len().sort(["len", "reason"], descending=[True, False])
    by_reason = tuple(LabelCount(r, number(n), "") for r, n in reasons.iter_rows())
    rejected_rows = tuple(
        RejectedRow(r["source_file"], r["source_row"], r["episode_id"], r["reason"])
        for r in rejected.head(DATA_QUALITY_CAP).iter_rows(named=True)
    )
    invalid = (
        findings.filter(pl.col("rule_id") == "invalid-code")
        .group_by("code")
        .agg(occurrences=pl.len(), episodes=pl.col("episode_id").n_unique(), example=pl.col("message").first())
        .sort(["occurrences", "code"], descending=[True, False])
    )
    invalid_rows = tuple(
        InvalidValue(r["code"], number(r["occurrences"]), number(r["episodes"]), r["example"])
        for r in invalid.head(DATA_QUALITY_CAP).iter_rows(named=True)
    )
    no_op = findings.filter(pl.col("rule_id") == "no-operation-with-codes").unique("episode_id", keep="first")
    no_op = no_op.sort("episode_id")
    shown_no_op = no_op.head(DATA_QUALITY_CAP)
    after = (
        sequences.join(shown_no_op.select("episode_id"), on="episode_id", how="semi")
        .filter(as_int("position") > 1)
        .sort("episode_id", as_int("position"))
        .group_by("episode_id", maintain_order=True)
        .agg(pl.col("code").str.join(" "))
    )
    codes_after = dict(after.iter_rows())
    no_op_rows = tuple(
        NoOperationRow(r["episode_id"], anchors.get(r["episode_id"], ""),
                       codes_after.get(r["episode_id"], ""), r["provider"], r["source_file"])
        for r in shown_no_op.iter_rows(named=True)
    )
    return DataQuality(
        counters=counters, rejected_by_reason=by_reason, rejected_total=number(rejected.height),
        rejected_rows=rejected_rows, rejected_shown=number(len(rejected_rows)),
        rejected_capped=rejected.height > len(rejected_rows),
        invalid_values=invalid_rows, invalid_shown=number(len(invalid_rows)), invalid_total=number(invalid.height),
        invalid_capped=invalid.height > len(invalid_rows),
        no_operation=no_op_rows, no_operation_total=number(no_op.height),
        no_operation_capped=no_op.height > len(no_op_rows),
    )


# --- Summary -----------------------------------------------------------------------------------


def _episodes_with(episodes: pl.DataFrame, status: str) -> int:
    return episodes.filter(pl.col("status") == status)["episode_id"].n_unique()


def _headline(outputs: Outputs, findings: pl.DataFrame, episodes: pl.DataFrame,
              worksheet: Worksheet) -> tuple[str, tuple[BigNumber, ...]]:
    totals = outputs.summary.get("totals", {})
    audited = int(totals.get("episodes_audited", 0))
    rows_read, rejected = int(totals.get("rows_read", 0)), int(totals.get("rows_rejected", 0))
    files = len(outputs.summary.get("inputs", []))
    matched = episodes["episode_id"].n_unique()
    non_compliant = _episodes_with(episodes, NON_COMPLIANT)
    superseded = _episodes_with(episodes, SUPERSEDED_STATUS)
    predates = _episodes_with(episodes, PREDATES)
    severity = dict(findings.group_by("severity").len().iter_rows()) if findings.height else {}
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
        f"{plural(findings.height, 'finding')}: {plural(errors, 'error')}, {plural(warnings, 'warning')}, "
        f"{number(severity.get(SUPERSEDED, 0))} superseded"
    )
    if findings.height:
        top_rule, top_count = (
            findings.group_by("rule_id").len().sort(["len", "rule_id"], descending=[True, False]).row(0)
        )
        sentence += f"; the most frequent rule is {top_rule} ({number(top_count)})"
    sentence += (
        f". The worksheet lists {plural(worksheet.total_count, 'episode')} to send back to coders"
        if worksheet.total_count else ". No episode needs to go back to coders"
    )
    sentence += "." if not worksheet.capped else f" (the first {worksheet.shown} are shown)."
    numbers = (
        big_number("Episodes audited", audited, f"{plural(rows_read, 'row')} in {plural(files, 'file')}", "neutral"),
        big_number("Matched NICE guidance", matched,
             plural(episodes.height, "episode–guidance match", "episode–guidance matches"), "neutral"),
        big_number("Non-compliant", non_compliant, f"{percent(non_compliant, matched)} of matched episodes", "bad"),
        big_number("Superseded guidance", superseded, f"{percent(superseded, matched)} of matched episodes", "superseded"),
        big_number("Findings", findings.height, f"{plural(errors, 'error')} · {plural(warnings, 'warning')}", "warn"),
        big_number("Rows rejected", rejected, f"of {plural(rows_read, 'row')} read", "bad" if rejected else "ok"),
    )
    return sentence, numbers


def _filters(findings: pl.DataFrame, episodes: pl.DataFrame, catalogue: Catalogue, history: bool) -> Filters:
    guidance = set(episodes["guidance_id"]) | set(findings["guidance_id"])
    guidance.discard("")
    rules = set(findings["rule_id"])
    severities = set(findings["severity"])
    return Filters(
        guidance=tuple(Option(g, g) for g in ordered_guidance_ids(catalogue, guidance)),
        rules=tuple(Option(r, r) for r in [r for r in RULES if r in rules] + sorted(rules - set(RULES))),
        severities=tuple(Option(s, SEVERITY_LABELS.get(s, s))
                         for s in [s for s in SEVERITIES if s in severities] + sorted(severities - set(SEVERITIES))),
        statuses=tuple(Option(s, STATUS_LABELS[s]) for s in STATUSES),
        changes=tuple(Option(c, CHANGE_LABELS[c]) for c in CHANGES) if history else (),
    )


def build_page(outputs: Outputs, catalogue: Catalogue, *, worksheet_cap: int = 200, findings_cap: int = 200,
               generated: datetime | None = None, size_note: str = "") -> ReportPage:
    if worksheet_cap < 0 or findings_cap < 0:
        raise ValueError("caps must be zero or more")
    episodes = clean(outputs.episodes)
    sequences = clean(outputs.sequences)
    rejected = clean(outputs.rejected)
    status = episodes.select("episode_id", "guidance_id", "status").unique(["episode_id", "guidance_id"],
                                                                            keep="first", maintain_order=True)
    findings = change_of_findings(
        clean(outputs.findings).with_row_index("row")
        .join(status, on=["episode_id", "guidance_id"], how="left", maintain_order="left")
        .with_columns(pl.col("status").fill_null("")),
        outputs.changes,
    )
    history = history_used(outputs)
    worksheet, anchors = _worksheet(findings, episodes, sequences, catalogue, worksheet_cap)
    shown = capped_per(findings, "rule_id", findings_cap)
    findings_table = FindingsTable(
        rows=tuple(_finding_row(r, anchors) for r in shown.iter_rows(named=True)),
        shown=number(shown.height), total=number(findings.height), cap=number(findings_cap),
        capped=shown.height < findings.height, per_rule=cap_rows(findings, shown, "rule_id"),
        show_first_seen=history,
    )
    sentence, numbers = _headline(outputs, findings, episodes, worksheet)
    counts = change_counts(outputs)
    sentence += change_clause(outputs, counts)
    guidance_ids = ordered_guidance_ids(catalogue, set(episodes["guidance_id"]))
    return ReportPage(
        title="NICE procedure coding audit",
        run=_run_info(outputs, catalogue, generated, guidance_ids),
        sentence=sentence,
        numbers=numbers,
        guidance=_guidance_rows(episodes, catalogue),
        rules=_rule_rows(findings),
        severities=_severity_rows(findings),
        breakdowns=_breakdowns(outputs, findings, episodes),
        changes=changes_section(outputs, findings, episodes, catalogue, anchors, findings_cap, counts),
        worksheet=worksheet,
        superseded=_superseded(episodes, catalogue, anchors, worksheet_cap),
        findings=findings_table,
        data_quality=_data_quality(outputs, findings, sequences, rejected, anchors),
        filters=_filters(findings, episodes, catalogue, history),
        files={"findings": FINDINGS_CSV, "episodes": EPISODES_CSV, "rejected": REJECTED_CSV,
               "changes": CHANGES_CSV, "trend": TREND_CSV},
        size_note=size_note,
        possible_not_audited=tuple(
            (gid, number(n)) for gid, n in sorted(outputs.summary.get("possible_not_audited", {}).items())),
        volume_alerts=tuple((outputs.summary.get("volume") or {}).get("alerts") or ()),
    )
