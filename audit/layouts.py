"""Which columns of an export hold what: layout detection and column-mapping files.

A `ColumnPlan` names, for one file, the source column behind each canonical field. The loader
reads only those columns.

- `hes`: HES APC extract, `EPIKEY` + `OPERTN_01..24` / `OPDATE_01..24`.
- `hes-derived`: NHS Digital's derived `OPERTN_4_01..24` (no procedure dates), as in the
  artificial HES files.
- `long`: one row per procedure: `episode_id`, `position`, `code` (+ optional dates).
- `mapped`: anything else, described by a TOML mapping file (`--mapping`).
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from audit.errors import InputError, UserError

LAYOUTS = ("hes", "hes-derived", "long", "mapped")
# The text encodings an export can be read in (`--encoding`; audit/load.py decodes). Kept here, with
# no polars import, so that the command line can name them in its help without importing the reader.
ENCODINGS = ("auto", "utf-8", "cp1252", "latin-1")

# Episode-level canonical fields, with the source columns that supply them (first found wins).
HES_EPISODE_COLUMNS = {
    "admission_date": ("ADMIDATE",),
    "episode_start": ("EPISTART",),
    "episode_end": ("EPIEND",),
    "provider": ("PROCODE5", "PROCODE3", "PROCODE"),
    "specialty": ("TRETSPEF", "MAINSPEF"),
    "consultant": ("CONSULT", "PCONSULT", "CONSULTANT_CODE"),
}
LONG_EPISODE_COLUMNS = {
    "admission_date": ("admission_date",),
    "episode_start": ("episode_start",),
    "episode_end": ("episode_end",),
    "provider": ("provider",),
    "specialty": ("specialty", "treatment_specialty"),
    "consultant": ("consultant",),
}
EPISODE_FIELDS = tuple(HES_EPISODE_COLUMNS)
# Optional columns a mapping can name, carried into findings.csv and episodes.csv under these
# names for the report: who coded the episode, and the hospital's own id (hospital number / local
# patient id) coders look episodes up by. HES extracts have neither (the NHS Data Dictionary has
# no coder field), so the HES layouts name none.
OPTIONAL_FIELDS = ("coder", "local_id")
DATE_FIELDS = ("admission_date", "episode_start", "episode_end")


def date_column_names(columns: list[str]) -> list[str]:
    """The canonical columns that hold dates: the episode's and each procedure's."""
    return [c for c in columns if c in DATE_FIELDS or c.startswith("date_") or c == "procedure_date"]


@dataclass(frozen=True)
class Slot:
    """One procedure field of a wide export."""

    position: int
    code: str
    date: str | None


@dataclass(frozen=True)
class ColumnPlan:
    layout: str
    shape: str  # "wide" (one row per episode) or "long" (one row per procedure)
    episode_id: str
    slots: tuple[Slot, ...] = ()  # wide only
    position: str | None = None  # long only
    code: str | None = None  # long only
    procedure_date: str | None = None  # long only
    episode_columns: dict[str, str] = field(default_factory=dict)  # canonical -> source
    carried: tuple[str, ...] = ()  # extra columns the user asked to carry into the outputs
    optional_columns: dict[str, str] = field(default_factory=dict)  # coder / local_id -> source

    def source_columns(self) -> list[str]:
        columns = [self.episode_id, *self.episode_columns.values(), *self.carried, *self.optional_columns.values()]
        for slot in self.slots:
            columns += [slot.code] + ([slot.date] if slot.date else [])
        columns += [c for c in (self.position, self.code, self.procedure_date) if c]
        return list(dict.fromkeys(columns))


def _lookup(header: list[str]) -> dict[str, str]:
    """Case- and space-insensitive header lookup: exports disagree on both."""
    return {name.strip().upper(): name for name in header}


def _episode_columns(lookup: dict[str, str], candidates: dict[str, tuple[str, ...]]):
    found = {}
    for canonical, names in candidates.items():
        for name in names:
            if name.upper() in lookup:
                found[canonical] = lookup[name.upper()]
                break
    return found


def _numbered(lookup: dict[str, str], prefix: str) -> dict[int, str]:
    pattern = re.compile(rf"^{re.escape(prefix)}(\d{{1,2}})$")
    return {int(m.group(1)): lookup[k] for k in lookup if (m := pattern.match(k))}


def _hes_plan(lookup: dict[str, str], layout: str) -> ColumnPlan:
    prefix = "OPERTN_" if layout == "hes" else "OPERTN_4_"
    codes = _numbered(lookup, prefix)
    dates = _numbered(lookup, "OPDATE_") if layout == "hes" else {}
    slots = tuple(Slot(n, codes[n], dates.get(n)) for n in sorted(codes) if n >= 1)
    return ColumnPlan(
        layout=layout,
        shape="wide",
        episode_id=lookup["EPIKEY"],
        slots=slots,
        episode_columns=_episode_columns(lookup, HES_EPISODE_COLUMNS),
    )


def _long_plan(lookup: dict[str, str]) -> ColumnPlan:
    date = lookup.get("PROCEDURE_DATE")
    return ColumnPlan(
        layout="long",
        shape="long",
        episode_id=lookup["EPISODE_ID"],
        position=lookup["POSITION"],
        code=lookup["CODE"],
        procedure_date=date,
        episode_columns=_episode_columns(lookup, LONG_EPISODE_COLUMNS),
    )


def detect_layout(header: list[str]) -> str | None:
    lookup = _lookup(header)
    if "EPIKEY" in lookup and _numbered(lookup, "OPERTN_"):
        return "hes"
    if "EPIKEY" in lookup and _numbered(lookup, "OPERTN_4_"):
        return "hes-derived"
    if {"EPISODE_ID", "POSITION", "CODE"} <= lookup.keys():
        return "long"
    return None


def plan_for(path: Path, header: list[str], layout: str | None, mapping: Mapping | None):
    """The column plan for one file: `layout` forces one; else detect; else use the mapping."""
    lookup = _lookup(header)
    chosen = layout or detect_layout(header) or ("mapped" if mapping else None)
    if chosen is None:
        if _numbered(lookup, "OPERTN_") or _numbered(lookup, "OPERTN_4_"):
            raise InputError(path, "missing required column EPIKEY (the episode id) beside the OPERTN_nn columns")
        if {"POSITION", "CODE"} <= lookup.keys():
            raise InputError(path, "missing required column episode_id beside position and code")
        raise InputError(
            path,
            "unknown layout: the header has neither EPIKEY with OPERTN_nn columns (HES) nor "
            "episode_id, position and code (long); describe it with --mapping FILE",
        )
    if chosen == "mapped":
        if mapping is None:
            raise UserError("--layout mapped needs --mapping FILE")
        return mapping.plan(path, lookup)
    required = {
        "hes": ["EPIKEY", "OPERTN_01"],
        "hes-derived": ["EPIKEY", "OPERTN_4_01"],
        "long": ["EPISODE_ID", "POSITION", "CODE"],
    }[chosen]
    missing = [name for name in required if name not in lookup]
    if missing:
        raise InputError(path, f"missing required column(s) for layout {chosen}: {', '.join(missing)}")
    return _long_plan(lookup) if chosen == "long" else _hes_plan(lookup, chosen)


# --- Mapping files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Mapping:
    """A TOML description of an export the tool does not recognise. See examples/README.md.

    shape = "wide": `procedure_codes` lists the code columns in position order (a `*` in a name
    matches a number, expanded in numeric order), `procedure_dates` the matching date columns.
    shape = "long": `position`, `code`, optional `procedure_date`.
    Both: `episode_id`, and optional `admission_date`, `episode_start`, `episode_end`,
    `provider`, `specialty`, `consultant`, `coder`, `local_id`; and `carry`, columns copied into findings.csv and
    episodes.csv as they are (say, a local patient id coders look episodes up by). Nothing else
    in an export ever reaches an output: only columns named here are read at all.
    """

    source: Path
    shape: str
    episode_id: str
    procedure_codes: tuple[str, ...] = ()
    procedure_dates: tuple[str, ...] = ()
    position: str | None = None
    code: str | None = None
    procedure_date: str | None = None
    episode_columns: dict[str, str] = field(default_factory=dict)
    carry: tuple[str, ...] = ()
    optional_columns: dict[str, str] = field(default_factory=dict)  # coder / local_id

    def _expand(self, names, lookup, path) -> list[str]:
        columns = []
        for name in names:
            if "*" in name:
                pattern = re.compile(
                    "^" + re.escape(name.strip().upper()).replace(r"\*", r"(\d+)") + "$"
                )
                hits = sorted((int(m.group(1)), k) for k in lookup if (m := pattern.match(k)))
                columns += [lookup[k] for _, k in hits]
            elif name.strip().upper() in lookup:
                columns.append(lookup[name.strip().upper()])
            else:
                raise InputError(path, f"column {name!r} named in {self.source.name} is not in the header")
        return columns

    def plan(self, path: Path, lookup: dict[str, str]) -> ColumnPlan:
        def column(name: str | None) -> str | None:
            if name is None:
                return None
            if name.strip().upper() not in lookup:
                raise InputError(path, f"column {name!r} named in {self.source.name} is not in the header")
            return lookup[name.strip().upper()]

        episode_columns = {k: column(v) for k, v in self.episode_columns.items()}
        carried = tuple(column(name) for name in self.carry)
        optional = {k: column(v) for k, v in self.optional_columns.items()}
        if self.shape == "long":
            return ColumnPlan(
                layout="mapped",
                shape="long",
                episode_id=column(self.episode_id),
                position=column(self.position),
                code=column(self.code),
                procedure_date=column(self.procedure_date),
                episode_columns=episode_columns,
                carried=carried,
                optional_columns=optional,
            )
        codes = self._expand(self.procedure_codes, lookup, path)
        dates = self._expand(self.procedure_dates, lookup, path)
        if not codes:
            raise InputError(path, f"no procedure code columns match {self.source.name}")
        if dates and len(dates) != len(codes):
            raise InputError(
                path, f"{len(codes)} procedure code columns but {len(dates)} date columns"
            )
        slots = tuple(
            Slot(n, code, dates[n - 1] if dates else None) for n, code in enumerate(codes, 1)
        )
        return ColumnPlan(
            layout="mapped",
            shape="wide",
            episode_id=column(self.episode_id),
            slots=slots,
            episode_columns=episode_columns,
            carried=carried,
            optional_columns=optional,
        )


def load_mapping(path: Path) -> Mapping:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: mapping file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not a valid TOML mapping file ({error})") from None
    except RecursionError:  # tables or arrays nested thousands deep
        raise UserError(f"{path}: not a valid TOML mapping file (nested too deeply)") from None

    def text(key, required=False):
        value = data.get(key)
        if value is None and required:
            raise UserError(f"{path}: mapping needs {key!r}")
        if value is not None and not isinstance(value, str):
            raise UserError(f"{path}: {key!r} must be a column name (a string)")
        return value

    def names(key):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UserError(f"{path}: {key!r} must be a list of column names")
        return tuple(value)

    shape = data.get("shape", "wide")
    if shape not in ("wide", "long"):
        raise UserError(f"{path}: 'shape' must be \"wide\" or \"long\"")
    unknown = set(data) - {
        "shape", "episode_id", "procedure_codes", "procedure_dates", "position", "code",
        "procedure_date", "carry", *EPISODE_FIELDS, *OPTIONAL_FIELDS,
    }
    if unknown:
        raise UserError(f"{path}: unknown mapping key(s): {', '.join(sorted(unknown))}")
    mapping = Mapping(
        source=Path(path),
        shape=shape,
        episode_id=text("episode_id", required=True),
        procedure_codes=names("procedure_codes"),
        procedure_dates=names("procedure_dates"),
        position=text("position", required=shape == "long"),
        code=text("code", required=shape == "long"),
        procedure_date=text("procedure_date"),
        episode_columns={k: text(k) for k in EPISODE_FIELDS if text(k)},
        carry=names("carry"),
        optional_columns={k: text(k) for k in OPTIONAL_FIELDS if text(k)},
    )
    if shape == "wide" and not mapping.procedure_codes:
        raise UserError(f"{path}: a wide mapping needs 'procedure_codes'")
    _check_carry(path, mapping)
    return mapping


def _check_carry(path, mapping: Mapping) -> None:
    """Carried columns are written beside the outputs' own: each once, and never the episode id
    (every output already has it, under the name `episode_id`)."""
    seen = Counter(name.strip().upper() for name in mapping.carry)
    twice = sorted(name for name, count in seen.items() if count > 1)
    if twice:
        raise UserError(f"{path}: 'carry' lists column(s) more than once: {', '.join(twice)}")
    clash = [name for name in mapping.carry
             if name.strip().upper() in ("EPISODE_ID", mapping.episode_id.strip().upper())]
    if clash:
        raise UserError(f"{path}: 'carry' names the episode id column {clash[0]!r}: every output has it "
                        "already (as episode_id)")
