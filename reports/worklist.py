"""The worklist: one row per episode to act on, with its recorded-vs-expected card on demand.

Two lists are built from the same findings and episode statuses:

- the worklist: every episode with an error or a warning (from a guidance's code set or from the
  general OPCS-4 rules), or a non-compliant pair; errors first;
- the "check against the replacement" list: episodes whose only reason to be looked at is that
  they follow guidance NICE has replaced. They are never mixed into what coders must fix.

Each list is capped per reason (rule, or status for a pair without a finding), with true totals.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from functools import cache, lru_cache
from pathlib import Path

import polars as pl

from audit.catalogue import Catalogue
from audit.rules import ERROR, SUPERSEDED, WARNING
from reports import align
from reports.common import (
    LINE_LABELS,
    NON_COMPLIANT,
    STATUS_LABELS,
    WORKSHEET_STATUSES,
    as_int,
    cap_rows,
    capped_per,
    rule_title,
)
from reports.page import (
    AlignedLine,
    Labelled,
    PairView,
    SequenceCode,
    Worksheet,
    WorksheetCard,
)
from reports.text import number

FIX, CHECK = "worklist", "check"
TREATMENT_FUNCTIONS = Path(__file__).resolve().parent / "treatment_functions.csv"
# Columns the report shows on rows and cards when the run carried them (audit.layouts names them).
EPISODE_EXTRAS = ("local_id", "coder")


@cache
def treatment_functions() -> dict[str, tuple[str, str]]:
    """Treatment function code -> (NHS Data Dictionary name, confidence V / I / U)."""
    with TREATMENT_FUNCTIONS.open(encoding="utf-8", newline="") as handle:
        return {row["code"]: (row["name"], row["confidence"]) for row in csv.DictReader(handle)}


def specialty_name(code: str) -> str:
    """"Trauma and Orthopaedic Service", with "(name not verified)" where the table says so."""
    name, confidence = treatment_functions().get(code.strip(), ("", ""))
    if not name:
        return ""
    return name if confidence == "V" else f"{name} (name not verified)"


def reasons(findings: pl.DataFrame, episodes: pl.DataFrame) -> pl.DataFrame:
    """(episode_id, reason, severity, list): why each episode is listed, and in which list.

    An episode is in the worklist when any reason is an error or a warning; it is on the
    superseded list when every reason is superseded guidance."""
    by_rule = findings.select("episode_id", pl.col("rule_id").alias("reason"), "severity")
    by_status = (
        episodes.filter(pl.col("status").is_in(WORKSHEET_STATUSES))
        .join(by_rule, on="episode_id", how="anti")
        .select(
            "episode_id",
            pl.concat_str(pl.lit("status: "), pl.col("status")).alias("reason"),
            pl.when(pl.col("status") == NON_COMPLIANT).then(pl.lit(ERROR)).otherwise(pl.lit(SUPERSEDED))
            .alias("severity"),
        )
    )
    frame = pl.concat([by_rule, by_status])
    return (
        frame.with_columns(
            pl.when((pl.col("severity") == SUPERSEDED).all().over("episode_id"))
            .then(pl.lit(CHECK)).otherwise(pl.lit(FIX)).alias("list"),
            (pl.col("severity") == ERROR).any().over("episode_id").alias("has_error"),
        )
        .unique(["episode_id", "reason"])
        .sort("reason", pl.col("has_error").not_(), "episode_id")
    )


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


@lru_cache(maxsize=4096)
def _aligned(actual: str, expected: str) -> tuple[AlignedLine, ...]:
    """Recorded against expected, line by line. Cached: in a big run thousands of cards share a
    few hundred (recorded, expected) sequences, and the alignment was half the cost of a card."""
    return tuple(
        AlignedLine(line.recorded, line.expected, line.state, LINE_LABELS[line.state],
                    line.state != align.OK)
        for line in align.align(actual, expected)
    )


def _pair_view(r: dict) -> PairView:
    lines = _aligned(r["actual_sequence"], r["expected_sequence"])
    return PairView(
        guidance_id=r["guidance_id"], code_set=r["code_set"], status=r["status"],
        status_label=STATUS_LABELS.get(r["status"], r["status"]),
        episode_date=r["episode_date"], date_source=r["date_source"].replace("_", " "),
        errors=r["errors"], warnings=r["warnings"], lines=lines,
    )


def _carried(row: dict, columns: tuple[str, ...]) -> tuple[Labelled, ...]:
    return tuple(Labelled(c.removeprefix("carry:"), row.get(c) or "") for c in columns)


def _first(rows: list[dict], column: str) -> str:
    return next((r.get(column) or "" for r in rows if r.get(column)), "")


def build_lists(bundle, catalogue: Catalogue, cap: int, finding_row) -> tuple[Worksheet, Worksheet, dict[str, str]]:
    """(worklist, superseded-only list, episode id -> card anchor), from a run's bundle
    (reports.bundle): its sample of reasons holds every reason of each episode listed at the
    bundle's cap, so the first `cap` per reason of it are the first `cap` of the whole run."""
    why = bundle["reasons"]
    chosen = {kind: capped_per(why.filter(pl.col("list") == kind), "reason", cap) for kind in (FIX, CHECK)}
    order = {
        kind: list(dict.fromkeys(
            frame.sort(pl.col("has_error").not_(), "episode_id")["episode_id"].to_list()))
        for kind, frame in chosen.items()
    }
    anchors = {eid: f"ep-{n}" for n, eid in enumerate(order[FIX] + order[CHECK], start=1)}
    wanted = pl.DataFrame({"episode_id": list(anchors)}, schema={"episode_id": pl.String})
    carried = tuple(bundle.facts["carried"])

    def grouped(frame: pl.DataFrame) -> dict[str, list[dict]]:
        groups: dict[str, list[dict]] = defaultdict(list)
        for row in frame.join(wanted, on="episode_id", how="semi").iter_rows(named=True):
            groups[row["episode_id"]].append(row)
        return groups

    card_findings = grouped(bundle["card_findings"].sort(as_int("position"), "rule_id", "guidance_id", "row",
                                                         nulls_last=True))
    card_pairs = grouped(bundle["card_episodes"].sort("guidance_id"))
    card_sequences = grouped(bundle["card_sequences"].sort(as_int("position")))

    def card(episode_id: str) -> WorksheetCard:
        found, pairs = card_findings.get(episode_id, []), card_pairs.get(episode_id, [])
        flags: dict[str, list[str]] = defaultdict(list)
        levels: dict[str, set[str]] = defaultdict(set)
        for f in found:
            mark = f["rule_id"] if f["severity"] in (ERROR, SUPERSEDED) else f"{f['rule_id']} ({f['severity']})"
            if f["position"] and mark not in flags[f["position"]]:
                flags[f["position"]].append(mark)
                levels[f["position"]].add(f["severity"])
        rows = pairs + found
        rules = {}
        for f in found:
            rules.setdefault(f["rule_id"], f["severity"])
        positions = sorted({f["position"] for f in found if f["position"]},
                           key=lambda p: (not p.isdigit(), int(p) if p.isdigit() else 0, p))
        specialty = _first(rows, "specialty")
        guidance = sorted({p["guidance_id"] for p in pairs} | {f["guidance_id"] for f in found if f["guidance_id"]})
        return WorksheetCard(
            anchor=anchors[episode_id], episode_id=episode_id, provider=_first(rows, "provider"),
            specialty=specialty, specialty_name=specialty_name(specialty), consultant=_first(rows, "consultant"),
            source_file=_first(rows, "source_file"), local_id=_first(rows, "local_id"), coder=_first(rows, "coder"),
            date=pairs[0]["episode_date"] if pairs else _first(found, "episode_date"),
            errors=number(sum(f["severity"] == ERROR for f in found)),
            warnings=number(sum(f["severity"] == WARNING for f in found)),
            worst=next((s for s in (ERROR, SUPERSEDED, WARNING) if any(f["severity"] == s for f in found)),
                       ERROR if any(p["status"] == NON_COMPLIANT for p in pairs) else SUPERSEDED),
            rules=tuple(Labelled(rule_id, rule_title(rule_id), severity) for rule_id, severity in rules.items()),
            positions=", ".join(positions),
            sequence=_sequence(card_sequences.get(episode_id, []), flags, levels, catalogue),
            pairs=tuple(_pair_view(p) for p in pairs),
            findings=tuple(finding_row(f, anchors) for f in found),
            carried=_carried(rows[0], carried) if rows else (),
            guidance_tokens=" ".join(guidance),
            rule_tokens=" ".join(sorted(rules)),
            severity_tokens=" ".join(sorted({f["severity"] for f in found})),
            status_tokens=" ".join(sorted({p["status"] for p in pairs})),
            pair_tokens=" ".join(sorted(f"{p['guidance_id']}:{p['status']}" for p in pairs)),
            change_tokens=" ".join(sorted({f["change"] for f in found if f["change"]})),
        )

    totals = bundle["reason_totals"]

    def listing(kind: str) -> Worksheet:
        cards = tuple(card(eid) for eid in order[kind])
        total = int(bundle.facts["list_episodes"].get(kind, 0))
        per_reason = dict(totals.filter(pl.col("list") == kind).select("reason", "episodes").iter_rows())
        # per reason: episodes with it, and how many of those are listed (chosen for any reason)
        shown = why.filter(pl.col("list") == kind).join(chosen[kind].select("episode_id").unique(),
                                                          on="episode_id", how="semi")
        return Worksheet(
            kind=kind, cards=cards, total=number(total), shown=number(len(cards)), cap=number(cap),
            capped=len(cards) < total, per_rule=cap_rows(per_reason, shown, "reason"), total_count=total,
            show_local_id=any(c.local_id for c in cards), show_coder=any(c.coder for c in cards),
        )

    return listing(FIX), listing(CHECK), anchors
