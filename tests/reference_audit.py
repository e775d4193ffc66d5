"""A deliberately simple reference implementation of the rules, for the equivalence test.

Plain Python over one episode at a time, read with the csv module, written straight from the
rule definitions in README.md. It is slow on purpose and shares nothing with the fast path but
the catalogue objects. Only the HES wide layout is supported.
"""

from __future__ import annotations

import csv
import re
from datetime import date
from pathlib import Path

from audit.catalogue import Catalogue, CodeSet, Component, Guidance
from audit.codes import SPINAL_CATEGORIES, chapter_of

FULL, LOCAL = re.compile(r"^[A-HJ-Z][0-9]{3}$"), re.compile(r"^[A-HJ-Z][0-9]{3}[0-9A-Z]$")
PLACEHOLDERS = {date(1800, 1, 1), date(1801, 1, 1)}


def normalise(raw: str | None) -> tuple[str, str | None]:
    """(kind, code)"""
    value = re.sub(r"[\s.]", "", (raw or "").upper())
    if value == "":
        return "blank", None
    if value in ("-", "&"):
        return {"-": "no-operation", "&": "not-known"}[value], None
    if FULL.match(value) or LOCAL.match(value):
        return "procedure", value[:4]
    return "invalid", None


def parse_date(raw: str | None) -> date | None:
    text = (raw or "").strip()
    try:
        if re.match(r"^\d{4}-\d{2}-\d{2}", text):
            parsed = date.fromisoformat(text[:10])
        elif re.match(r"^\d{1,2}/\d{1,2}/\d{4}$", text):
            d, m, y = text.split("/")
            parsed = date(int(y), int(m), int(d))
        else:
            return None
    except ValueError:
        return None
    return None if parsed in PLACEHOLDERS else parsed


def matches(patterns, code: str) -> bool:
    return any(p.matches(code) for p in patterns)


def is_levels(code: str) -> bool:
    return code.startswith("V55")


def is_subsidiary(code: str) -> bool:
    return chapter_of(code) in "YZ"


def is_action(code: str) -> bool:
    return not is_subsidiary(code) and not is_levels(code)


def is_site(code: str) -> bool:
    return chapter_of(code) == "Z" and not code.startswith("Z94")


def is_spinal(code: str) -> bool:
    return code[:3] in SPINAL_CATEGORIES


def rank(code: str) -> int:
    if is_levels(code):
        return 1
    if chapter_of(code) == "Y":
        return 2
    if code.startswith("Z94"):
        return 4
    return 3 if chapter_of(code) == "Z" else 0


def accepted(component: Component):
    return list(component.patterns) + list(component.accepts)


def severity(component: Component, usual: str = "error") -> str | None:
    return {"required": usual, "conditional": "warning"}.get(component.requirement)


def after(codes, p: int):
    """(every code after position p, its qualifiers: those before the next action code)"""
    following = codes[p + 1:]
    qualifiers = []
    for pos, code in following:
        if is_action(code):
            break
        qualifiers.append((pos, code))
    return following, qualifiers


