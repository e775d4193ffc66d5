"""Build the report's typed context (`reports.page`) from a run's output frames.

Every number the page shows is counted here, from the findings / episodes / sequences / rejected
frames or summary.json, and handed to the templates as display text: the templates only loop,
test and print. Every list that can grow with the data is capped, with its true total beside it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import date, datetime
from pathlib import PurePath

import polars as pl

from audit.catalogue import Catalogue, Guidance
from audit.outputs import (
    CHANGES_CSV,
    EPISODES_CSV,
    FINDINGS_CSV,
    REJECTED_CSV,
    TREND_CSV,
)
from audit.rules import ERROR, RULES, SEVERITIES, SUPERSEDED, WARNING
from reports import align, chart
from reports.frames import Outputs
from reports.page import (
    AlignedLine,
    BigNumber,
    Breakdown,
    BreakdownRow,
    CapRow,
    ChangeRow,
    Changes,
    DataQuality,
    Filters,
    FindingRow,
    FindingsTable,
    GuidanceRef,
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
    TrendChart,
    Worksheet,
    WorksheetCard,
)
from schemas.outputs import STATUSES

COMPLIANT, NON_COMPLIANT, SUPERSEDED_STATUS, PREDATES = STATUSES
WORKSHEET_STATUSES = (NON_COMPLIANT, SUPERSEDED_STATUS)
BREAKDOWN_CAP = 50  # rows per provider / specialty / consultant table
DATA_QUALITY_CAP = 50  # rows per data-quality list
NOT_RECORDED = "(not recorded)"
BREAKDOWNS = (("provider", "Provider"), ("specialty", "Treatment specialty"), ("consultant", "Consultant"))

STATUS_LABELS = {
    COMPLIANT: "compliant",
    NON_COMPLIANT: "non-compliant",
    SUPERSEDED_STATUS: "superseded guidance",
    PREDATES: "predates guidance",
}
SEVERITY_LABELS = {ERROR: "error", WARNING: "warning", SUPERSEDED: "superseded"}
NEW, STILL_OPEN, RESOLVED = "new", "still-open", "resolved"
CHANGES = (NEW, STILL_OPEN, RESOLVED)  # the order of the "what changed" table
CHANGE_LABELS = {NEW: "new", STILL_OPEN: "still open", RESOLVED: "resolved"}
CHANGE_KEY = ["episode_id", "guidance_id", "rule_id", "position"]
LINE_LABELS = {
    align.OK: "as expected",
    align.MISSING: "missing",
    align.OPTIONAL: "not recorded (only if done)",
    align.EXTRA: "not expected here",
    align.DIFFERS: "differs",
    align.MISPLACED: "out of place",
    align.LATER: "due later in the episode",
}


# --- Display text ------------------------------------------------------------------------------


def number(n: int) -> str:
    return f"{n:,}"


def percent(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "–"


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{number(n)} {one if n == 1 else (many or one + 's')}"


def long_date(value: date) -> str:
    return f"{value.day} {value.strftime('%B %Y')}"


def short_date(value: date) -> str:
    return f"{value.day} {value.strftime('%b %Y')}"


def long_datetime(value: datetime) -> str:
    offset = value.utcoffset()
    zone = "UTC" if offset is not None and not offset else value.strftime("%z") or "local time"
    return f"{long_date(value)}, {value.strftime('%H:%M')} {zone}"


def _parse_datetime(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None


def _parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        return None


# --- Building ----------------------------------------------------------------------------------


def _clean(frame: pl.DataFrame) -> pl.DataFrame:
    """Text columns with "" for missing, so templates never meet None."""
    return frame.with_columns(pl.all().cast(pl.String).fill_null(""))


def _int(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.Int64, strict=False)


def _catalogue_ref(catalogue: Catalogue, guidance_id: str) -> GuidanceRef:
    g = catalogue.guidance.get(guidance_id)
    if g is None:
        return GuidanceRef(guidance_id, "not in this catalogue", "")
    return GuidanceRef(g.id, g.title, g.url)


def _lineage(g: Guidance | None) -> str:
    return f"{g.id} → {g.lineage}" if g is not None and g.replaced_by else ""


def _run_info(outputs: Outputs, catalogue: Catalogue, generated: datetime | None,
              guidance_ids: list[str]) -> RunInfo:
    s = outputs.summary
    started = _parse_datetime(s.get("run_started", ""))
    as_of = _parse_date(s.get("as_of", ""))
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
        guidance_used=tuple(_catalogue_ref(catalogue, gid) for gid in guidance_ids),
    )


def _status_counts(frame: pl.DataFrame, by: str) -> pl.DataFrame:
    return frame.group_by(by).agg(
        matched=pl.len(),
        compliant=(pl.col("status") == COMPLIANT).sum(),
        non_compliant=(pl.col("status") == NON_COMPLIANT).sum(),
        superseded=(pl.col("status") == SUPERSEDED_STATUS).sum(),
        predates=(pl.col("status") == PREDATES).sum(),
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
    """Pairs that can be compliant: episodes dated before the guidance was published cannot."""
    return row["matched"] - row["predates"]


def _ordered_guidance_ids(catalogue: Catalogue, ids) -> list[str]:
    known = [gid for gid in catalogue.guidance if gid in ids]
    return known + sorted(set(ids) - set(known))


def _guidance_rows(episodes: pl.DataFrame, catalogue: Catalogue) -> tuple[GuidanceRow, ...]:
    counts = {r["guidance_id"]: r for r in _status_counts(episodes, "guidance_id").iter_rows(named=True)}
    code_sets = {
        gid: ", ".join(sorted(set(these)))
        for gid, these in episodes.group_by("guidance_id").agg(pl.col("code_set").unique())
        .iter_rows()
    }
    rows = []
    for gid in _ordered_guidance_ids(catalogue, counts):
        c, g = counts[gid], catalogue.guidance.get(gid)
        ref = _catalogue_ref(catalogue, gid)
        rows.append(GuidanceRow(
            id=gid, title=ref.title, url=ref.url, code_sets=code_sets.get(gid, ""),
            episodes=number(c["matched"]), compliant=number(c["compliant"]),
            non_compliant=number(c["non_compliant"]), superseded=number(c["superseded"]),
            predates=number(c["predates"]), percent_compliant=percent(c["compliant"], _judged(c)),
            lineage=_lineage(g),
            replaces=f"replaces {', '.join(g.replaces)}" if g is not None and g.replaces else "",
            uncertain=g.uncertain if g is not None else (),
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


def _capped_per(frame: pl.DataFrame, by: str, cap: int) -> pl.DataFrame:
    """The first `cap` rows of each group, in frame order."""
    return frame.filter(pl.int_range(pl.len()).over(by) < cap)


def _cap_rows(totals: pl.DataFrame, shown: pl.DataFrame, by: str,
              known: tuple[str, ...] = tuple(RULES)) -> tuple[CapRow, ...]:
    total = dict(totals.group_by(by).len().iter_rows())
    seen = dict(shown.group_by(by).len().iter_rows()) if shown.height else {}
    order = [r for r in known if r in total] + sorted(set(total) - set(known))
    return tuple(
        CapRow(rule, number(total[rule]), number(seen.get(rule, 0)), seen.get(rule, 0) < total[rule])
        for rule in order
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
    chosen = _capped_per(reasons, "reason", cap)
    ids = sorted(set(chosen["episode_id"]))
    anchors = {episode_id: f"ep-{n}" for n, episode_id in enumerate(ids, start=1)}
    wanted = pl.DataFrame({"episode_id": ids}, schema={"episode_id": pl.String})

    def grouped(frame: pl.DataFrame) -> dict[str, list[dict]]:
        groups: dict[str, list[dict]] = defaultdict(list)
        for row in frame.join(wanted, on="episode_id", how="semi").iter_rows(named=True):
            groups[row["episode_id"]].append(row)
        return groups

    card_findings = grouped(findings.sort(_int("position"), "rule_id", "guidance_id", "row", nulls_last=True))
    card_pairs = grouped(episodes.sort("guidance_id"))
    card_sequences = grouped(sequences.sort(_int("position")))
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
    return _cap_rows(reasons, shown, "reason")


# --- Superseded and data quality ---------------------------------------------------------------


def _superseded(episodes: pl.DataFrame, catalogue: Catalogue, anchors: dict[str, str],
                cap: int) -> tuple[SupersededGroup, ...]:
    these = episodes.filter(pl.col("status") == SUPERSEDED_STATUS).sort("guidance_id", "episode_id")
    groups = []
    for gid in _ordered_guidance_ids(catalogue, set(these["guidance_id"])):
        rows = these.filter(pl.col("guidance_id") == gid)
        g = catalogue.guidance.get(gid)
        ref = _catalogue_ref(catalogue, gid)
        replacement = _catalogue_ref(catalogue, g.replaced_by) if g is not None and g.replaced_by else None
        shown = tuple(
            SupersededRow(r["episode_id"], anchors.get(r["episode_id"], ""), r["episode_date"], r["provider"],
                          r["specialty"], r["consultant"], r["errors"], r["warnings"])
            for r in rows.head(cap).iter_rows(named=True)
        )
        groups.append(SupersededGroup(
            guidance_id=gid, title=ref.title, url=ref.url,
            lineage=_lineage(g) or f"{gid} → replacement not recorded in this catalogue",
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
        .filter(_int("position") > 1)
        .sort("episode_id", _int("position"))
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


# --- What changed since the last run, and the trend -------------------------------------------


def _history_used(outputs: Outputs) -> bool:
    return outputs.summary.get("changes") is not None or outputs.changes is not None


def _change_of_findings(findings: pl.DataFrame, changes: pl.DataFrame | None) -> pl.DataFrame:
    """Each finding's change against the previous run (new | still-open), "" without a history."""
    if changes is None:
        return findings.with_columns(change=pl.lit(""))
    keys = (_clean(changes).filter(pl.col("change") != RESOLVED)
            .unique(CHANGE_KEY, keep="first", maintain_order=True).select(*CHANGE_KEY, "change"))
    return (findings.join(keys, on=CHANGE_KEY, how="left", maintain_order="left")
            .with_columns(pl.col("change").fill_null("")))


