"""Catalogue import: a NICE guidance page (saved from a browser, or its text) -> a draft TOML entry.

A NICE interventional procedures guidance page carries a coding block headed "OPCS4.6 Code(s)"
(older renders) or "Coding recommendations" (newer ones, also "Clinical classification codes"):
one OPCS-4 code per line with its title as printed, then notes on sequencing (V55 "assigned in
second place each time a spinal operation is coded"; Y53 "used as secondary codes to classify
interventions that are percutaneous and require some form of image control").
See ../shared/reference/nice-coding.md section 1 and the seed pages.

The draft records what the page says. What the importer had to infer (which code is the index,
whether image control is required) is listed under `uncertain` with [I]; dates the page does not
give are flagged `unverified`; and `review` lists what a person must still decide before the draft
joins the catalogue. Nothing here guesses silently.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from audit.catalogue import Catalogue, load_catalogue, parse_partial_date
from audit.errors import UserError

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
_MONTH = "|".join(MONTHS)

# Where the coding block starts, and the headings that end it.
_BLOCK_START = re.compile(
    r"^(?:OPCS\s*-?\s*4(?:\.(?P<version>\d+))?\s*codes?(?:\s*\(s\))?|Coding recommendations|"
    r"Clinical classification codes)\s*:?\s*$",
    re.IGNORECASE,
)
_BLOCK_END = re.compile(
    r"^(?:Your responsibility|Get involved|Description|Recommendations|About this guidance|"
    r"Information for the public|Evidence|Committee considerations|Sources of evidence|"
    r"This page was last updated|Page last (?:reviewed|updated)|SNOMED CT)\b",
    re.IGNORECASE,
)
_ICD10_HEADING = re.compile(r"^ICD\s*-?\s*10(?:\s+codes?(?:\s*\(s\))?)?\s*:?\s*$", re.IGNORECASE)
# A code as printed: V52.2, V55.-, the page's typographic noise "V55. 1", or undotted V522; pages
# also run "or" into the next code ("Y75.2 Laparoscopic approach ... NEC orY75.4", NICE IPG136).
_CODE = re.compile(r"(?:(?<![A-Za-z0-9])|(?<=or))([A-HJ-Z][0-9]{2})(?:\.\s?([0-9-])|([0-9]))(?![0-9])")
_ICD10_CODE = re.compile(r"\b([A-Z][0-9]{2})(?:\.([0-9X-]))?(?![0-9])")
# "Site code from Chapter Z", "Plus a Chapter 'Z' code to identify the body site treated".
_SITE_LINE = re.compile(r"^(?:plus\s+)?(?:a\s+)?site code\b|\bchapter\s*['‘’]?z['‘’]?\s+code\b.*\bsite\b|"
                        r"\bsite\b.*\bchapter\s*['‘’]?z\b", re.IGNORECASE)
_CONDITIONAL = re.compile(
    r"\b(?:if used|if carried out|if performed|may (?:also )?be (?:added|assigned)|where used)\b|\(if\b[^)]*\)",
    re.IGNORECASE)
_ADDITIONAL = re.compile(r"\b(?:is|are) also assigned\b|\bassigned in addition\b|\bmay also be (?:assigned|added)\b|"
                         r"\bcan be assigned in addition\b", re.IGNORECASE)
_ONE_OF = re.compile(r"\bone of the following\b", re.IGNORECASE)
# A heading inside the block that starts another code set: "Transluminal approach:", "Stage 2".
_SEGMENT = re.compile(r"^(?:stage\s*[0-9]+|[a-z /-]{0,40}\bapproach(?:es)?)\s*:?\s*$", re.IGNORECASE)
_INTRO = re.compile(r"\bone of the following\b|:\s*$|\bfrom\s*:|\bassigned in addition\b", re.IGNORECASE)
_NOT_CODABLE = re.compile(r"cannot be expressed in the OPCS-4 classification", re.IGNORECASE)
_CASE_BY_CASE = re.compile(r"case by case basis", re.IGNORECASE)
_LEVELS_NOTE = re.compile(r"V55\.?-?.{0,40}assigned in second place", re.IGNORECASE | re.DOTALL)
_IMAGE_NOTE = re.compile(r"Y53\.?-?.{0,40}secondary codes.{0,80}percutaneous.{0,60}image control",
                         re.IGNORECASE | re.DOTALL)
_OWN_ID = (
    re.compile(r"nice\.org\.uk/guidance/(IPG[0-9]{1,4})\b", re.IGNORECASE),
    re.compile(r"\((IPG[0-9]{1,4})\)"),
    re.compile(r"NICE interventional procedures? guidance\s+\[?(?:IPG)?([0-9]{1,4})\]?", re.IGNORECASE),
    re.compile(r"^(?:Interventional procedures? (?:guidance )?)?\[?(IPG[0-9]{1,4})\]?\s*$",
               re.IGNORECASE | re.MULTILINE),
)
_TITLE = re.compile(
    r"(?:has )?(?:now )?issued (?:full )?guidance to the NHS in England, Wales, Scotland and Northern Ireland on\s+"
    r"(?:the use of\s+)?(?P<title>.+?)(?:,?\s+in\s+(?P<month>" + _MONTH + r"),?\s+(?P<year>[0-9]{4}))?\s*\.\s",
    re.IGNORECASE | re.DOTALL,
)
_PUBLISHED = re.compile(
    r"\b(?:Published|Issued|Issue date)\s*:?\s*(?:(?P<day>[0-9]{1,2})\s+)?(?P<month>" + _MONTH
    + r")\s+(?P<year>[0-9]{4})",
    re.IGNORECASE,
)
_REPLACES = re.compile(
    r"\b(?:It|This (?:document|guidance))\s+replaces\b[^.]*?"
    r"(?:interventional procedures? guidance|IPG)\s*(?:no\.?|number)?\s*(?P<number>[0-9]{1,4})"
    r"(?:\s*,\s*|\s*\(published\s+|\s+)?(?:(?P<month>" + _MONTH + r")\s+(?P<year>[0-9]{4}))?",
    re.IGNORECASE | re.DOTALL,
)
# Chapter Y categories that say how the organ was reached rather than what was done to it [I]:
# Y46-Y53 (approaches through the skull, spine, heart, abdomen, orifices; Y53 image control), Y68
# (other image control) and Y74-Y79 (minimal access, endoscopic and transluminal approaches).
# Everything else in Chapter Y (methods; Y70-Y71 temporary and staged operations) is a method.
_APPROACH_CATEGORIES = {f"Y{n}" for n in (*range(46, 54), 68, *range(74, 80))}


@dataclass
class CodeLine:
    code: str  # as printed, normalised to V52.2 / V55.- form
    title: str
    conditional: bool = False
    group: int = 0  # codes under the same "one of the following ...:" line (or joined by "or") share a group
    alternatives: bool = False  # the group's codes are read as "one of"
    follows: str | None = None  # the action code listed before it, if any
    segment: int = 0  # which code set of the page ("Transluminal approach:", "Stage 2"), 0 before any heading


@dataclass
class Draft:
    guidance_id: str
    source: str  # the page file
    text: str = ""  # the TOML written
    review: list[str] = field(default_factory=list)  # what a person must still check


# --- Reading the page -------------------------------------------------------------------------


class _TextOfHtml(HTMLParser):
    """The visible text of an HTML page, one block per line; table cells joined by spaces."""

    _BLOCKS = {"p", "div", "li", "ul", "ol", "tr", "table", "section", "article", "h1", "h2", "h3",
               "h4", "h5", "h6", "dt", "dd", "dl", "header", "footer", "nav", "main", "aside", "br",
               "caption", "thead", "tbody", "blockquote", "pre", "title"}
    _SKIP = {"script", "style", "noscript", "template", "svg"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.links: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")
        for name, value in attrs:
            if name in ("href", "content") and value and "nice.org.uk/guidance/" in value.lower():
                self.links.append(value)

    def handle_endtag(self, tag):
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._skipping:
            self.parts.append(data)


def page_text(raw: str) -> tuple[str, list[str]]:
    """(text, guidance links): HTML is reduced to its text; text is taken as it is."""
    if re.search(r"<\s*(?:html|body|p|div|li|table|h[1-6])\b", raw[:5000], re.IGNORECASE):
        parser = _TextOfHtml()
        parser.feed(raw)
        parser.close()
        text, links = "".join(parser.parts), parser.links
    else:
        text, links = raw, []
    lines = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ").split("\n"):
        line = re.sub(r"^[\s•·*\-–]+(?=\S)", "", line)  # bullets and list dashes
        lines.append(re.sub(r"\s+", " ", line).strip())
    return "\n".join(lines), links


def _code_spelling(m: re.Match) -> str:
    last = m.group(2) if m.group(2) is not None else m.group(3)
    return f"{m.group(1)}.{last}"


def _split_codes(line: str) -> tuple[list[CodeLine], bool]:
    """A line that starts with a code: (one or more codes, each with the title printed after it;
    whether they are joined by "or", so alternatives)."""
    matches = list(_CODE.finditer(line))
    out, joined_by_or = [], False
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(line)
        title = line[m.end():end].strip(" ,;:")
        if i + 1 < len(matches) and re.search(r"\bor\s*$", title, re.IGNORECASE):
            joined_by_or = True
        title = re.sub(r"\s*\b(?:and|plus|or)\s*$", "", title, flags=re.IGNORECASE).strip()
        title = re.sub(r"\s*\((?:if\b[^)]*|where used)\)\s*$", "", title, flags=re.IGNORECASE)
        out.append(CodeLine(_code_spelling(m), title))
    return out, joined_by_or


@dataclass
class _Block:
    heading: str = ""
    opcs_version: str | None = None
    codes: list[CodeLine] = field(default_factory=list)
    site_from_chapter_z: bool = False
    notes: list[str] = field(default_factory=list)
    icd10: list[str] = field(default_factory=list)
    segments: dict[int, str] = field(default_factory=dict)  # segment -> its heading, as the code set's name
    not_codable: bool = False
    case_by_case: bool = False


def coding_block(text: str) -> _Block | None:
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if _BLOCK_START.match(line)), None)
    if start is None:
        return None
    heading = lines[start]
    block = _Block(heading=heading)
    if m := _BLOCK_START.match(heading):
        if m.group("version"):
            block.opcs_version = f"4.{m.group('version')}"
    in_icd10 = False
    group, alternatives, conditional_group, action, segment = 0, False, False, None, 0
    for line in lines[start + 1:]:
        if not line:
            continue
        if _BLOCK_END.match(line):
            break
        if _BLOCK_START.match(line):  # a second OPCS heading after an ICD-10 block
            in_icd10 = False
            continue
        if _ICD10_HEADING.match(line):
            in_icd10 = True
            continue
        if _NOT_CODABLE.search(line):
            block.not_codable = True
            block.case_by_case = block.case_by_case or bool(_CASE_BY_CASE.search(line))
            block.notes.append(line)
            continue
        if in_icd10 or re.match(r"^(?:In addition\b.*)?ICD-?10\b", line, re.IGNORECASE):
            if not in_icd10:  # an inline sentence naming ICD-10 codes
                block.notes.append(line)
            block.icd10 += [m.group(0) for m in _ICD10_CODE.finditer(line.split(":", 1)[-1])]
            continue
        if _SEGMENT.match(line):
            segment += 1
            block.segments[segment] = line.rstrip(": ").strip().lower()
            group, alternatives, conditional_group, action = group + 1, False, False, None
            continue
        if _ADDITIONAL.search(line) and _CODE.search(line):
            # "Note: U20.2 Transoesophageal echocardiography is also assigned when TOE is used":
            # a code named in a sentence, coded only when what the sentence says applies.
            for m in _CODE.finditer(line):
                rest = re.split(r"\s+(?:is|are|can|may|would|should|also|plus)\b", line[m.end():], maxsplit=1)[0]
                block.codes.append(CodeLine(_code_spelling(m), rest.strip(" ,;:."), conditional=True,
                                            group=-len(block.codes) - 1, follows=action, segment=segment))
            block.notes.append(line)
            continue
        code_at = _CODE.search(line)
        intro = line[:code_at.start()] if code_at else line
        if not _CODE.match(line) and _INTRO.search(intro) and not intro.lower().startswith("note"):
            # "One of the following ...:", "Plus a relevant code ... from:", "Or one of ...:",
            # "If ... the following codes are assigned in addition:" introduce the codes after them.
            if not re.match(r"^or\b", intro, re.IGNORECASE):  # "Or one of ...": more alternatives
                group += 1
            alternatives = bool(_ONE_OF.search(intro)
                                or re.search(r"\bfrom\s*:|\ba relevant code\b|^or\b", intro, re.IGNORECASE))
            conditional_group = bool(re.match(r"^if\b", intro, re.IGNORECASE))
            if code_at:
                line = line[code_at.start():]
            else:
                continue
        if _SITE_LINE.search(line) and not _CODE.match(line):
            block.site_from_chapter_z = True
            continue
        if _CODE.match(line) and not re.match(r"^[A-Z][0-9]{2}\.?\s?[0-9-]\s*(?:is|are)\b", line):
            entries, joined_by_or = _split_codes(line)
            # "Y75.2 ... or Y75.4 ...": one of them, in a group of their own.
            line_group = -len(block.codes) - 1 if joined_by_or else group
            if _CONDITIONAL.search(line) or conditional_group:
                entries[-1].conditional = True
            for entry in entries:
                entry.group, entry.follows, entry.segment = line_group, action, segment
                entry.alternatives = alternatives or joined_by_or
                if conditional_group:
                    entry.conditional = True
                if _role(entry.code) == "action":
                    action = entry.code
            block.codes += entries
            continue
        if line.lower().startswith(("note", "codes within", "it is not possible")) or _CONDITIONAL.search(line):
            block.notes.append(line)
    # An ICD-10 block may stand beside the OPCS-4 one, before or after it: its codes look like
    # OPCS-4 codes (C78.7, V52.2), so they are read only under an ICD-10 heading.
    for i, line in enumerate(lines):
        if _ICD10_HEADING.match(line) and i < start:
            for following in lines[i + 1:start]:
                if not following:
                    continue
                if not _ICD10_CODE.match(following):
                    break
                block.icd10.append(_ICD10_CODE.match(following).group(0))
    return block


# --- From what the page says to an entry -------------------------------------------------------


def _role(code: str) -> str:
    chapter, category = code[0], code[:3]
    if category == "V55":
        return "levels"
    if chapter == "Y":
        return "approach" if category in _APPROACH_CATEGORIES else "method"
    if chapter == "Z" or chapter == "O" and code[1:3] == "16":
        return "site"
    return "action"


@functools.lru_cache(maxsize=1)
def _builtin() -> Catalogue:
    """The built-in catalogue: what the drafts are checked against (ids, titles, lineage, dates)."""
    return load_catalogue()


def _own_id(text: str, links: list[str], path: Path, replaced: set[str]) -> tuple[str | None, str]:
    """The page's guidance id and where it was found."""
    for pattern in _OWN_ID:
        for m in pattern.finditer("\n".join(links) + "\n" + text):
            gid = m.group(1).upper()
            gid = gid if gid.startswith("IPG") else f"IPG{gid}"
            if gid not in replaced:
                return gid, "read on the page"
    if m := re.search(r"ipg[-_ ]?([0-9]{1,4})", path.stem, re.IGNORECASE):
        return f"IPG{int(m.group(1))}", "taken from the file name"
    return None, ""


