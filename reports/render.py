"""Render `report.html` from a run's output folder.

jinja2 with autoescape on and StrictUndefined; one typed context (`ReportPage`) per page. The CSS
and JavaScript are inlined from `templates/` and pinned by a Content-Security-Policy that allows
only those two blocks (by hash) and no network access, so the page works on networks with no
internet and any markup that slipped into the data could not run.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemBytecodeCache, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from audit import __version__
from audit.catalogue import Catalogue, builtin_files, load_catalogue
from audit.in_memory import in_memory
from reports.common import CHANGE_ICONS, SEVERITY_ICONS, STATUS_ICONS
from reports.context import area_breakdowns, build_page, listed_counts
from reports.bundle import Bundle
from reports.frames import Outputs, ReportError, load_outputs, read_summary
from reports.page import ReportPage

TEMPLATES = Path(__file__).resolve().parent / "templates"
REPORT_HTML = "report.html"
MAX_BYTES = 4_900_000  # the page must stay under 5 MB whatever the caps asked for: it opens fast
PREDICT_FROM = 1_000  # cards and rows listed from which the page's size is predicted before rendering it
PROBE_CAP = 10
MAX_PREDICTION_STEPS = 8  # caps lowered at most this often before the page is rendered


@dataclass(frozen=True)
class Assets:
    css: Markup
    js: Markup
    csp: str
    generator: str


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


class _BytecodeCache(FileSystemBytecodeCache):
    """Compiled templates kept between runs (jinja2's per-user cache folder under the temporary
    directory; a template's source checksum invalidates it): compiling them cost about 0.2 s per
    process. A cache that cannot be read or written is only slower, never an error."""

    def load_bytecode(self, bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except (OSError, ValueError, EOFError):
            bucket.reset()

    def dump_bytecode(self, bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


def _bytecode_cache() -> FileSystemBytecodeCache | None:
    try:
        return _BytecodeCache()
    except (OSError, RuntimeError):  # no usable temporary directory: compile every time
        return None


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        bytecode_cache=_bytecode_cache(),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.globals.update(STATUS_ICONS=STATUS_ICONS, SEVERITY_ICONS=SEVERITY_ICONS, CHANGE_ICONS=CHANGE_ICONS)
    return environment


@cache
def _assets() -> Assets:
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    js = (TEMPLATES / "report.js").read_text(encoding="utf-8")
    for name, text, closing in (("report.css", css, "</style"), ("report.js", js, "</script")):
        if closing in text.lower():
            raise RuntimeError(f"{name} must not contain {closing}")
    csp = (
        f"default-src 'none'; style-src '{_sha256(css)}'; script-src '{_sha256(js)}'; "
        "img-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'"
    )
    # Trusted static files of this package, not data: Markup keeps them verbatim.
    return Assets(Markup(css), Markup(js), csp, f"nice-audit {__version__}")


def run_catalogue(out_dir: Path, given: list[Path] | None = None) -> Catalogue:
    """The catalogue to re-render a run's report with: the one the run used.

    The run records its catalogue files and version in summary.json. With `given` (--catalogue)
    that catalogue is used instead, and the page says the versions differ. Otherwise the recorded
    files are loaded again; if they no longer give the version the run used (edited, or a newer
    nice-audit with other built-in entries), that is an error naming both versions."""
    if given:
        return load_catalogue(given)
    summary = read_summary(Path(out_dir))
    recorded = [Path(f) for f in summary.get("catalogue_files", [])]
    builtin = builtin_files()
    here, names = {p.resolve() for p in builtin}, {p.name for p in builtin}
    extra = [f for f in recorded if f.resolve() not in here and not _builtin_elsewhere(f, names)]
    missing = [str(f) for f in extra if not f.exists()]
    if missing:
        raise ReportError(f"{Path(out_dir) / 'summary.json'}: the run's catalogue file(s) {', '.join(missing)} "
                          "no longer exist; pass --catalogue to render with another catalogue")
    catalogue = load_catalogue(extra)
    used = str(summary.get("catalogue_version", ""))
    if used and used != catalogue.version:
        raise ReportError(f"{Path(out_dir) / 'summary.json'}: the run used catalogue {used}, but its catalogue "
                          f"files now give {catalogue.version}; pass --catalogue to render with the current one")
    return catalogue


def _builtin_elsewhere(path: Path, names: set[str]) -> bool:
    """A built-in guidance file of nice-audit installed somewhere else (the run's nice-audit, since
    reinstalled in another environment): recorded as `.../audit/guidance/ipgNNN.toml`. Loaded
    again as an extra file it would define every entry twice; the built-in files are loaded anyway,
    and if they now differ the catalogue versions say so."""
    return path.parent.name == "guidance" and path.parent.parent.name == "audit" and path.name in names


def render_html(page: ReportPage) -> str:
    tables = _breakdown_tables(page.breakdowns, page.min_n, page.files["findings"], page.files["episodes"])
    return _environment().get_template("report.html").render(page=page, assets=_assets(), breakdown_tables=tables)


@lru_cache(maxsize=4)
def _breakdown_tables(breakdowns: tuple, min_n: str, findings_file: str, episodes_file: str) -> Markup:
    """The breakdown tables: the same on every page a report renders while it fits its size (they
    do not depend on the caps), so rendered once."""
    files = {"findings": findings_file, "episodes": episodes_file}
    return Markup(_environment().get_template("_breakdown_tables.html").render(
        breakdowns=breakdowns, min_n=min_n, files=files))


def _listed(page: ReportPage) -> tuple[int, int]:
    """(worklist cards, table rows) on a page: what grows with the caps."""
    return page.worksheet.rows.count + page.check.rows.count, page.findings.rows.count + len(page.changes.rows)


# Where the listed items are written: the worklists' cards, the tables' rows (section ids of the page).
CARD_SECTIONS = ("worksheet", "superseded")
ROW_SECTIONS = ("findings", "changes")
_SECTION = re.compile(rb'<section id="([^"]+)"')


def _section_bytes(html: bytes) -> dict[str, int]:
    """Bytes of each `<section id=...>` of a page, up to the next one (the last: to the end)."""
    starts = [(m.start(), m.group(1).decode("ascii", "replace")) for m in _SECTION.finditer(html)]
    ends = [start for start, _ in starts[1:]] + [len(html)]
    return {name: end - start for (start, name), end in zip(starts, ends)}


def _growth(empty: bytes, probe: bytes) -> tuple[float, float]:
    """The bytes a probe page's cards and its rows add to the page that lists none: what grew in
    their sections, and what grew elsewhere (drill-down links, notes) shared in proportion."""
    before, after = _section_bytes(empty), _section_bytes(probe)
    grew = {name: size - before.get(name, 0) for name, size in after.items()}
    cards, rows = (max(sum(grew.get(name, 0) for name in names), 0) for names in (CARD_SECTIONS, ROW_SECTIONS))
    rest = len(probe) - len(empty) - cards - rows
    share = cards / (cards + rows) if cards + rows else 0.5
    return cards + rest * share, rows + rest * (1 - share)


def _predicted_caps(page_at, listed_counts, asked: tuple[int, int]) -> tuple[int, int]:
    """The caps to render at first: those asked, or, when the page they give would pass
    MAX_BYTES, lower ones predicted from two small pages (none listed; PROBE_CAP cards and
    PROBE_CAP rows per rule, whose sections say what each added) instead of rendering a too-big
    page first. A big run otherwise rendered the page twice, the first time at about twice the
    size it may have."""
    cards, rows = listed_counts(asked)
    if cards + rows < PREDICT_FROM:
        return asked
    probe = tuple(min(cap, PROBE_CAP) for cap in asked)
    nothing, probed = render_html(page_at((0, 0))).encode("utf-8"), page_at(probe)
    card_growth, row_growth = _growth(nothing, render_html(probed).encode("utf-8"))
    probe_cards, probe_rows = _listed(probed)
    empty = len(nothing)
    card_bytes, row_bytes = card_growth / max(probe_cards, 1), row_growth / max(probe_rows, 1)

    def predicted(caps: tuple[int, int]) -> float:
        cards, rows = listed_counts(caps)
        return empty + card_bytes * cards + row_bytes * rows

    size, caps = empty + card_bytes * cards + row_bytes * rows, asked  # the lists at the caps asked, counted above
    if size <= MAX_BYTES:
        return asked
    # Lists shrink less than their caps (a rule with fewer episodes than its cap keeps them all),
    # so the caps are lowered until the page they list is predicted to fit: counting is cheap,
    # rendering a page found too big is not (the spinal benchmark's page: 5.3 MB at the caps one
    # step gave, rendered twice).
    for _ in range(MAX_PREDICTION_STEPS):
        factor = max(MAX_BYTES * 0.9 - empty, 0) / (size - empty)
        lower = tuple(min(cap, max(1, int(cap * factor))) for cap in caps)
        if lower == caps:
            break
        size, caps = predicted(lower), lower
        if size <= MAX_BYTES * 0.9:
            break
    return caps


def render_report(out_dir: Path, catalogue: Catalogue, *, worksheet_cap: int = 200, findings_cap: int = 200,
                  generated: datetime | None = None, written: tuple[dict, Bundle] | None = None) -> Path:
    """Read the output files in `out_dir`, write `out_dir/report.html` and return its path.

    worksheet_cap: episodes shown per rule in the worksheet (and per guidance among superseded);
    findings_cap: findings shown per rule in the findings table. True totals are always shown. If
    the page would pass MAX_BYTES, both caps are lowered (and the page says so).
    generated: the time printed as "generated"; defaults to the run's start (summary.json), so the
    same outputs always give the same bytes.
    written: the summary and bundle of a run still writing its other files into `out_dir`
    (audit.outputs.write): the page is rendered from them, and is the page `report DIR` renders
    from the folder once the run is done.
    """
    with in_memory():  # the bundle's small frames (audit.in_memory)
        outputs = load_outputs(Path(out_dir), worksheet_cap=worksheet_cap, findings_cap=findings_cap, written=written)
        return _render_report(outputs, catalogue, worksheet_cap, findings_cap, generated)


def _render_report(outputs: Outputs, catalogue: Catalogue, worksheet_cap: int, findings_cap: int,
                   generated: datetime | None) -> Path:
    out_dir = outputs.folder
    if outputs.code_titles:  # the official list's titles, where the run was given one, come first
        catalogue = replace(catalogue, titles={**catalogue.titles, **outputs.code_titles})
    asked = (worksheet_cap, findings_cap)
    breakdowns = area_breakdowns(outputs.bundle)

    @lru_cache(maxsize=None)  # the page at the caps asked is built once, whether or not it is predicted to fit
    def page_at(caps: tuple[int, int]) -> ReportPage:
        note = "" if caps == asked else (
            f"To keep this page under 5 MB it lists at most {caps[0]:,} episodes per rule "
            f"(asked for {worksheet_cap:,}) and {caps[1]:,} findings per rule (asked for {findings_cap:,}).")
        return build_page(outputs, catalogue, worksheet_cap=caps[0], findings_cap=caps[1], generated=generated,
                          size_note=note, breakdowns=breakdowns)

    caps = _predicted_caps(page_at, lambda caps: listed_counts(outputs, *caps), asked)
    while True:
        page = render_html(page_at(caps)).encode("utf-8")  # encoded once, measured and written (5 MB: 7 ms)
        smaller = tuple(min(cap, max(1, int(cap * MAX_BYTES * 0.9 / len(page)))) for cap in caps)
        if len(page) <= MAX_BYTES or smaller == caps:
            break
        caps = smaller
    target = out_dir / REPORT_HTML
    staging = out_dir / f".{REPORT_HTML}.tmp-{os.getpid()}"
    staging.write_bytes(page)  # the bytes write_text(encoding="utf-8", newline="\n") wrote: no line end translated
    os.replace(staging, target)
    return target