def _previous_started(text: str) -> tuple[str, str]:
    """(long date, long date and time) of the previous run's start."""
    started = _parse_datetime(text)
    if started is None:
        return text, text
    return long_date(started.date()), long_datetime(started)


def _change_clause(outputs: Outputs, counts: dict[str, int]) -> str:
    info = outputs.summary.get("changes")
    if not _history_used(outputs):
        return ""
    if info is not None and not info.get("previous_run"):
        return " First run recorded in this history: every finding is new."
    when = _previous_started(str((info or {}).get("previous_started") or ""))[0]
    return (f" Since the last run{f' ({when})' if when else ''}: {plural(counts[NEW], 'new finding')}, "
            f"{number(counts[RESOLVED])} resolved, {number(counts[STILL_OPEN])} still open.")


def _change_counts(outputs: Outputs) -> dict[str, int]:
    if outputs.changes is not None:
        found = dict(outputs.changes.group_by("change").len().iter_rows()) if outputs.changes.height else {}
        return {c: int(found.get(c, 0)) for c in CHANGES}
    info = outputs.summary.get("changes") or {}
    return {c: int(info.get(c, 0) or 0) for c in CHANGES}


def _changes(outputs: Outputs, findings: pl.DataFrame, episodes: pl.DataFrame, catalogue: Catalogue,
             anchors: dict[str, str], cap: int, counts: dict[str, int]) -> Changes:
    if not _history_used(outputs):
        return Changes(used=False, first_run=False, previous_run="", previous_started="", numbers=(), rows=(),
                       shown="0", total="0", cap=number(cap), capped=False, per_change=(), quick_filters=(),
                       file_missing=False, trend=None, trend_note="")
    info = outputs.summary.get("changes") or {}
    first_run = outputs.summary.get("changes") is not None and not info.get("previous_run")
    frame = _clean(outputs.changes) if outputs.changes is not None else pl.DataFrame(
        schema={c: pl.String for c in [*CHANGE_KEY, "change", "first_seen"]})
    severities = (findings.group_by(CHANGE_KEY)
                  .agg(severity_tokens=pl.col("severity").unique().sort().str.join(" ")))
    status = episodes.select("episode_id", "guidance_id", "status").unique(
        ["episode_id", "guidance_id"], keep="first", maintain_order=True)
    rank = {c: n for n, c in enumerate(CHANGES)}
    ordered = (
        frame.join(severities, on=CHANGE_KEY, how="left", maintain_order="left")
        .join(status, on=["episode_id", "guidance_id"], how="left", maintain_order="left")
        .with_columns(pl.col("severity_tokens", "status").fill_null(""),
                      _rank=pl.col("change").replace_strict(rank, default=len(rank), return_dtype=pl.Int64),
                      _since=pl.when(pl.col("change") == STILL_OPEN).then(pl.col("first_seen")).otherwise(pl.lit("")))
        .sort("_rank", "_since", "episode_id", "guidance_id", "rule_id", _int("position"), nulls_last=True)
    )
    shown = _capped_per(ordered, "change", cap)
    rows = tuple(
        ChangeRow(
            episode_id=r["episode_id"], episode_href=anchors.get(r["episode_id"], ""),
            guidance_id=r["guidance_id"], rule_id=r["rule_id"], position=r["position"], change=r["change"],
            change_label=CHANGE_LABELS.get(r["change"], r["change"]), first_seen=r["first_seen"],
            severity_tokens=r["severity_tokens"] if r["change"] != RESOLVED else "", status=r["status"],
        )
        for r in shown.iter_rows(named=True)
    )
    listed = set(frame["change"].unique())
    kinds = [c for c in CHANGES if c in listed]
    oldest = frame.filter((pl.col("change") == STILL_OPEN) & (pl.col("first_seen") != ""))["first_seen"].min() or ""
    oldest_date = _parse_date(oldest)
    if first_run:
        notes = ("first run in this history", "nothing to compare with", "nothing to compare with")
    else:
        notes = (
            "found now, not in the last run",
            "in the last run, gone now",
            f"oldest first seen {long_date(oldest_date) if oldest_date else oldest}" if oldest
            else "found in both runs",
        )
    numbers = (
        _big("New findings", counts[NEW], notes[0], "bad"),
        _big("Resolved", counts[RESOLVED], notes[1], "ok"),
        _big("Still open", counts[STILL_OPEN], notes[2], "warn"),
    )
    previous_started = _previous_started(str(info.get("previous_started") or ""))[1]
    trend, trend_note = _trend(outputs, catalogue)
    return Changes(
        used=True, first_run=first_run, previous_run=str(info.get("previous_run") or ""),
        previous_started=previous_started, numbers=numbers, rows=rows, shown=number(len(rows)),
        total=number(frame.height), cap=number(cap), capped=len(rows) < frame.height,
        per_change=tuple(replace(r, rule_id=CHANGE_LABELS.get(r.rule_id, r.rule_id))
                         for r in _cap_rows(frame, shown, "change", CHANGES)),
        quick_filters=tuple(Option(c, CHANGE_LABELS[c]) for c in kinds) if len(kinds) > 1 else (),
        file_missing=outputs.changes is None,
        trend=trend, trend_note=trend_note,
    )