def occurrence_findings(guidance: Guidance, code_set: CodeSet, codes, p: int, episode_date, undated):
    """codes: [(position, code)] valid codes in order; p: index into codes of the index code."""
    position = codes[p][0]
    following, qualifiers = after(codes, p)
    found = []
    for component in code_set.components:
        look = following if component.scope == "episode" else qualifiers
        if component.role == "levels":
            nxt = following[0] if following else None
            if severity(component) and not is_spinal(codes[p][1]) and not (nxt and nxt[1].startswith("V55")):
                found.append(("levels-not-second", severity(component), nxt[0] if nxt else position))
            if nxt and nxt[1] == "V559":
                found.append(("levels-unspecified", "warning", nxt[0]))
        elif component.role in ("method", "approach", "companion"):
            if component.identifies:
                continue
            rule = {"method": "method-missing", "approach": "approach-missing", "companion": "companion-missing"}[component.role]
            if severity(component) and not any(matches(accepted(component), c) for _, c in look):
                found.append((rule, severity(component), position))
        elif component.role == "site":
            sites = [(pos, c) for pos, c in look if is_site(c) and matches(accepted(component), c)]
            if severity(component) and not component.identifies and not sites:
                found.append(("site-missing", severity(component), position))
            if component.recommended and sites and not any(matches(component.recommended, c) for _, c in sites):
                found.append(("site-not-recommended", "warning", sites[0][0]))
    if any(p.prefix.startswith("Y53") for c in code_set.of_role("approach") for p in c.patterns):
        y539 = [pos for pos, c in qualifiers if c == "Y539"]
        if y539:
            found.append(("approach-unspecified", "warning", y539[0]))
    ranks = [rank(c) for _, c in qualifiers]
    for i in range(1, len(ranks)):
        if ranks[i] < ranks[i - 1]:
            found.append(("qualifier-order", "error", qualifiers[i][0]))
            break
    return found


def timing(guidance: Guidance, episode_date: date, as_of: date) -> str:
    if episode_date > as_of:
        return "future"
    if episode_date < guidance.published.start:
        return "predates"
    if episode_date < guidance.published.end:
        return "date-uncertain"
    if guidance.replaced_by and guidance.replaced_on:
        if episode_date >= guidance.replaced_on.end:
            return "superseded"
        if episode_date >= guidance.replaced_on.start:
            return "date-uncertain"
    return "in-force"


def dated_findings(guidance: Guidance, position: int, when: str, undated: bool):
    found = []
    if undated:
        found.append(("date-missing", "warning", position))
    if when == "superseded":
        found.append(("superseded-guidance", "superseded", position))
    return found


def identified(code_set: CodeSet, codes, p: int) -> bool:
    following, qualifiers = after(codes, p)
    for component in code_set.components:
        if component.identifies and component.role == "diagnosis":
            return False
        if component.identifies and component.role != "index":
            look = following if component.scope == "episode" else qualifiers
            if not any(matches(accepted(component), c) for _, c in look):
                return False
    return not any(matches(code_set.not_with, c) for _, c in qualifiers)


def operation(code_set: CodeSet, codes, p: int) -> tuple[int, int]:
    """(first, last) position of the index code's operation, as README 'The audit' defines it."""
    start = 1 if not any(is_action(c) for _, c in codes[:p]) else codes[p][0]

    def end_of(i):
        later = [pos for pos, c in codes[i + 1:] if is_action(c)]
        return later[0] - 1 if later else 999

    end = end_of(p)
    companions = [c for c in code_set.of_role("companion") if c.scope == "episode"]
    for i in range(p + 1, len(codes)):
        if any(matches(accepted(c), codes[i][1]) for c in companions):
            end = max(end, end_of(i))
    return start, end


def slot_findings(episode: str, slots):
    """The rules over every procedure field (README: generic rules)."""
    found = set()
    real = [s[1] in ("procedure", "invalid") for s in slots]
    for i, (n, kind, code, _) in enumerate(slots):
        before, later = any(real[:i]), sum(real[i + 1:])
        first = i == 0
        if first and code and (is_subsidiary(code) or is_levels(code)):
            found.add((episode, None, "subsidiary-code-primary", n, "error"))
        if first and kind == "no-operation" and later:
            found.add((episode, None, "no-operation-with-codes", n, "error"))
        if first and kind == "not-known" and later:
            found.add((episode, None, "not-known-with-codes", n, "error"))
        if not first and kind == "no-operation" and before and later:
            found.add((episode, None, "no-operation-between-codes", n, "error"))
        if kind == "invalid":
            found.add((episode, None, "invalid-code", n, "error"))
    return found