def _id_by_title(title: str, replaced: set[str]) -> str | None:
    """A built-in entry with the same title (not one this page replaces): the page is its source."""
    same = [g.id for g in _builtin().guidance.values()
            if g.title.casefold() == title.casefold() and g.id not in replaced]
    return same[0] if len(same) == 1 else None


def _published_elsewhere(gid: str, replaces: list[str], replaced_when: str | None,
                         flat: str) -> tuple[str, str, bool]:
    """(date, why, verified) for a page that prints no date: the built-in entry's own date, else the
    latest lower bound known — the replaced guidance's date the page gives, the copyright year, the
    nearest lower-numbered built-in guidance (numbers are given in order of publication) [I]."""
    builtin = _builtin().guidance
    if gid in builtin:
        own = builtin[gid]
        verified = "published" not in own.unverified
        return own.published.text, f"{own.published.text} is taken from the built-in {own.source_file}.", verified
    bounds: list[tuple[str, str]] = []
    if replaced_when:
        month, year = replaced_when.split()
        bounds.append((f"{year}-{MONTHS.index(month.title()) + 1:02d}",
                       f"the page dates {replaces[0]}, which it replaces, {replaced_when}"))
    if cm := re.search(r"©\s*NICE\s*([0-9]{4})", flat):
        bounds.append((cm.group(1), "the page's copyright year"))
    number = int(gid[3:])
    earlier = [g for g in builtin.values() if g.id.startswith("IPG") and int(g.id[3:]) < number]
    if earlier:
        nearest = max(earlier, key=lambda g: int(g.id[3:]))
        year = nearest.published.text[:4]
        bounds.append((year, f"{nearest.id}, the nearest earlier number in the catalogue, is from {year}"))
    if not bounds:
        raise UserError(f"NICE {gid}: the page prints no publication date and nothing bounds it: add it by hand")
    date, reason = max(bounds, key=lambda b: parse_partial_date(b[0]).start)
    return date, f"{date} is a lower bound only [I]: {reason}.", False


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _toml_list(values: list[str], indent: str = "") -> str:
    if not values:
        return "[]"
    if sum(len(v) for v in values) < 60:
        return "[" + ", ".join(_toml_string(v) for v in values) + "]"
    return "[\n" + "".join(f"{indent}    {_toml_string(v)},\n" for v in values) + f"{indent}]"