def _trend(outputs: Outputs, catalogue: Catalogue) -> tuple[TrendChart | None, str]:
    if outputs.trend is None:
        return None, f"No trend: {TREND_CSV} is not in the output folder."
    frame = _clean(outputs.trend).with_columns(_int("episodes").fill_null(0), _int("compliant").fill_null(0))
    judged_known = frame["judged"].str.len_chars().fill_null(0).max() or 0
    frame = frame.with_columns(_int("judged").fill_null(pl.col("episodes")))
    run_keys = frame.select("run_id", "started").unique(maintain_order=True).rows()
    if len(run_keys) < 2:
        return None, ("The trend chart needs at least two runs over this scope; the history holds "
                      f"{plural(len(run_keys), 'run')} so far.")
    dates = [_parse_datetime(started) for _, started in run_keys]
    days = [d.date() if d else None for d in dates]
    axis = []
    for (run_id, started), when, day in zip(run_keys, dates, days):
        current = run_id == ""
        label = short_date(day) if day else started
        time = when.strftime("%H:%M") if when else ""
        sublabel = "this run" if current else time if day is not None and days.count(day) > 1 else ""
        full = f"{label}, {time}" if time else label
        axis.append(chart.RunAxis(label=label, sublabel=sublabel, full_label=full,
                                  table_label=full if day is not None and days.count(day) > 1 else label,
                                  run_id=run_id, current=current))
    values: dict[str, dict[tuple[str, str], tuple[int, int]]] = defaultdict(dict)
    for r in frame.iter_rows(named=True):
        values[r["guidance_id"]][(r["run_id"], r["started"])] = (r["compliant"], r["judged"])
    series = []
    for gid in _ordered_guidance_ids(catalogue, set(values)):
        ref = _catalogue_ref(catalogue, gid)
        series.append(chart.SeriesData(gid, ref.title, ref.url, tuple(values[gid].get(k) for k in run_keys)))
    span = f"from {axis[0].full_label} to {axis[-1].full_label}{' (this run)' if axis[-1].current else ''}"
    moves = []
    for s in series:
        present = [v for v in s.values if v is not None and v[1]]
        if not present:
            continue
        first, last = chart.percent_text(*present[0]), chart.percent_text(*present[-1])
        moves.append(f"{s.guidance_id} went from {first} to {last}")
    desc = (f"Line chart of the percentage of matched episodes that were compliant, one line per guidance, over "
            f"{len(run_keys)} runs {span}. " + "; ".join(moves) + ". The table under the chart gives every value.")
    predates = any(int(c.get(PREDATES, 0) or 0) for c in outputs.summary.get("by_guidance", {}).values())
    if judged_known:
        note = ("Each point is compliant episodes out of the episodes judged against the guidance in that run "
                "(matched, less those dated before it was published), as under Compliance by guidance.")
    else:
        note = ("Each point is compliant episodes out of all episodes matched to the guidance in that run, as "
                f"{TREND_CSV} records them.")
    if predates and not judged_known:
        note += (" Episodes that predate the guidance count here but are left out of the % compliant under "
                 "Compliance by guidance, so the two can differ.")
    title = f"Compliance by guidance over the last {plural(len(run_keys), 'run')}"
    return chart.trend_chart(axis, series, title=title, desc=desc, note=note), ""


