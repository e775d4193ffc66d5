"""The guidance catalogue: NICE interventional procedures guidance and its OPCS-4 code sets.

Entries are TOML data files (one per guidance) shipped in `audit/guidance/`, plus any the user
adds with `--catalogue PATH`. They are validated when loaded; every problem names the file, the
guidance and the field. The file format is documented in `audit/guidance/README.md`.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path

from audit.codes import CodePattern, parse_pattern
from audit.errors import UserError

ROLES = ("index", "levels", "method", "approach", "site", "companion", "diagnosis")
REQUIREMENTS = ("required", "conditional", "optional")
SCOPES = ("qualifiers", "episode")
PRECISIONS = {4: "year", 7: "month", 10: "day"}
_GUIDANCE_ID = re.compile(r"^[A-Z]{2,8}[0-9]{1,5}$")
_ICD10 = re.compile(r"^[A-Z][0-9]{2}(\.?[0-9X-])?$")

_GUIDANCE_KEYS = {
    "id", "title", "url", "published", "replaces", "replaced_by", "replaced_on", "opcs_version",
    "code_set_recovered", "sources", "uncertain", "unverified", "notes", "titles", "code_sets",
    "evidence",
}
DATE_FIELDS = ("published", "replaced_on")
_SET_KEYS = {"name", "components", "not_with"}
_COMPONENT_KEYS = {"role", "codes", "requirement", "identifies", "scope", "recommended", "note", "accepts"}


class CatalogueError(UserError):
    """One or more problems in catalogue files; `problems` lists each on its own line."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class PartialDate:
    """A date known to a year, a month or a day (`2009`, `2016-01`, `2009-07-22`)."""

    text: str
    precision: str  # "year" | "month" | "day"
    start: date  # the first day it could be
    end: date | None = None  # the last day it could be (the start, for a full date)

    def __post_init__(self):
        if self.end is None:
            if self.precision == "year":
                last = date(self.start.year, 12, 31)
            elif self.precision == "month":
                following = date(self.start.year + self.start.month // 12, self.start.month % 12 + 1, 1)
                last = date.fromordinal(following.toordinal() - 1)
            else:
                last = self.start
            object.__setattr__(self, "end", last)

    def __str__(self) -> str:
        if self.precision == "year":
            return self.text
        if self.precision == "month":
            return self.start.strftime("%B %Y")
        return f"{self.start.day} {self.start.strftime('%B %Y')}"


@dataclass(frozen=True)
class Component:
    role: str
    patterns: tuple[CodePattern, ...]  # one of
    requirement: str
    identifies: bool  # part of what makes an episode match the code set
    scope: str  # where the code may stand: the index code's qualifiers, or anywhere after it
    recommended: tuple[CodePattern, ...]  # sites: the category the guidance names
    note: str
    icd10: tuple[str, ...] = ()  # diagnosis components: shown to readers, not audited
    # Further codes a source allows in this component's place (IPG421: Y68.- for Y53.-, PCSK1).
    accepts: tuple[CodePattern, ...] = ()

    @property
    def accepted(self) -> tuple[CodePattern, ...]:
        """Every code pattern that fills this component."""
        return self.patterns + self.accepts

    def __str__(self) -> str:
        return " or ".join([str(p) for p in self.patterns] + list(self.icd10))


@dataclass(frozen=True)
class CodeSet:
    name: str
    components: tuple[Component, ...]
    # Codes among the index code's qualifiers that mean a different procedure (IPG319: another
    # Chapter Y destruction method with V52.2): such an occurrence is not audited against it.
    not_with: tuple[CodePattern, ...] = ()

    @property
    def index(self) -> Component:
        return next(c for c in self.components if c.role == "index")

    def of_role(self, role: str) -> tuple[Component, ...]:
        return tuple(c for c in self.components if c.role == role)


@dataclass(frozen=True)
class Guidance:
    id: str
    title: str
    url: str
    published: PartialDate
    replaces: tuple[str, ...]
    replaced_by: str | None
    replaced_on: PartialDate | None  # None: current, or replacement date unknown
    opcs_version: str | None
    code_set_recovered: bool
    code_sets: tuple[CodeSet, ...]
    sources: tuple[str, ...]
    uncertain: tuple[str, ...]
    notes: str
    source_file: str
    unverified: tuple[str, ...] = ()  # which of DATE_FIELDS are not confirmed by a source
    # Why the index code (with its identifying codes) is evidence of this procedure, with sources.
    evidence: tuple[str, ...] = ()

    @property
    def lineage(self) -> str:
        if not self.replaced_by:
            return "current"
        when = str(self.replaced_on) if self.replaced_on else "date not recorded"
        if self.replaced_on and "replaced_on" in self.unverified:
            when += " (not verified)"
        return f"replaced by {self.replaced_by}, {when}"


@dataclass(frozen=True)
class Catalogue:
    guidance: dict[str, Guidance]  # by id, in id order
    titles: dict[str, str]  # normalised code -> title, where the catalogue knows it
    version: str
    files: tuple[str, ...]

    def auditable(self) -> list[Guidance]:
        return [g for g in self.guidance.values() if g.code_sets]


# --- Parsing, with every problem named ------------------------------------------------------


class _Problems:
    def __init__(self, file: str):
        self.file = file
        self.items: list[str] = []
        self.guidance_id = "?"

    def add(self, field: str, problem: str) -> None:
        self.items.append(f"{self.file}: {self.guidance_id}: {field}: {problem}")


def parse_partial_date(text) -> PartialDate:
    if not isinstance(text, str) or len(text) not in PRECISIONS:
        raise ValueError("must be written yyyy, yyyy-mm or yyyy-mm-dd")
    padded = text + {4: "-01-01", 7: "-01", 10: ""}[len(text)]
    try:
        start = date.fromisoformat(padded)
    except ValueError:
        raise ValueError(f"{text!r} is not a real date (yyyy, yyyy-mm or yyyy-mm-dd)") from None
    return PartialDate(text, PRECISIONS[len(text)], start)


def _patterns(value, field: str, problems: _Problems) -> tuple[CodePattern, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        problems.add(field, "must be a non-empty list of codes")
        return ()
    patterns = []
    for spelling in value:
        try:
            patterns.append(parse_pattern(spelling))
        except ValueError as error:
            problems.add(field, str(error))
    return tuple(patterns)


def _is_table(raw, field: str, keys: set[str], problems: _Problems) -> bool:
    """A TOML table with only known keys (unknown ones are reported: they are usually typos)."""
    if not isinstance(raw, dict):
        problems.add(field, "must be a table")
        return False
    for key in sorted(set(raw) - keys):
        problems.add(f"{field}.{key}", "unknown field" + did_you_mean(key, keys))
    return True


def _component(raw, field: str, problems: _Problems) -> Component | None:
    if not _is_table(raw, field, _COMPONENT_KEYS, problems):
        return None
    role = raw.get("role")
    if role not in ROLES:
        problems.add(f"{field}.role", f"must be one of {', '.join(ROLES)}")
        return None
    requirement = raw.get("requirement", "required")
    if requirement not in REQUIREMENTS:
        problems.add(f"{field}.requirement", f"must be one of {', '.join(REQUIREMENTS)}")
    scope = raw.get("scope", "qualifiers")
    if scope not in SCOPES:
        problems.add(f"{field}.scope", f"must be one of {', '.join(SCOPES)}")
    icd10: tuple[str, ...] = ()
    if role == "diagnosis":  # ICD-10: recorded for readers, not audited (no diagnoses are read)
        codes = raw.get("codes")
        if not isinstance(codes, list) or not all(isinstance(c, str) and _ICD10.match(c) for c in codes):
            problems.add(f"{field}.codes", "diagnosis codes must be ICD-10 codes such as C78.7 or C18.-")
        else:
            icd10 = tuple(codes)
        patterns = ()
    else:
        patterns = _patterns(raw.get("codes"), f"{field}.codes", problems)
    recommended = _patterns(raw["recommended"], f"{field}.recommended", problems) if "recommended" in raw else ()
    if recommended and role != "site":
        problems.add(f"{field}.recommended", "only a site component names recommended codes")
    accepts = _patterns(raw["accepts"], f"{field}.accepts", problems) if "accepts" in raw else ()
    identifies = raw.get("identifies", role == "index")
    if not isinstance(identifies, bool):
        problems.add(f"{field}.identifies", "must be true or false")
    if role == "index" and (requirement != "required" or identifies is not True):
        problems.add(field, "the index component must be required and identify the procedure")
    return Component(
        role=role, patterns=patterns, requirement=requirement, identifies=identifies is True,
        scope=scope, recommended=recommended, note=str(raw.get("note", "")), icd10=icd10,
        accepts=accepts,
    )


def _code_set(raw, field: str, problems: _Problems) -> CodeSet | None:
    if not _is_table(raw, field, _SET_KEYS, problems):
        return None
    name = raw.get("name", "all")
    raw_components = raw.get("components")
    if not isinstance(raw_components, list) or not raw_components:
        problems.add(f"{field}.components", "must list at least the index component")
        return None
    components = tuple(
        c for i, item in enumerate(raw_components)
        if (c := _component(item, f"{field}.components[{i}]", problems))
    )
    if sum(c.role == "index" for c in components) != 1:
        problems.add(f"{field}.components", "must have exactly one component with role = \"index\"")
        return None
    not_with = _patterns(raw["not_with"], f"{field}.not_with", problems) if "not_with" in raw else ()
    _overlapping_components(components, field, problems)
    return CodeSet(str(name), components, not_with)


def _overlapping_components(components: tuple[Component, ...], field: str, problems: _Problems) -> None:
    """One recorded code fills at most one component: two components that one code could fill
    (Y53.- and Y53.2, or a Y68.- accepted for both) would let a single code satisfy both."""
    audited = [(i, c) for i, c in enumerate(components) if c.role not in ("index", "diagnosis")]
    for n, (i, first) in enumerate(audited):
        for j, second in audited[n + 1:]:
            shared = [(p, q) for p in first.accepted for q in second.accepted
                      if p.prefix.startswith(q.prefix) or q.prefix.startswith(p.prefix)]
            if shared:
                p, q = shared[0]
                problems.add(f"{field}.components", f"components {i} and {j} can both be filled by one code "
                             f"({p} / {q}): one recorded code fills at most one component, so make them distinct")


def _text(raw: dict, key: str, problems: _Problems, required: bool = True) -> str | None:
    value = raw.get(key)
    if value is None:
        if required:
            problems.add(key, "missing")
        return None
    if not isinstance(value, str) or not value.strip():
        problems.add(key, "must be non-empty text")
        return None
    return value


def _texts(raw: dict, key: str, problems: _Problems) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.add(key, "must be a list of text")
        return ()
    return tuple(value)


def parse_guidance(raw: dict, file: str) -> tuple[Guidance | None, dict[str, str], list[str]]:
    """One entry: (guidance, code titles, problems)."""
    problems = _Problems(file)
    gid = raw.get("id")
    if not isinstance(gid, str) or not _GUIDANCE_ID.match(gid):
        problems.add("id", "missing or not a guidance id such as IPG319")
        return None, {}, problems.items
    problems.guidance_id = gid
    for key in sorted(set(raw) - _GUIDANCE_KEYS):
        problems.add(key, "unknown field" + did_you_mean(key, _GUIDANCE_KEYS))
    title, url = _text(raw, "title", problems), _text(raw, "url", problems)
    if url and not url.startswith(("http://", "https://")):
        problems.add("url", "must be an http(s) address")
    dates = {}
    for key in ("published", "replaced_on"):
        if key not in raw or (key == "replaced_on" and raw[key] == "unknown"):
            if key == "published":
                problems.add(key, "missing")
            dates[key] = None
            continue
        try:
            dates[key] = parse_partial_date(raw[key])
        except ValueError as error:
            problems.add(key, str(error))
            dates[key] = None
    replaces = _texts(raw, "replaces", problems)
    for i, other in enumerate(replaces):
        if not _GUIDANCE_ID.match(other):
            problems.add(f"replaces[{i}]", f"{other!r} is not a guidance id")
    replaced_by = _text(raw, "replaced_by", problems, required=False)
    if replaced_by and not _GUIDANCE_ID.match(replaced_by):
        problems.add("replaced_by", f"{replaced_by!r} is not a guidance id")
    if "replaced_on" in raw and not replaced_by:
        problems.add("replaced_on", "given, but replaced_by is not")
    if replaced_by and "replaced_on" not in raw:
        problems.add("replaced_on", 'missing: give the date, or "unknown"')
    if dates["published"] and dates["replaced_on"] and dates["replaced_on"].start < dates["published"].start:
        problems.add("replaced_on", "is before the published date")
    recovered = raw.get("code_set_recovered")
    if not isinstance(recovered, bool):
        problems.add("code_set_recovered", "must be true or false")
    raw_sets = raw.get("code_sets", [])
    if not isinstance(raw_sets, list):
        problems.add("code_sets", "must be a list of tables ([[code_sets]])")
        raw_sets = []
    code_sets = tuple(
        cs for i, item in enumerate(raw_sets) if (cs := _code_set(item, f"code_sets[{i}]", problems))
    )
    if recovered is True and not raw_sets:
        problems.add("code_sets", "code_set_recovered is true but no code set is given")
    if recovered is False and raw_sets:
        problems.add("code_sets", "code_set_recovered is false but code sets are given")
    if not _texts(raw, "sources", problems):
        problems.add("sources", "cite at least one source")
    unverified = _texts(raw, "unverified", problems)
    evidence = _texts(raw, "evidence", problems)
    for i, name in enumerate(unverified):
        if name not in DATE_FIELDS:
            problems.add(f"unverified[{i}]", f"must name one of {', '.join(DATE_FIELDS)}")
    titles = {}
    raw_titles = raw.get("titles", {})
    if not isinstance(raw_titles, dict):
        problems.add("titles", "must be a table of code = title")
    else:
        for spelling, code_title in raw_titles.items():
            try:
                pattern = parse_pattern(spelling)
            except ValueError as error:
                problems.add(f"titles.{spelling}", str(error))
                continue
            if not isinstance(code_title, str):
                problems.add(f"titles.{spelling}", "must be text")
            elif pattern.kind == "exact":
                titles[pattern.prefix] = code_title
            else:
                titles[str(pattern)] = code_title
    if problems.items:
        return None, {}, problems.items
    opcs = raw.get("opcs_version")
    guidance = Guidance(
        id=gid, title=title, url=url, published=dates["published"], replaces=replaces,
        replaced_by=replaced_by, replaced_on=dates["replaced_on"],
        opcs_version=str(opcs) if opcs is not None else None, code_set_recovered=recovered,
        code_sets=code_sets, sources=_texts(raw, "sources", problems),
        uncertain=_texts(raw, "uncertain", problems), notes=str(raw.get("notes", "")),
        source_file=file, unverified=unverified, evidence=evidence,
    )
    return guidance, titles, []


def _read_toml(path: Path, name: str) -> tuple[dict | None, list[str]]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")), []
    except FileNotFoundError:
        return None, [f"{name}: no such file"]
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        return None, [f"{name}: not valid TOML ({error})"]


def _entries(data: dict) -> list[dict]:
    """A file holds one entry at top level, or several as [[guidance]]."""
    if "guidance" in data and isinstance(data["guidance"], list):
        return data["guidance"]
    return [data]


def builtin_files() -> list[Path]:
    folder = resources.files("audit") / "guidance"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml"))


def _expand(paths: list[Path]) -> list[Path]:
    files = []
    for path in paths:
        files += sorted(path.glob("*.toml")) if path.is_dir() else [path]
    return files


def load_catalogue(extra: list[Path] = (), *, builtin: bool = True) -> Catalogue:
    """Built-in entries plus the user's; raises CatalogueError listing every problem."""
    files = (builtin_files() if builtin else []) + _expand(list(extra))
    problems: list[str] = []
    guidance: dict[str, Guidance] = {}
    titles: dict[str, str] = {}
    digest = hashlib.sha256()
    for path in files:
        name = path.name if path.parent.name == "guidance" and builtin else str(path)
        data, read_problems = _read_toml(path, name)
        problems += read_problems
        if data is None:
            continue
        digest.update(path.read_bytes())
        for raw in _entries(data):
            entry, entry_titles, entry_problems = parse_guidance(raw, name)
            problems += entry_problems
            if entry is None:
                continue
            if entry.id in guidance:
                problems.append(
                    f"{name}: {entry.id}: id: already defined in {guidance[entry.id].source_file}"
                )
                continue
            guidance[entry.id] = entry
            titles.update(entry_titles)
    problems += _lineage_problems(guidance)
    if problems:
        raise CatalogueError(problems)
    ordered = dict(sorted(guidance.items(), key=lambda kv: _id_key(kv[0])))
    return Catalogue(ordered, titles, digest.hexdigest()[:12], tuple(str(f) for f in files))


def _id_key(gid: str) -> tuple[str, int]:
    m = re.match(r"^([A-Z]+)([0-9]+)$", gid)
    return (m.group(1), int(m.group(2)))


def _lineage_problems(guidance: dict[str, Guidance]) -> list[str]:
    """Both ends of a replacement must agree when both are in the catalogue."""
    problems = []
    for g in guidance.values():
        new = guidance.get(g.replaced_by or "")
        if new and g.id not in new.replaces:
            problems.append(
                f"{g.source_file}: {g.id}: replaced_by: {new.id} does not list {g.id} in replaces"
            )
        for old_id in g.replaces:
            old = guidance.get(old_id)
            if old and old.replaced_by != g.id:
                problems.append(
                    f"{g.source_file}: {g.id}: replaces: {old_id} does not name {g.id} as replaced_by"
                )
    return problems


def check_problems(catalogue: Catalogue, paths: list[Path]) -> list[str]:
    """`catalogue check`'s stricter checks, beyond what loading already refuses: an empty or
    missing folder, `replaced_by` naming guidance the catalogue does not hold, and an index code
    given as a category (it would match every code in the category, not the procedure)."""
    problems = []
    for path in paths:
        if not path.exists():
            problems.append(f"{path}: no such file or folder")
        elif path.is_dir() and not any(path.glob("*.toml")):
            problems.append(f"{path}: folder holds no .toml files")
    checked = {str(f) for f in _expand(list(paths))}
    for g in catalogue.guidance.values():
        if g.source_file not in checked:
            continue
        if g.replaced_by and g.replaced_by not in catalogue.guidance:
            problems.append(f"{g.source_file}: {g.id}: replaced_by: {g.replaced_by} is not in the catalogue"
                            + did_you_mean(g.replaced_by, catalogue.guidance))
        for code_set in g.code_sets:
            for pattern in code_set.index.patterns:
                if pattern.kind != "exact":
                    problems.append(f"{g.source_file}: {g.id}: code set '{code_set.name}': index code {pattern} "
                                    "is a category: give the four-character code of the procedure")
    return problems


def did_you_mean(word: str, known) -> str:
    """' (did you mean X?)' for a near miss among the known words, else ''."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""
