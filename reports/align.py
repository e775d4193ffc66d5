"""Line up a recorded code sequence with the expected one, for the worksheet's side-by-side view.

`episodes.csv` gives both as space-separated display text. The expected text mixes exact codes
(`V52.2`), categories (`V55.-`), alternatives (`Y75.1 or Y75.2`), placeholders (`Z site`),
conditional codes (`[Y53.- if done]`) and codes due later in the episode (`… V38.8`). We split it
into those parts, then align the two with a longest-common-subsequence match, so a missing code,
a code out of place and a wrong code each show on their own line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ATOM = r"(?:any Chapter [A-Z] code|a Chapter [A-Z] site code|Z site|[^\s\[\]]+)"
_ALTERNATIVES = rf"{_ATOM}(?: or {_ATOM})*"
_PART = re.compile(rf"…\s(?:\[[^\]]*\]|{_ALTERNATIVES})|\[[^\]]*\]|{_ALTERNATIVES}")
_EXACT = re.compile(r"^[A-Z][0-9]{2}\.[0-9]$")
_CATEGORY = re.compile(r"^[A-Z][0-9]{2}\.-$")
_CHAPTER = re.compile(r"^(?:any Chapter ([A-Z]) code|a Chapter ([A-Z]) site code)$")

OK, MISSING, OPTIONAL, EXTRA, DIFFERS, MISPLACED, LATER = (
    "ok", "missing", "optional", "extra", "differs", "misplaced", "later")


@dataclass(frozen=True)
class Expected:
    text: str  # as shown
    atoms: tuple[str, ...]  # the alternatives it accepts
    conditional: bool  # "[… if done]"
    later: bool  # "… X": due later in the episode, not among the qualifiers


@dataclass(frozen=True)
class Line:
    recorded: str  # "" when nothing was recorded here
    expected: str  # "" when nothing was expected here
    state: str  # ok | missing | optional | extra | differs | misplaced | later


def parse_expected(text: str) -> list[Expected]:
    parts = []
    for match in _PART.finditer(text or ""):
        part = match.group(0)
        later = part.startswith("…")
        inner = part[1:].strip() if later else part
        conditional = inner.startswith("[")
        if conditional:
            inner = re.sub(r"\s+if done$", "", inner.strip("[]"))
        parts.append(Expected(part, tuple(inner.split(" or ")), conditional, later))
    return parts


def accepts(atom: str, code: str) -> bool:
    """Does an expected atom accept a recorded display code?"""
    if _EXACT.match(atom):
        return code == atom
    if _CATEGORY.match(atom):
        return code[:4] == atom[:4]
    if atom == "Z site":
        return code.startswith("Z") and not code.startswith("Z94")
    if m := _CHAPTER.match(atom):
        letter = m.group(1) or m.group(2)
        return code.startswith(letter) and not (m.group(2) and code.startswith("Z94"))
    return code == atom


def _fits(code: str, part: Expected) -> bool:
    return any(accepts(atom, code) for atom in part.atoms)


def align(actual: str, expected: str) -> list[Line]:
    recorded = (actual or "").split()
    wanted = parse_expected(expected)
    here = [p for p in wanted if not p.later]
    n, m = len(recorded), len(here)
    # lcs[i][j]: longest match of recorded[i:] with here[j:]
    lcs = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            lcs[i][j] = (lcs[i + 1][j + 1] + 1 if _fits(recorded[i], here[j])
                         else max(lcs[i + 1][j], lcs[i][j + 1]))
    lines: list[tuple[str, Expected | None, str]] = []
    extra: list[str] = []
    missing: list[Expected] = []

    def flush() -> None:
        # A wrong code where another was expected reads best on one line.
        for code, part in zip(extra, missing):
            lines.append((code, part, DIFFERS))
        lines.extend((code, None, EXTRA) for code in extra[len(missing):])
        lines.extend(("", p, OPTIONAL if p.conditional else MISSING) for p in missing[len(extra):])
        extra.clear()
        missing.clear()

    i = j = 0
    while i < n or j < m:
        if i < n and j < m and _fits(recorded[i], here[j]) and lcs[i][j] == lcs[i + 1][j + 1] + 1:
            flush()
            lines.append((recorded[i], here[j], OK))
            i, j = i + 1, j + 1
        elif j < m and (i == n or lcs[i][j + 1] >= lcs[i + 1][j]):
            missing.append(here[j])
            j += 1
        else:
            extra.append(recorded[i])
            i += 1
    flush()
    _pair_misplaced(lines)
    result = [Line(code, part.text if part else "", state) for code, part, state in lines]
    return result + [Line("", p.text, LATER) for p in wanted if p.later]


def _pair_misplaced(lines: list[tuple[str, Expected | None, str]]) -> None:
    """A code recorded in one place and expected in another: mark both lines as misplaced."""
    used: set[int] = set()
    for k, (_, part, state) in enumerate(lines):
        if state not in (MISSING, OPTIONAL):
            continue
        for e, (code, _, other) in enumerate(lines):
            if other == EXTRA and e not in used and _fits(code, part):
                used.add(e)
                lines[k] = ("", part, MISPLACED)
                lines[e] = (code, None, MISPLACED)
                break