# --- Summary -----------------------------------------------------------------------------------


def _big(label: str, value: int, note: str, tone: str) -> BigNumber:
    text = number(value)
    return BigNumber(label, text, note, tone, "longer" if len(text) > 10 else "long" if len(text) > 7 else "")


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
        _big("Episodes audited", audited, f"{plural(rows_read, 'row')} in {plural(files, 'file')}", "neutral"),
        _big("Matched NICE guidance", matched,
             plural(episodes.height, "episode–guidance match", "episode–guidance matches"), "neutral"),
        _big("Non-compliant", non_compliant, f"{percent(non_compliant, matched)} of matched episodes", "bad"),
        _big("Superseded guidance", superseded, f"{percent(superseded, matched)} of matched episodes", "superseded"),
        _big("Findings", findings.height, f"{plural(errors, 'error')} · {plural(warnings, 'warning')}", "warn"),
        _big("Rows rejected", rejected, f"of {plural(rows_read, 'row')} read", "bad" if rejected else "ok"),
    )
    return sentence, numbers


def _filters(findings: pl.DataFrame, episodes: pl.DataFrame, catalogue: Catalogue, history: bool) -> Filters:
    guidance = set(episodes["guidance_id"]) | set(findings["guidance_id"])
    guidance.discard("")
    rules = set(findings["rule_id"])
    severities = set(findings["severity"])
    return Filters(
        guidance=tuple(Option(g, g) for g in _ordered_guidance_ids(catalogue, guidance)),
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
    episodes = _clean(outputs.episodes)
    sequences = _clean(outputs.sequences)
    rejected = _clean(outputs.rejected)
    status = episodes.select("episode_id", "guidance_id", "status").unique(["episode_id", "guidance_id"],
                                                                            keep="first", maintain_order=True)
    findings = _change_of_findings(
        _clean(outputs.findings).with_row_index("row")
        .join(status, on=["episode_id", "guidance_id"], how="left", maintain_order="left")
        .with_columns(pl.col("status").fill_null("")),
        outputs.changes,
    )
    history = _history_used(outputs)
    worksheet, anchors = _worksheet(findings, episodes, sequences, catalogue, worksheet_cap)
    shown = _capped_per(findings, "rule_id", findings_cap)
    findings_table = FindingsTable(
        rows=tuple(_finding_row(r, anchors) for r in shown.iter_rows(named=True)),
        shown=number(shown.height), total=number(findings.height), cap=number(findings_cap),
        capped=shown.height < findings.height, per_rule=_cap_rows(findings, shown, "rule_id"),
        show_first_seen=history,
    )
    sentence, numbers = _headline(outputs, findings, episodes, worksheet)
    counts = _change_counts(outputs)
    sentence += _change_clause(outputs, counts)
    guidance_ids = _ordered_guidance_ids(catalogue, set(episodes["guidance_id"]))
    return ReportPage(
        title="NICE procedure coding audit",
        run=_run_info(outputs, catalogue, generated, guidance_ids),
        sentence=sentence,
        numbers=numbers,
        guidance=_guidance_rows(episodes, catalogue),
        rules=_rule_rows(findings),
        severities=_severity_rows(findings),
        breakdowns=_breakdowns(outputs, findings, episodes),
        changes=_changes(outputs, findings, episodes, catalogue, anchors, findings_cap, counts),
        worksheet=worksheet,
        superseded=_superseded(episodes, catalogue, anchors, worksheet_cap),
        findings=findings_table,
        data_quality=_data_quality(outputs, findings, sequences, rejected, anchors),
        filters=_filters(findings, episodes, catalogue, history),
        files={"findings": FINDINGS_CSV, "episodes": EPISODES_CSV, "rejected": REJECTED_CSV,
               "changes": CHANGES_CSV, "trend": TREND_CSV},
        size_note=size_note,
    )