def _component(role: str, codes: list[str], **extra) -> str:
    parts = [f"role = {_toml_string(role)}", f"codes = {_toml_list(codes)}"]
    for key in ("requirement", "scope", "recommended", "note"):
        if key in extra and extra[key] is not None:
            value = extra[key]
            parts.append(f"{key} = {_toml_list(value) if isinstance(value, list) else _toml_string(value)}")
    return "    { " + ", ".join(parts) + " },"


def _components(codes: list[CodeLine], title: str, block: _Block, uncertain: list[str], review: list[str],
                notes: list[str]) -> list[str]:
    """The component lines of one code set, from the codes the page lists for it."""
    code_set: list[str] = []
    actions = [c for c in codes if _role(c.code) == "action"]
    first = actions[0]
    index = [c for c in actions if c.group == first.group] if first.alternatives else [first]
    companions = [c for c in actions if c not in index]
    index_codes = [c.code for c in index]
    if len(index) > 1:
        uncertain.append("The page lists the operation codes as alternatives ('one of the following'): "
                         "one index component [V].")
    if companions:
        uncertain.append(
            f"The page lists further operation codes ({', '.join(c.code for c in companions)}) besides the index "
            f"{' or '.join(index_codes)}: read as companion operations anywhere later in the episode [I]."
        )
        review.append("decide whether the further operation codes are alternatives or companion operations")
    code_set.append(_component("index", index_codes))
    for c in companions:
        code_set.append(_component("companion", [c.code], scope="episode",
                                   requirement="conditional" if c.conditional else None))
    # Qualifiers listed after a further operation describe that operation, not the index one.
    qualifiers = [c for c in codes if _role(c.code) != "action" and (c.follows is None or c.follows in index_codes)]
    detached = [c for c in codes if _role(c.code) != "action" and c not in qualifiers]
    if detached:
        uncertain.append(
            f"{', '.join(c.code for c in detached)} {'follows' if len(detached) == 1 else 'follow'} the further "
            f"operation {detached[0].follows}: not audited as part of this code set [I]."
        )
    levels = [c for c in qualifiers if _role(c.code) == "levels"]
    if levels:
        code_set.append(_component("levels", [c.code for c in levels]))
    units: list[list[CodeLine]] = []  # codes read as one component ("one of" groups), in page order
    for c in qualifiers:
        role = _role(c.code)
        if role not in ("method", "approach"):
            continue
        covering = next((u.code for unit in units for u in unit
                         if u.code.endswith(".-") and c.code.startswith(u.code[:3]) and u.code != c.code), None)
        if covering:
            # One recorded code fills at most one component (catalogue check): a code the page
            # names within a category it already lists is accepted by that category's component.
            uncertain.append(f"{c.code} lies within {covering}, which the page already lists: audited as "
                             f"{covering} [I].")
            continue
        same = next((u for u in units if c.alternatives and u[0].alternatives and u[0].group == c.group
                     and _role(u[0].code) == role), None)
        if same:
            same.append(c)
        else:
            units.append([c])
    for unit in units:
        codes_ = [c.code for c in unit]
        conditional = all(c.conditional for c in unit)
        role = _role(unit[0].code)
        if len(unit) > 1:
            uncertain.append(f"{' or '.join(codes_)} are read as alternatives for one {role} component [V].")
        if role == "method":
            code_set.append(_component("method", codes_, requirement="conditional" if conditional else None,
                                       note="if used" if conditional else None))
        elif all(code.startswith("Y53") for code in codes_):
            percutaneous = "percutaneous" in title.lower()
            if conditional:
                requirement, note = "conditional", "if used (the page)"
            elif percutaneous:
                requirement, note = None, "the procedure is percutaneous (title)"
            else:
                requirement, note = "conditional", "when done percutaneously under image control"
            code_set.append(_component("approach", codes_, requirement=requirement, note=note))
            uncertain.append(
                f"{' or '.join(codes_)} is {'required' if requirement is None else 'conditional'} [I]: "
                + ("the page says 'if used'." if conditional else
                   "the page's note ties Y53 to percutaneous interventions needing image control, and the title "
                   + ("says the procedure is percutaneous." if percutaneous else
                      "does not say the procedure is percutaneous, so a missing Y53 is a warning."))
            )
        else:
            code_set.append(_component("approach", codes_, requirement="conditional" if conditional else None))
    sites = [c.code for c in qualifiers if _role(c.code) == "site"]
    if sites:
        code_set.append(_component("site", ["chapter:Z"], recommended=sites))
        uncertain.append(
            f"The page names the site {', '.join(sites)}: any Chapter Z site code is required, and another "
            "site is only a warning [I]."
        )
    elif block.site_from_chapter_z:
        code_set.append(_component("site", ["chapter:Z"], note="site code from Chapter Z"))
    if block.icd10:
        code_set.append(_component("diagnosis", sorted(dict.fromkeys(block.icd10))))
        notes.append("ICD-10 codes given beside the OPCS-4 codes are recorded for readers, not audited.")
    categories = [code for code in index_codes if code.endswith(".-")]
    if categories:
        review.append(
            f"{', '.join(categories)} is a category: 'catalogue check' asks for the four-character codes of the "
            "procedure as the index (list the ones the page means)"
        )
    generic = [c.code for c in actions if c.code.endswith(".8") or c.title.upper().endswith(("NEC", "NOC"))]
    if generic:
        review.append(
            f"{', '.join(generic)} is a generic code (NEC or other specified): decide which other code "
            "identifies the procedure ('identifies', audit/guidance/README.md), or episodes coded for other "
            "procedures will be audited against this guidance"
        )
    return code_set


