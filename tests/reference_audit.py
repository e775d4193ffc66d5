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


def is_action(code: str) -> bool:
    return code[0] not in "YZ" and not code.startswith("V55")


def is_site(code: str) -> bool:
    return code[0] == "Z" and not code.startswith("Z94")


def rank(code: str) -> int:
    if code.startswith("V55"):
        return 1
    if code[0] == "Y":
        return 2
    if code.startswith("Z94"):
        return 4
    return 3 if code[0] == "Z" else 0


def accepted(component: Component):
    patterns = list(component.patterns)
    if component.role == "approach" and any(p.prefix.startswith("Y53") for p in patterns):
        patterns.append(type(patterns[0])("category", "Y68", "Y68.-"))
    return patterns


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
            if severity(component) and not (nxt and nxt[1].startswith("V55")):
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
            sites = [(pos, c) for pos, c in look if is_site(c) and matches(component.patterns, c)]
            if severity(component) and not sites:
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
    if undated:
        found.append(("date-missing", "warning", position))
    if guidance.replaced_by and guidance.replaced_on and episode_date >= guidance.replaced_on.start:
        found.append(("superseded-guidance", "superseded", position))
    return found


def identified(code_set: CodeSet, codes, p: int) -> bool:
    following, qualifiers = after(codes, p)
    for component in code_set.components:
        if component.identifies and component.role != "index":
            look = following if component.scope == "episode" else qualifiers
            if not any(matches(component.patterns, c) for _, c in look):
                return False
    return True


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
            first = next((s for s in slots if s[0] == 1), None)
            if first and first[2] and first[2][0] in "YZ":
                findings.add((episode, None, "subsidiary-code-primary", 1, "error"))
            if first and first[1] == "no-operation" and any(s[0] > 1 and s[1] in ("procedure", "invalid") for s in slots):
                findings.add((episode, None, "no-operation-with-codes", 1, "error"))
            for n, kind, _, _ in slots:
                if kind == "invalid":
                    findings.add((episode, None, "invalid-code", n, "error"))
            codes = [(n, code) for n, kind, code, _ in slots if kind == "procedure"]
            dates = {n: parse_date(d) for n, _, _, d in slots}
            fallback = next((d for d in (parse_date(row.get(c)) for c in ("EPIEND", "EPISTART", "ADMIDATE")) if d), None)
            for guidance in catalogue.auditable():
                pair = []
                for p, (position, code) in enumerate(codes):
                    for code_set in guidance.code_sets:
                        if matches(code_set.index.patterns, code) and identified(code_set, codes, p):
                            episode_date = dates.get(position) or fallback
                            undated = episode_date is None
                            episode_date = episode_date or as_of
                            found = occurrence_findings(guidance, code_set, codes, p, episode_date, undated)
                            findings.update((episode, guidance.id, r, pos, s) for r, s, pos in found)
                            pair.append((position, episode_date, found))
                            break
                if pair:
                    _, episode_date, _ = min(pair, key=lambda item: item[0])
                    severities = [s for _, _, found in pair for _, s, _ in found]
                    if "superseded" in severities:
                        status = "superseded"
                    elif episode_date < guidance.published.start:
                        status = "predates-guidance"
                    elif "error" in severities:
                        status = "non-compliant"
                    else:
                        status = "compliant"
                    statuses[(episode, guidance.id)] = status
    return findings, statuses