def spinal_findings(codes):
    """(rule, position, operation position) of the V55 rule over every spinal operation."""
    found = []
    operation_position = None
    for i, (position, code) in enumerate(codes):
        if is_action(code):
            operation_position = position
        nxt = codes[i + 1] if i + 1 < len(codes) else None
        if is_spinal(code) and not (nxt and is_levels(nxt[1])):
            found.append(("levels-not-second", nxt[0] if nxt else position, position))
        if is_levels(code) and i > 0 and is_levels(codes[i - 1][1]):
            found.append(("levels-repeated", position, operation_position))
    return found


def reference_audit(path: Path, catalogue: Catalogue, as_of: date):
    """(set of findings (episode, guidance, rule, position, severity), {(episode, guidance): status})"""
    findings, statuses = set(), {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            episode = row["EPIKEY"].strip()
            slots = []
            for n in range(1, 25):
                kind, code = normalise(row.get(f"OPERTN_{n:02d}"))
                if kind != "blank":
                    slots.append((n, kind, code, row.get(f"OPDATE_{n:02d}")))
            generic = slot_findings(episode, slots)
            episode_dates = [parse_date(row.get(c)) for c in ("EPIEND", "EPISTART", "ADMIDATE")]
            slot_dates = [(n, parse_date(d)) for n, _, _, d in slots]
            if slots and any(d and d > as_of for d in episode_dates + [d for _, d in slot_dates]):
                first_future = next((n for n, d in slot_dates if d and d > as_of), None)
                generic.add((episode, None, "date-in-future", first_future, "warning"))
            codes = [(n, code) for n, kind, code, _ in slots if kind == "procedure"]
            dates = {n: parse_date(d) for n, _, _, d in slots}
            fallback = next((d for d in (parse_date(row.get(c)) for c in ("EPIEND", "EPISTART", "ADMIDATE")) if d), None)
            judged_at = {}  # operation position -> guidance ids judged there
            pairs = {}
            for guidance in catalogue.auditable():
                pair = []
                for p, (position, code) in enumerate(codes):
                    for code_set in guidance.code_sets:
                        if matches(code_set.index.patterns, code) and identified(code_set, codes, p):
                            _, qualifiers = after(codes, p)
                            qualifier_date = next((dates[q] for q, _ in qualifiers if dates.get(q)), None)
                            episode_date = dates.get(position) or qualifier_date or fallback
                            undated = episode_date is None
                            episode_date = episode_date or as_of
                            when = timing(guidance, episode_date, as_of)
                            found = dated_findings(guidance, position, when, undated)
                            if when in ("in-force", "superseded"):
                                found += occurrence_findings(guidance, code_set, codes, p, episode_date, undated)
                                judged_at.setdefault(position, []).append(guidance.id)
                            findings.update((episode, guidance.id, r, pos, s) for r, s, pos in found)
                            pair.append((position, when, found, operation(code_set, codes, p)))
                            break
                if pair:
                    pairs[guidance.id] = pair
            for rule, position, operation_position in spinal_findings(codes):
                for guidance_id in judged_at.get(operation_position, [None]):
                    findings.add((episode, guidance_id, rule, position, "error"))
            findings.update(generic)
            generic_errors = {(r, pos) for e, g, r, pos, s in findings if e == episode and g is None and s == "error"}
            for guidance_id, pair in pairs.items():
                _, when, _, _ = min(pair, key=lambda item: item[0])
                own = {(r, pos) for e, g, r, pos, s in findings if e == episode and g == guidance_id and s == "error"}
                on_operation = {(r, pos) for r, pos in generic_errors
                                if any(start <= pos <= end for _, _, _, (start, end) in pair)}
                if any(w == "superseded" for _, w, _, _ in pair):
                    status = "superseded"
                elif when == "predates":
                    status = "predates-guidance"
                elif when in ("date-uncertain", "future"):
                    status = "date-uncertain"
                elif own or on_operation:
                    status = "non-compliant"
                else:
                    status = "compliant"
                statuses[(episode, guidance_id)] = status
    return findings, statuses