def _page_title(text: str, title_match: re.Match | None, uncertain: list[str]) -> str | None:
    """The title from "... has issued full guidance ... on TITLE.", else the page's first heading."""
    title = title_match.group("title").strip() if title_match else None
    if title is None:
        heading = next((line for line in text.split("\n")
                        if line and not _BLOCK_START.match(line) and not _CODE.match(line)), "")
        heading = re.sub(r"\s*\((?:IPG)?[0-9]+\)\s*$|\s*\|.*$", "", heading)
        if heading and len(heading) < 150 and not heading.endswith("."):  # a heading, not a sentence
            title = heading
            uncertain.append("The title is the page's first line, not its 'has issued guidance on' sentence [I].")
    return title[0].upper() + title[1:] if title else None


def _page_id(text: str, links: list[str], path: Path, guidance_id: str | None, title: str | None,
             replaces: list[str], uncertain: list[str], review: list[str]) -> str:
    """The guidance id: given, read on the page, from the file name, or a built-in entry's by title."""
    if guidance_id:
        gid, id_source = guidance_id.upper(), "given with --id"
    else:
        gid, id_source = _own_id(text, links, path, set(replaces))
    if gid is None and title:
        gid = _id_by_title(title, set(replaces))
        id_source = "matched by title to the built-in entry"
    if gid is None or not re.fullmatch(r"IPG[0-9]{1,5}", gid):
        raise UserError(
            f"{path}: no guidance id on the page or in the file name, and no built-in entry has its "
            "title: name the file ipgNNN.txt (or .html), or give --id with one page"
        )
    if id_source != "read on the page":
        uncertain.append(f"The id {gid} was {id_source}, not read on the page [I].")
        review.append(f"confirm the id {gid} ({id_source})")
    return gid


def _page_published(title_match: re.Match | None, flat: str) -> str | None:
    """The publication date the page prints ("... in November 2006.", "Published: 26 July 2017")."""
    if title_match and title_match.group("month"):
        return f"{title_match.group('year')}-{MONTHS.index(title_match.group('month').title()) + 1:02d}"
    if pm := _PUBLISHED.search(flat):
        day = f"-{int(pm.group('day')):02d}" if pm.group("day") else ""
        return f"{pm.group('year')}-{MONTHS.index(pm.group('month').title()) + 1:02d}{day}"
    return None


def draft_entry(path: Path, guidance_id: str | None = None) -> Draft:
    """Read one saved page and build its draft entry; raises UserError when it is not a NICE page."""
    try:
        raw = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise UserError(f"{path}: cannot read the page ({error.strerror or error})") from None
    text, links = page_text(raw)
    flat = re.sub(r"\s+", " ", text)
    uncertain: list[str] = []
    review: list[str] = []
    unverified: list[str] = []

    block = coding_block(text)
    if block is None and not _NOT_CODABLE.search(flat):
        if re.search(r"clinical classification codes for this guidance", flat, re.IGNORECASE):
            raise UserError(f"{path}: the codes are on a separate page (the link 'Coding and clinical classification "
                            "codes for this guidance'): save that page and import it")
        raise UserError(f"{path}: no coding block found ('OPCS4.x Code(s)' or 'Coding recommendations')")
    block = block or _Block(not_codable=True, case_by_case=bool(_CASE_BY_CASE.search(flat)))

    m = _REPLACES.search(flat)
    replaces = [f"IPG{int(m.group('number'))}"] if m else []
    replaced_when = f"{m.group('month')} {m.group('year')}" if m and m.group("month") else None

    title_match = _TITLE.search(flat)
    title = _page_title(text, title_match, uncertain)
    gid = _page_id(text, links, path, guidance_id, title, replaces, uncertain, review)
    if not title and gid in _builtin().guidance:
        title = _builtin().guidance[gid].title
        uncertain.append("The page prints no title; the title is the built-in entry's [I].")
        review.append("give the title as NICE prints it (the page does not)")
    if not title:
        title = f"Title not recorded (NICE {gid})"
        uncertain.append("The page's title was not found; the title is a placeholder.")
        review.append("give the title as NICE prints it")
    published = _page_published(title_match, flat)
    if published is None:  # only what the page prints is taken as read; anything else is a flagged lower bound
        published, why, verified = _published_elsewhere(gid, replaces, replaced_when, flat)
        if not verified:
            unverified.append("published")
        uncertain.append(f"The page gives no publication date: {why}")
        review.append(f"give the publication date (the page does not print it; the draft has {published})")

    lines = [f"# Draft imported from {path.name} by 'nice-audit catalogue import'; review before use.",
             f"id = {_toml_string(gid)}", f"title = {_toml_string(title)}",
             f"url = {_toml_string('https://www.nice.org.uk/guidance/' + gid.lower())}"]
    if published:
        lines.append(f"published = {_toml_string(published)}")
    if replaces:
        lines.append(f"replaces = {_toml_list(replaces)}")
    builtin = _builtin().guidance
    successor = next((g for g in builtin.values() if gid in g.replaces), None)
    if successor:  # the page predates its replacement: the catalogue knows what the page cannot
        lines.append(f"replaced_by = {_toml_string(successor.id)}")
        lines.append(f"replaced_on = {_toml_string(successor.published.text)}")
        if "published" in successor.unverified:
            unverified.append("replaced_on")
        uncertain.append(f"The replacement by {successor.id} is taken from the built-in catalogue, "
                         "not from this page.")
        review.append(f"lineage: replaced by {successor.id} (from the built-in catalogue entry)")
    for old_id in replaces:
        old = builtin.get(old_id)
        if old and old.replaced_by != gid:
            review.append(
                f"{old_id} is built in and does not name {gid} as its replacement: update "
                f"audit/guidance/{old_id.lower()}.toml (replaced_by, replaced_on) to match"
            )
    if block.opcs_version:
        lines.append(f"opcs_version = {_toml_string(block.opcs_version)}")

    actions = [c for c in block.codes if _role(c.code) == "action"]
    code_sets: list[tuple[str, list[str]]] = []
    titles = {c.code: c.title for c in block.codes if c.title}
    notes = []
    if block.not_codable or not actions:
        if block.codes and not actions:
            review.append("the block lists no operation (action) code: no code set could be drafted")
        lines.append("code_set_recovered = false")
        notes.append(
            "The page says the procedure cannot be expressed in the OPCS-4 classification by a single "
            "code" + ("; it is coded case by case, so there is no fixed code set to audit."
                      if block.case_by_case else ".")
            if block.not_codable else "Code set not recovered: the coding block lists no operation code."
        )
    else:
        lines.append("code_set_recovered = true")
        for segment in sorted({c.segment for c in actions}):
            codes_here = [c for c in block.codes if c.segment == segment]
            default = "percutaneous" if "percutaneous" in title.lower() else "all approaches"
            name = block.segments.get(segment) or default
            code_sets.append((name, _components(codes_here, title, block, uncertain, review, notes)))
        if len(code_sets) > 1:
            names = ", ".join(n for n, _ in code_sets)
            uncertain.append(f"The page gives {len(code_sets)} code sets under headings ({names}) [V].")
    if _LEVELS_NOTE.search(flat):
        notes.append("The page's note: V55 levels of spine come second, after each spinal operation code "
                     "(V55.9 when the levels are not specified).")
    if _IMAGE_NOTE.search(flat):
        notes.append("The page's note: Y53 image control is a secondary code for percutaneous interventions "
                     "(Y53.9 when the method is unspecified).")
    for note in block.notes:
        if re.search(r"it is not possible to classify", note, re.IGNORECASE):
            feature = note.split(":", 1)[-1].strip().rstrip(".")
            notes.append(f"The page notes a feature OPCS-4 cannot classify: {feature}.")
    lines.append(f"unverified = {_toml_list(unverified)}" if unverified else "")
    sources = [f"NICE {gid} page, '{block.heading or 'coding'}' block ({path.name})",
               "https://www.nice.org.uk/guidance/" + gid.lower()]
    lines.append(f"sources = {_toml_list(sources)}")
    if not successor:
        uncertain.append("The page records no replacement for it; treated as current, which is not verified.")
    lines.append(f"uncertain = {_toml_list(list(dict.fromkeys(uncertain)))}")
    if notes:
        lines.append(f"notes = {_toml_string(' '.join(dict.fromkeys(notes)))}")
    if titles:
        lines += ["[titles]"] + [f"{_toml_string(code)} = {_toml_string(t)}" for code, t in titles.items()]
    for name, components in code_sets:
        lines += ["[[code_sets]]", f"name = {_toml_string(name)}", "components = ["] + components + ["]"]
    review.append("check every code against the page, and each 'uncertain' line")
    text = "\n".join(line for line in lines if line)
    text = text.replace("\n[titles]", "\n\n[titles]").replace("\n[[code_sets]]", "\n\n[[code_sets]]")
    return Draft(gid, str(path), text + "\n", list(dict.fromkeys(review)))


def import_pages(pages: list[Path], to: Path, *, guidance_id: str | None = None,
                 overwrite: bool = False) -> list[tuple[Path, Draft]]:
    """Write one draft per page into `to`; every page is read before anything is written."""
    if guidance_id and len(pages) != 1:
        raise UserError("--id names the guidance of one page: give a single PAGE with it")
    drafts = [draft_entry(page, guidance_id) for page in pages]
    seen: dict[str, str] = {}
    for d in drafts:
        if d.guidance_id in seen:
            raise UserError(f"{d.source}: {d.guidance_id} was already read from {seen[d.guidance_id]}")
        seen[d.guidance_id] = d.source
    to.mkdir(parents=True, exist_ok=True)
    written = []
    for d in drafts:
        target = to / f"{d.guidance_id.lower()}.toml"
        if target.exists() and not overwrite:
            raise UserError(f"{target}: already exists (remove it, choose another --to, or give --force)")
        written.append((target, d))
    for target, d in written:
        target.write_text(d.text, encoding="utf-8")
    return written
