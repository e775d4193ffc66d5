"""report.html: rendered from the output files, asserted on by parsing the HTML (stdlib only)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from audit import outputs
from audit.catalogue import load_catalogue
from audit.errors import UserError
from audit.pipeline import AuditOptions, run_audit
from audit.rules import RULES
from reports import align, render_report
from reports.render import TEMPLATES
from tests.conftest import AS_OF, EXAMPLES, FIXTURES, PINNED_TIME

HOSTILE = ("<script>alert(1)</script>", "{{ 7*7 }}")
PAGE_TAGS = {
    "#document", "html", "head", "meta", "title", "style", "body", "script", "header", "nav", "main", "section",
    "footer", "article", "div", "p", "h1", "h2", "h3", "dl", "dt", "dd", "ul", "li", "a", "span", "em", "b", "bdi", "i",
    "small", "code", "br", "details", "summary", "table", "caption", "colgroup", "col", "thead", "tbody", "tr",
    "th", "td", "form", "label", "input", "select", "option", "button", "output",
}
EXAMPLE_FILES = [EXAMPLES / "hes_episodes.csv", EXAMPLES / "long_procedures.csv"]


# --- A tiny DOM over html.parser -----------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def words(self) -> str:
        return " ".join(self.text().split())

    def iter(self):
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str | None = None, **attrs) -> list[Node]:
        """Elements with this tag whose attributes equal the given values (True: present)."""
        wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        return [
            n for n in self.iter()
            if (tag is None or n.tag == tag)
            and all((k in n.attrs) if v is True else n.attrs.get(k) == v for k, v in wanted.items())
        ]

    def find(self, tag: str | None = None, **attrs) -> Node:
        found = self.find_all(tag, **attrs)
        assert len(found) == 1, f"expected one <{tag}> with {attrs}, found {len(found)}"
        return found[0]

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    @property
    def hidden(self) -> bool:
        return "hidden" in self.attrs


class _Builder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return
        raise AssertionError(f"</{tag}> closes nothing")

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse_html(text: str) -> Node:
    builder = _Builder()
    builder.feed(text)
    builder.close()
    assert builder.stack == [builder.root], f"unclosed: {[n.tag for n in builder.stack[1:]]}"
    return builder.root


def read_frame(out: Path, name: str) -> pl.DataFrame:
    return pl.read_csv(out / name, infer_schema=False).with_columns(pl.all().fill_null(""))


# --- Fixtures ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    out: Path
    html: str
    dom: Node
    findings: pl.DataFrame
    episodes: pl.DataFrame
    sequences: pl.DataFrame


def audit_into(inputs: list[Path], out: Path) -> Path:
    """The output files of a run (without its report)."""
    result = run_audit(AuditOptions(inputs=inputs, as_of=AS_OF), load_catalogue(), PINNED_TIME)
    out.mkdir(parents=True, exist_ok=True)
    outputs.write(result, out)
    return out


def rendered(out: Path, **options) -> Rendered:
    path = render_report(out, load_catalogue(), **options)
    html = path.read_text(encoding="utf-8")
    return Rendered(out, html, parse_html(html), read_frame(out, "findings.csv"),
                    read_frame(out, "episodes.csv"), read_frame(out, "sequences.csv"))


@pytest.fixture(scope="module")
def example_outputs(tmp_path_factory) -> Path:
    return audit_into(EXAMPLE_FILES, tmp_path_factory.mktemp("examples") / "out")


@pytest.fixture(scope="module")
def report(example_outputs) -> Rendered:
    return rendered(example_outputs)


def worksheet_episode_ids(findings: pl.DataFrame, episodes: pl.DataFrame) -> set[str]:
    """The worklist: an error or warning finding, or a non-compliant pair."""
    by_status = episodes.filter(pl.col("status") == "non-compliant")["episode_id"]
    by_finding = findings.filter(pl.col("severity").is_in(["error", "warning"]))["episode_id"]
    return set(by_status) | set(by_finding)


def superseded_only_ids(findings: pl.DataFrame, episodes: pl.DataFrame) -> set[str]:
    """The "check against the replacement" list: superseded and nothing else."""
    by_status = episodes.filter(pl.col("status") == "superseded")["episode_id"]
    by_finding = findings.filter(pl.col("severity") == "superseded")["episode_id"]
    return (set(by_status) | set(by_finding)) - worksheet_episode_ids(findings, episodes)


def card(report: Rendered, episode_id: str) -> Node:
    return report.dom.find("article", data_episode_id=episode_id)


def item(report: Rendered, episode_id: str) -> Node:
    """The worklist entry (row and card) of one episode."""
    return report.dom.find("tbody", data_episode_id=episode_id)


def count(node: Node, key: str) -> int:
    return int(node.find(data_count=key).words().replace(",", ""))


# --- Header and summary --------------------------------------------------------------------------


def test_header_names_run_inputs_catalogue_and_version(report):
    summary = json.loads((report.out / "summary.json").read_text(encoding="utf-8"))
    header = report.dom.find("header").words()
    assert "21 November 2026, 02:00 GMT" in header  # run date, UK local time
    assert "As of 21 November 2026" in header
    for f in summary["inputs"]:
        assert Path(f["path"]).name in header
        assert f"{f['rows_read']} rows, sha256 {f['sha256'][:12]}" in header
    assert summary["catalogue_version"] in header
    assert f"nice-audit {summary['tool_version']}" in header
    assert "Guidance matched IPG319, IPG366" in header


def test_summary_sentence_gives_the_frames_counts(report):
    sentence = report.dom.find("p", id="summary").words()
    matched = report.episodes["episode_id"].n_unique()
    non_compliant = report.episodes.filter(pl.col("status") == "non-compliant")["episode_id"].n_unique()
    superseded = report.episodes.filter(pl.col("status") == "superseded")["episode_id"].n_unique()
    totals = json.loads((report.out / "summary.json").read_text(encoding="utf-8"))["totals"]
    assert sentence.startswith(f"{totals['episodes_audited']} episodes audited from 2 files "
                               f"({totals['rows_read']} rows read, {totals['rows_rejected']} rejected)")
    assert f"; {matched} matched NICE guidance; {non_compliant} non-compliant; " \
           f"{superseded} follow superseded guidance" in sentence
    assert f"{report.findings.height} findings" in sentence
    worksheet = len(worksheet_episode_ids(report.findings, report.episodes))
    check = len(superseded_only_ids(report.findings, report.episodes))
    assert f"The worklist has {worksheet} episodes to send back to coders; {check} more episodes only follow " \
           "superseded guidance: check them against the replacement." in sentence


# --- Compliance by guidance ----------------------------------------------------------------------


def test_compliance_counts_equal_the_episodes_frame(report):
    table = report.dom.find("table", id="compliance-table")
    rows = table.find_all("tr", data_guidance_row=True)
    assert {r.attrs["data-guidance-row"] for r in rows} == set(report.episodes["guidance_id"])
    for row in rows:
        these = report.episodes.filter(pl.col("guidance_id") == row.attrs["data-guidance-row"])
        statuses = these["status"].value_counts()
        by_status = dict(zip(statuses["status"], statuses["count"]))
        assert count(row, "episodes") == these.height
        for status in ("compliant", "non-compliant", "superseded", "predates-guidance"):
            assert count(row, status) == by_status.get(status, 0), status
        judged = these.height - by_status.get("predates-guidance", 0) - by_status.get("date-uncertain", 0)
        assert row.find(data_count="percent").words() == f"{by_status.get('compliant', 0) / judged:.1%}"


def test_compliance_links_to_nice_and_shows_lineage(report):
    catalogue = load_catalogue()
    table = report.dom.find("table", id="compliance-table")
    for gid in ("IPG319", "IPG366"):
        row = table.find("tr", data_guidance_row=gid)
        assert row.attrs["id"] == f"guidance-{gid}"  # where the page's guidance ids link to
        assert row.find("th").words().startswith(gid)
        link = row.find("a", class_="nice")  # the NICE page is the secondary link
        assert link.attrs["href"] == catalogue.guidance[gid].url and gid in link.words()
        assert catalogue.guidance[gid].title in row.words()
    header_links = report.dom.find("header").find_all("a")
    assert {a.attrs["href"] for a in header_links} >= {"#guidance-IPG319", "#guidance-IPG366"}
    lineage = table.find("tr", data_guidance_row="IPG319").find(data_lineage=True)
    assert lineage.words() == "IPG319 → replaced by IPG544, January 2016"
    assert not table.find("tr", data_guidance_row="IPG366").find_all(data_lineage=True)


# --- Findings by rule, severity, area ------------------------------------------------------------


def test_rule_table_counts_each_rule_with_its_standard(report):
    table = report.dom.find("table", id="rules-table")
    for rule_id, info in RULES.items():
        row = table.find("tr", data_rule_row=rule_id)
        these = report.findings.filter(pl.col("rule_id") == rule_id)
        assert info.standard in row.words()
        assert count(row, "findings") == these.height
        for severity in ("error", "warning", "superseded"):
            assert count(row, severity) == these.filter(pl.col("severity") == severity).height
        assert count(row, "episodes") == these["episode_id"].n_unique()


def test_severity_table_counts(report):
    table = report.dom.find("table", id="severity-table")
    for severity in ("error", "warning", "superseded"):
        these = report.findings.filter(pl.col("severity") == severity)
        row = table.find("tr", data_severity_row=severity)
        assert (count(row, "findings"), count(row, "episodes")) == (these.height, these["episode_id"].n_unique())
        assert severity in row.words()  # the label, not only the colour


@pytest.mark.parametrize("column", ["provider", "specialty", "consultant"])
def test_breakdowns_by_area_count_the_frames(report, column):
    table = report.dom.find("table", id=f"by-{column}")
    rows = {r.attrs["data-value"]: [td.words() for td in r.find_all("td")] for r in table.find("tbody").find_all("tr")}
    values = set(report.findings[column]) | set(report.episodes[column])
    assert set(rows) == values
    for value, cells in rows.items():
        pairs = report.episodes.filter(pl.col(column) == value)
        found = report.findings.filter(pl.col(column) == value)
        assert int(cells[0]) == pairs.height
        assert int(cells[1]) == pairs.filter(pl.col("status") == "compliant").height
        assert int(cells[5]) == found.height
        assert int(cells[6]) == found.filter(pl.col("severity") == "error").height


def test_a_breakdown_links_each_count_of_a_value_but_not_of_a_missing_one(tmp_path):
    """A provider left blank is "(not recorded)", with plain counts (there is no filter for a
    missing value); a provider with spaces and an ampersand links its counts, URL-quoted."""
    lines = (EXAMPLES / "hes_episodes.csv").read_text(encoding="utf-8").splitlines()
    edited = [lines[0]] + [
        line.replace(",RTH,", ",,", 1) if n % 3 == 0 else line.replace(",RTH,", ",R T&H,", 1)
        for n, line in enumerate(lines[1:])
    ]
    export = tmp_path / "episodes.csv"
    export.write_text("\n".join(edited) + "\n", encoding="utf-8")
    page = rendered(audit_into([export], tmp_path / "out"))
    rows = {r.attrs["data-value"]: r for r in page.dom.find("table", id="by-provider").find("tbody").find_all("tr")}
    missing, spaced = rows[""], rows["R T&H"]
    assert missing.find("th").words() == "(not recorded)" and not missing.find_all("a")
    assert "title" not in missing.find_all("td")[4].attrs  # no percentage note either
    assert int(missing.find_all("td")[0].words()) == page.episodes.filter(pl.col("provider") == "").height > 0
    links = [a.attrs["href"] for a in spaced.find_all("a")]
    assert links and all(href.startswith("#filter=provider:R%20T%26H") for href in links)
    assert "#filter=provider:R%20T%26H&in=findings" in links


# --- Findings table ------------------------------------------------------------------------------


def test_findings_table_has_every_finding_with_filter_attributes(report):
    rows = report.dom.find("table", id="findings-table").find("tbody").find_all("tr")
    assert len(rows) == report.findings.height
    statuses = {(e, g): s for e, g, s in report.episodes.select("episode_id", "guidance_id", "status").iter_rows()}
    for row, finding in zip(rows, report.findings.iter_rows(named=True)):
        assert row.attrs["data-episode-id"] == finding["episode_id"]
        assert row.attrs["data-guidance"] == finding["guidance_id"]
        assert row.attrs["data-rule"] == finding["rule_id"]
        assert row.attrs["data-severity"] == finding["severity"]
        assert row.attrs["data-status"] == statuses.get((finding["episode_id"], finding["guidance_id"]), "")
        assert " ".join(finding["message"].split()) in row.words()


# --- Worksheet -----------------------------------------------------------------------------------


def worklist_items(report: Rendered, kind: str = "worklist") -> list[Node]:
    return report.dom.find_all("tbody", data_filter_item=kind)


def test_worklist_has_one_row_per_episode_to_send_back(report):
    items = worklist_items(report)
    ids = [i.attrs["data-episode-id"] for i in items]
    assert len(ids) == len(set(ids)) and set(ids) == worksheet_episode_ids(report.findings, report.episodes)
    check = {i.attrs["data-episode-id"] for i in worklist_items(report, "check")}
    assert {"900000000002", "900000000010", "900000000022", "L0009"} <= set(ids) | check
    assert "900000000003" in ids  # a warning only: listed too
    assert "900000000001" not in ids  # compliant, no finding
    errors = set(report.findings.filter(pl.col("severity") == "error")["episode_id"])
    with_error = [eid in errors or eid in set(report.episodes.filter(pl.col("status") == "non-compliant")["episode_id"])
                  for eid in ids]
    assert with_error == sorted(with_error, reverse=True)  # errors first
    assert ids[:sum(with_error)] == sorted(ids[:sum(with_error)])  # then by episode id
    for item in items:  # the row names the rules that fired and where
        eid = item.attrs["data-episode-id"]
        found = report.findings.filter(pl.col("episode_id") == eid)
        row = item.find("tr", class_="wl-row")
        assert set(item.attrs["data-rule"].split()) == set(found["rule_id"])
        assert all(rule in row.words() for rule in found["rule_id"])
        positions = sorted({int(p) for p in found["position"] if p})  # the examples' positions are numbers
        assert row.find_all("td")[-1].words() == (", ".join(map(str, positions)) or "–")
        assert item.find("details").find("article").attrs["data-episode-id"] == eid  # its card, on demand


def test_superseded_only_episodes_are_a_separate_list(report):
    ids = {i.attrs["data-episode-id"] for i in worklist_items(report, "check")}
    assert ids == superseded_only_ids(report.findings, report.episodes) and ids
    assert not ids & {i.attrs["data-episode-id"] for i in worklist_items(report)}
    for item in worklist_items(report, "check"):
        assert item.attrs["data-severity"] in ("superseded", "")


def test_worksheet_cards_show_each_finding_and_mark_its_position(report):
    for episode_id in sorted(worksheet_episode_ids(report.findings, report.episodes)):
        node = card(report, episode_id)
        findings = report.findings.filter(pl.col("episode_id") == episode_id)
        items = node.find("ul", class_="card-findings").find_all("li")
        assert sorted(i.attrs["data-rule"] for i in items) == sorted(findings["rule_id"])
        for message in findings["message"]:
            assert any(" ".join(message.split()) in i.words() for i in items)
        flagged = set(findings["position"]) - {""}
        for row in node.find("table", class_="data seq").find("tbody").find_all("tr"):
            position = row.find("th").words()
            if position in flagged:
                rules = findings.filter(pl.col("position") == position)["rule_id"]
                assert "off" in row.classes()
                assert "⚠" in row.words()
                assert all(rule in row.attrs["aria-label"] and rule in row.words() for rule in rules)
            else:
                assert "off" not in row.classes() and "aria-label" not in row.attrs


def test_worksheet_shows_the_full_sequence_with_titles(report):
    rows = card(report, "900000000002").find("table", class_="data seq").find("tbody").find_all("tr")
    expected = report.sequences.filter(pl.col("episode_id") == "900000000002")
    assert [(r.find("th").words(), r.find_all("td")[0].words().lstrip("⚠ ")) for r in rows] == \
           list(expected.select("position", "code").iter_rows())
    assert "Destruction of intervertebral disc NEC" in rows[0].words()
    assert "Electrocauterisation of organ" in rows[1].words()
    assert "off" in rows[1].classes()  # V55 should be at position 2; Y10.2 is there
    invalid = card(report, "900000000028").find("table", class_="data seq").find("tbody").find_all("tr")[2]
    assert "12345" in invalid.words() and "not an OPCS-4 code" in invalid.words()


def test_worksheet_puts_recorded_beside_expected(report):
    for pair in report.episodes.filter(pl.col("status").is_in(["non-compliant", "superseded"])).iter_rows(named=True):
        table = card(report, pair["episode_id"]).find("table", data_guidance_id=pair["guidance_id"])
        cells = [[td.words() for td in line.find_all("td")] for line in table.find("tbody").find_all("tr")]
        assert " ".join(recorded for recorded, _, _ in cells if recorded != "—") == pair["actual_sequence"]
        assert " ".join(expected for _, expected, _ in cells if expected != "—") == pair["expected_sequence"]
        assert any(check != "✓" for _, _, check in cells) or pair["status"] == "superseded"


def test_worksheet_marks_missing_and_misplaced_codes(report):
    lines = card(report, "900000000009").find("table", data_guidance_id="IPG319").find("tbody").find_all("tr")
    assert [(line.attrs.get("class", ""), " ".join(td.words() for td in line.find_all("td"))) for line in lines] == [
        ("", "V52.2 V52.2 ✓"),
        ("x l-misplaced", "— V55.- ⚠ out of place"),
        ("", "Y10.2 Y10.2 ✓"),
        ("x l-misplaced", "V55.1 — ⚠ out of place"),
        ("", "Y53.4 Y53.4 ✓"),
        ("", "Z99.2 Z99.2 ✓"),
    ]


# --- Superseded guidance and data quality --------------------------------------------------------


def test_superseded_section_heads_the_list_with_each_guidance(report):
    superseded = report.episodes.filter(pl.col("status") == "superseded")
    section = report.dom.find("section", id="superseded")
    heads = section.find("ul", class_="superseded-guidance").find_all("li")
    assert {h.attrs["id"] for h in heads} == {f"superseded-{g}" for g in set(superseded["guidance_id"])}
    head = section.find("li", id="superseded-IPG319")
    assert "IPG319 → replaced by IPG544, January 2016" in head.words()
    drill = head.find("a", class_="drill")
    assert drill.words() == str(superseded.filter(pl.col("guidance_id") == "IPG319")["episode_id"].n_unique())
    assert drill.attrs["href"] == "#filter=guidance:IPG319,status:superseded&in=check"


def test_data_quality_lists_invalid_values_and_codes_after_no_operation(report):
    section = report.dom.find("section", id="data-quality")
    invalid = {r.find("th").words() for r in section.find("table", id="invalid-values").find("tbody").find_all("tr")}
    assert invalid == set(report.findings.filter(pl.col("rule_id") == "invalid-code")["code"])
    assert invalid == {"Z94", "12345", "I123", "V5"}
    no_op = {r.find("th").words(): r.find_all("td")[0].words()
             for r in section.find("table", id="no-operation").find("tbody").find_all("tr")}
    assert no_op == {"900000000026": "W90.3 Y53.4", "L0004": "W90.3 Y53.4"}
    assert "No rows were rejected." in section.words()


def test_rejected_rows_are_counted_by_reason(tmp_path, example_outputs):
    out = tmp_path / "out"
    shutil.copytree(example_outputs, out)
    pl.DataFrame({
        "source_file": ["a.csv", "a.csv", "b.csv"], "source_row": ["2", "7", "3"],
        "episode_id": ["", "X1", "X2"], "reason": ["missing episode id", "duplicate", "duplicate"],
    }).write_csv(out / "rejected.csv")
    table = rendered(out).dom.find("table", id="rejected-reasons")
    rows = [(r.find("th").words(), r.find("td").words()) for r in table.find("tbody").find_all("tr")]
    assert rows == [("duplicate", "2"), ("missing episode id", "1")]


# --- Caps, determinism, robustness ---------------------------------------------------------------


def test_caps_show_true_totals_and_point_to_findings_csv(tmp_path, example_outputs):
    out = tmp_path / "out"
    shutil.copytree(example_outputs, out)
    capped = rendered(out, worksheet_cap=1, findings_cap=1)
    rules = set(capped.findings["rule_id"])
    rows = capped.dom.find("table", id="findings-table").find("tbody").find_all("tr")
    assert sorted(r.attrs["data-rule"] for r in rows) == sorted(rules)  # one per rule
    findings_section = capped.dom.find("section", id="findings").words()
    assert f"Showing {len(rules)} of {capped.findings.height} findings" in findings_section
    assert "findings.csv" in findings_section
    worksheet = capped.dom.find("section", id="worksheet")
    listed = set(worksheet_episode_ids(capped.findings, capped.episodes))
    items = worksheet.find_all("tbody", data_filter_item="worklist")
    assert len(items) < len(listed) and f"Listing {len(items)} of {len(listed)} episodes." in worksheet.words()
    coverage = worksheet.find("table", id="worksheet-coverage")
    these = capped.findings.filter(pl.col("episode_id").is_in(listed))
    for rule_id in set(these["rule_id"]):
        row = coverage.find("tr", data_cap_rule=rule_id)
        assert count(row, "total") == these.filter(pl.col("rule_id") == rule_id)["episode_id"].n_unique()
        assert 1 <= count(row, "shown")
        assert sum(rule_id in i.attrs["data-rule"].split() for i in items) == count(row, "shown")


def test_same_outputs_give_the_same_bytes(tmp_path, example_outputs, report):
    out = tmp_path / "out"
    shutil.copytree(example_outputs, out)
    again = render_report(out, load_catalogue())
    assert again.read_bytes() == (example_outputs / "report.html").read_bytes()
    later = render_report(out, load_catalogue(), generated=datetime(2027, 1, 2, 3, 4, tzinfo=timezone.utc))
    assert "2 January 2027, 03:04 GMT" in later.read_text(encoding="utf-8")


def test_empty_run_renders(tmp_path):
    source = tmp_path / "none.csv"
    source.write_text("EPIKEY,EPISTART,OPERTN_01,OPDATE_01\n1,2020-01-01,W903,2020-01-01\n", encoding="utf-8")
    empty = rendered(audit_into([source], tmp_path / "out"))
    text = empty.dom.words()
    assert "No episode matched any guidance in the catalogue." in text
    assert "No findings: every audited episode follows the rules checked." in text
    assert "No episode needs to go back to coders." in text
    assert not empty.dom.find_all("article")


def test_missing_outputs_are_a_user_error(tmp_path):
    with pytest.raises(UserError, match="summary.json: missing"):
        render_report(tmp_path, load_catalogue())


# --- Escaping ------------------------------------------------------------------------------------


def hostile_outputs(out: Path) -> Path:
    """A tiny output folder with markup in every text field the page shows."""
    script, braces = HOSTILE
    out.mkdir()
    shutil.copy(EXAMPLES.parent / "examples" / "README.md", out / "README.md")  # unrelated files are ignored
    summary = {
        "tool_version": "0.1.0", "run_started": "2026-11-21T02:00:00+00:00", "as_of": "2026-11-21",
        "catalogue_version": braces, "guidance_in_catalogue": 1,
        "inputs": [{"path": f"in/{script}.csv", "layout": braces, "sha256": script, "rows_read": 1,
                    "rows_rejected": 1, "rows_audited": 1, "episodes_audited": 1, "invalid_dates": 0,
                    "columns_present": ["provider", "specialty", "consultant"]}],
        "totals": {"rows_read": 2, "rows_rejected": 1, "rows_audited": 1, "episodes_audited": 1},
        "data_quality": {},
    }
    (out / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    common = {"provider": script, "specialty": braces, "consultant": f"{script}{braces}", "source_file": script}
    pl.DataFrame([
        {"episode_id": script, "guidance_id": "IPG319", "code_set": braces, "rule_id": "levels-not-second",
         "severity": "error", "position": "2", "code": script, "expected": braces, "message": f"{script} {braces}",
         **common},
        {"episode_id": braces, "guidance_id": "", "code_set": "", "rule_id": script, "severity": script,
         "position": script, "code": braces, "expected": script, "message": braces, **common},
        {"episode_id": braces, "guidance_id": "", "code_set": "", "rule_id": "invalid-code", "severity": "error",
         "position": "1", "code": script, "expected": script, "message": script, **common},
    ]).write_csv(out / "findings.csv")
    pl.DataFrame([
        {"episode_id": script, "guidance_id": "IPG319", "code_set": braces, "position": "1",
         "episode_date": braces, "date_source": script, "status": "non-compliant", "errors": "1",
         "warnings": "0", **common, "actual_sequence": f"V52.2 {script}", "expected_sequence": f"V52.2 {braces}"},
    ]).write_csv(out / "episodes.csv")
    pl.DataFrame([
        {"episode_id": script, "position": "1", "code": "V52.2", "code_kind": "procedure"},
        {"episode_id": script, "position": "2", "code": script, "code_kind": "invalid"},
        {"episode_id": braces, "position": "1", "code": script, "code_kind": script},
    ]).write_csv(out / "sequences.csv")
    pl.DataFrame([{"source_file": script, "source_row": braces, "episode_id": script, "reason": script}]) \
        .write_csv(out / "rejected.csv")
    return out


def assert_escaped(html: str, dom: Node, *, expect_braces: bool = True) -> None:
    scripts = dom.find_all("script")
    assert len(scripts) == 1 and not scripts[0].attrs  # only the report's own script
    assert not [n for n in dom.iter() if any(k.startswith("on") for k in n.attrs)]
    assert {n.tag for n in dom.iter()} <= PAGE_TAGS  # nothing injected
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "alert(1)" in dom.words()  # shown as text
    assert "<script>alert" not in html
    if expect_braces:
        assert "{{ 7*7 }}" in dom.words()
    assert "49" not in re.sub(r"<style>.*?</style>|<script>.*?</script>", "", html, flags=re.S)


def test_hostile_field_values_are_shown_as_text(tmp_path):
    out = hostile_outputs(tmp_path / "out")
    page = rendered(out)
    assert_escaped(page.html, page.dom)
    script, braces = HOSTILE
    row = page.dom.find("table", id="findings-table").find("tbody").find_all("tr")[0]
    assert row.attrs["data-episode-id"] == script  # attribute values escaped, then parsed back intact
    assert item(page, script).find("th", scope="row", class_="key code").words() == script
    assert "IPG319" in item(page, script).find("tr", class_="wl-row").words()
    assert item(page, braces).attrs["data-rule"] == " ".join(sorted(["invalid-code", script]))


def test_markup_in_an_export_stays_text_end_to_end(tmp_path):
    out = audit_into([FIXTURES / "markup_in_every_text_column.csv"], tmp_path / "out")
    page = rendered(out)
    assert_escaped(page.html, page.dom)
    assert "<img src=x onerror=alert(2)>" in page.dom.words()


# --- Self-contained, accessible, template rules --------------------------------------------------


def test_page_is_self_contained(report):
    dom, catalogue = report.dom, load_catalogue()
    assert not [n for n in dom.iter() if "src" in n.attrs or "srcset" in n.attrs]
    assert not dom.find_all("link") and not dom.find_all("iframe") and not dom.find_all("object")
    style, script = dom.find("style").text(), dom.find("script").text()
    assert not re.search(r"url\(|@import|https?:", style)
    assert not re.search(r"fetch\(|XMLHttpRequest|WebSocket|EventSource|sendBeacon|import\(|https?:", script)
    urls = {g.url for g in catalogue.guidance.values()}
    for link in dom.find_all("a"):
        href = link.attrs["href"]
        assert href.startswith("#") or href in urls, href
    meta = dom.find("meta", http_equiv="Content-Security-Policy").attrs["content"]
    assert "default-src 'none'" in meta and "connect-src 'none'" in meta


def test_content_security_policy_allows_exactly_the_inline_style_and_script(report):
    meta = report.dom.find("meta", http_equiv="Content-Security-Policy").attrs["content"]

    def digest(text: str) -> str:
        return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    assert f"style-src '{digest(report.dom.find('style').text())}'" in meta
    assert f"script-src '{digest(report.dom.find('script').text())}'" in meta


def test_tables_have_scoped_headers_and_badges_have_text(report):
    for table in report.dom.find_all("table"):
        assert table.find_all("thead"), "every table has a header row"
        for th in table.find_all("th"):
            assert th.attrs.get("scope") in ("col", "row"), th.words()
    for badge in report.dom.find_all("span", class_=True):
        if "badge" in badge.classes():
            icon = "".join(n.words() for n in badge.find_all("i"))
            assert badge.words().replace(icon, "").strip(), "a badge is never colour or icon alone"


def test_filter_controls_are_hidden_without_javascript(report):
    assert report.dom.find("div", id="filters").hidden
    assert all(n.hidden for n in report.dom.find_all(data_js_only=True))


def test_templates_do_no_arithmetic():
    expression = re.compile(r"\{\{(.*?)\}\}|\{%(.*?)%\}", re.S)
    for template in sorted(TEMPLATES.glob("*.html")):
        for match in expression.finditer(template.read_text(encoding="utf-8")):
            code = (match.group(1) or match.group(2) or "").strip("-").strip()
            code = re.sub(r"\"[^\"]*\"|'[^']*'", "''", code)
            assert not re.search(r"[+*/%]|\s-\s|\|\s*(sum|round|int|float|length|count)\b", code), \
                f"{template.name}: {match.group(0)!r}"


# --- Scale ---------------------------------------------------------------------------------------


def worst_case_outputs(out: Path, per_rule: int | list[int], positions: int, rules: int | None = None) -> Path:
    """Every rule (or the first `rules`) firing on `per_rule` distinct episodes (or on as many as
    the list gives each rule in turn), each with `positions` coded positions and a long message:
    the most the caps can put on the page."""
    out.mkdir()
    rule_ids = list(RULES)[:rules]
    counts = per_rule if isinstance(per_rule, list) else [per_rule] * len(rule_ids)
    rule_of = [rule for rule, count in zip(rule_ids, counts) for _ in range(count)]
    n = len(rule_of)
    ids = [f"{i:012d}" for i in range(n)]
    where = {"provider": [f"R{i % 97:02d}" for i in range(n)], "specialty": [str(100 + i % 60) for i in range(n)],
             "consultant": [f"C{i % 5000:07d}" for i in range(n)], "source_file": ["exports/hes_2026_11.csv"] * n}
    message = ("V52.2 at position 1 needs an approach code (Y53.- or Y68.-) among the codes after it; none is "
               "recorded, and the qualifiers are out of order")
    pl.DataFrame({
        "episode_id": ids, "guidance_id": ["IPG319"] * n, "code_set": ["percutaneous"] * n,
        "rule_id": rule_of, "severity": ["error"] * n, "position": ["2"] * n,
        "code": ["Y10.2"] * n, "expected": ["V55.-"] * n, "message": [message] * n, **where,
    }).write_csv(out / "findings.csv")
    pl.DataFrame({
        "episode_id": ids, "guidance_id": ["IPG319"] * n, "code_set": ["percutaneous"] * n, "position": ["1"] * n,
        "episode_date": ["2013-05-20"] * n, "date_source": ["procedure_date"] * n, "status": ["non-compliant"] * n,
        "errors": ["1"] * n, "warnings": ["0"] * n, **where, "actual_sequence": ["V52.2 Y10.2 V55.1 Y53.4 Z99.2"] * n,
        "expected_sequence": ["V52.2 V55.- Y10.2 Y53.4 Z99.2"] * n,
    }).write_csv(out / "episodes.csv")
    codes = (["W90.3", "V52.2", "Y10.2", "V55.1", "Y53.4", "Z99.2", "Z94.2", "W08.1"] * 3)[:positions]
    pl.DataFrame({
        "episode_id": [i for i in ids for _ in codes], "position": [str(p) for _ in ids for p in range(1, positions + 1)],
        "code": codes * n, "code_kind": ["procedure"] * (positions * n),
    }).write_csv(out / "sequences.csv")
    summary = {"run_started": "2026-11-21T02:00:00+00:00", "as_of": "2026-11-21", "inputs": [],
               "totals": {"episodes_audited": 1_000_000}}
    (out / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return out


@pytest.mark.parametrize("positions", [4, pytest.param(24, marks=pytest.mark.slow)])
def test_caps_are_lowered_rather_than_pass_5_mb(tmp_path, positions):
    """200 episodes for every rule at the default caps would pass 5 MB: the caps give way, and say so."""
    out = worst_case_outputs(tmp_path / "out", per_rule=201, positions=positions)
    html = render_report(out, load_catalogue()).read_text(encoding="utf-8")
    assert len(html.encode()) < 5_000_000
    note = re.search(r"<p data-size-note>(.*?)</p>", html).group(1)
    shown = int(re.search(r"at most ([0-9,]+) episodes per rule", note).group(1).replace(",", ""))
    assert html.count('data-filter-item="worklist"') == len(RULES) * shown < len(RULES) * 200
    assert f"Listing {len(RULES) * shown:,} of {len(RULES) * 201:,} episodes." in html


def test_a_page_too_big_for_its_caps_is_not_rendered_whole_first(tmp_path, monkeypatch):
    """The lower caps are predicted from small pages, not found by rendering the too-big one."""
    from reports import render

    out = worst_case_outputs(tmp_path / "out", per_rule=201, positions=4)
    sizes = []
    real = render.render_html
    monkeypatch.setattr(render, "render_html", lambda page: sizes.append(len(real(page).encode())) or real(page))
    render_report(out, load_catalogue())
    assert max(sizes) <= render.MAX_BYTES and len(sizes) <= 4  # three small probes, then the page


def test_caps_are_lowered_until_uneven_lists_fit_before_the_page_is_rendered(tmp_path, monkeypatch):
    """Rules with fewer episodes than the lowered cap keep them all, so the lists shrink less than
    their caps: the caps go on down until the counted lists are predicted to fit, and the page is
    rendered once."""
    from reports import render

    out = worst_case_outputs(tmp_path / "out", per_rule=[400, 40] * (len(RULES) // 2 + 1), positions=4)
    sizes = []
    real = render.render_html
    monkeypatch.setattr(render, "render_html", lambda page: sizes.append(len(real(page).encode())) or real(page))
    html = render_report(out, load_catalogue()).read_text(encoding="utf-8")
    assert "data-size-note" in html  # the caps were lowered
    assert len(sizes) == 3 and max(sizes) <= render.MAX_BYTES  # two small probes, then the page once


def test_a_probe_page_says_what_its_cards_and_its_rows_added():
    """One probe page lists cards and rows at once: what grew in the worklists' sections is the
    cards', in the tables' the rows', and what grew elsewhere is shared in proportion."""
    from reports.render import _growth

    def page(worksheet, findings, areas):
        return (f'<body><section id="areas">{"a" * areas}</section><section id="worksheet">{"c" * worksheet}'
                f'</section><section id="findings">{"r" * findings}</section></body>').encode()

    cards, rows = _growth(page(10, 10, 5), page(310, 110, 25))
    assert (cards, rows) == (300 + 20 * 0.75, 100 + 20 * 0.25)
    assert _growth(page(10, 10, 5), page(10, 10, 5)) == (0, 0)


def test_a_run_within_the_caps_is_not_cut(tmp_path):
    out = worst_case_outputs(tmp_path / "out", per_rule=20, positions=4)
    html = render_report(out, load_catalogue()).read_text(encoding="utf-8")
    assert html.count('data-filter-item="worklist"') == len(RULES) * 20
    assert html.count('<tr data-filter-item="findings"') == len(RULES) * 20
    assert "data-size-note" not in html


# --- Alignment of recorded and expected sequences ------------------------------------------------


@pytest.mark.parametrize(
    ("actual", "expected", "lines"),
    [
        ("V52.2 V55.1", "V52.2 V55.1", [("V52.2", "V52.2", "ok"), ("V55.1", "V55.1", "ok")]),
        ("V52.2 Y10.2", "V52.2 V55.- Y10.2", [("V52.2", "V52.2", "ok"), ("", "V55.-", "missing"),
                                              ("Y10.2", "Y10.2", "ok")]),
        ("V52.2 Z67.6", "V52.2 Z99.-", [("V52.2", "V52.2", "ok"), ("Z67.6", "Z99.-", "differs")]),
        ("V40.1 Z67.6", "V40.1 [Y53.- if done] Z67.6", [("V40.1", "V40.1", "ok"), ("", "[Y53.- if done]", "optional"),
                                                       ("Z67.6", "Z67.6", "ok")]),
        ("V40.1 Y53.4", "V40.1 Y53.4 Z site", [("V40.1", "V40.1", "ok"), ("Y53.4", "Y53.4", "ok"),
                                               ("", "Z site", "missing")]),
        ("M61.1 Y75.2", "M61.1 Y75.1 or Y75.2 … [V38.8 if done]",
         [("M61.1", "M61.1", "ok"), ("Y75.2", "Y75.1 or Y75.2", "ok"), ("", "… [V38.8 if done]", "later")]),
        ("V52.2 Z99.2 Y53.4", "V52.2 Y53.4 Z99.2", [("V52.2", "V52.2", "ok"), ("", "Y53.4", "misplaced"),
                                                    ("Z99.2", "Z99.2", "ok"), ("Y53.4", "", "misplaced")]),
        ("V52.2 W90.3", "V52.2", [("V52.2", "V52.2", "ok"), ("W90.3", "", "extra")]),
        ("", "", []),
    ],
)
def test_align(actual, expected, lines):
    assert [(x.recorded, x.expected, x.state) for x in align.align(actual, expected)] == lines


def test_compliance_rows_say_what_is_not_verified(tmp_path):
    page = rendered(audit_into(EXAMPLE_FILES, tmp_path / "out"))
    row = page.dom.find("tr", data_guidance_row="IPG319")
    notes = [li.words() for li in row.find("details").find_all("li")]
    # IPG319's Z99.- site category could not be confirmed: the reader must be told.
    assert any("'Z99.- Intervertebral disc' could not be confirmed" in n for n in notes)


@pytest.mark.parametrize(("stamp", "shown"), [
    ("2026-11-21T02:00:00+00:00", "21 November 2026, 02:00 GMT"),
    ("2026-07-01T01:30:00+00:00", "1 July 2026, 02:30 BST"),  # summer: UK local time is an hour ahead
])
def test_times_are_uk_local_with_the_zone(stamp, shown):
    from reports.text import long_datetime

    assert long_datetime(datetime.fromisoformat(stamp)) == shown


# --- Coders and local ids ------------------------------------------------------------------------


def test_a_mapping_names_coder_and_local_id_and_the_report_uses_them(tmp_path):
    from audit.layouts import load_mapping

    export = pl.read_csv(EXAMPLES / "warehouse_export.csv", infer_schema=False)
    export = export.with_columns(
        pl.Series("Coded_By", [f"coder-{i % 2}" for i in range(export.height)]),
        pl.Series("Hospital_Number", [f"H{i:05d}" for i in range(export.height)]),
        pl.Series("Ward", ["W1"] * export.height),
    )
    (tmp_path / "in").mkdir()
    export.write_csv(tmp_path / "in" / "warehouse_export.csv")
    mapping = tmp_path / "mapping.toml"
    mapping.write_text((EXAMPLES / "warehouse_mapping.toml").read_text(encoding="utf-8")
                       + 'coder = "Coded_By"\nlocal_id = "Hospital_Number"\ncarry = ["Ward"]\n', encoding="utf-8")
    result = run_audit(AuditOptions(inputs=[tmp_path / "in" / "warehouse_export.csv"],
                                    mapping=load_mapping(mapping), as_of=AS_OF), load_catalogue(), PINNED_TIME)
    out = tmp_path / "out"
    out.mkdir()
    outputs.write(result, out)
    page = rendered(out)
    assert {"coder", "local_id", "Ward"} <= set(page.findings.columns) and page.findings.height
    expected = dict(zip(export["Spell_Episode_Number"], zip(export["Coded_By"], export["Hospital_Number"])))
    for node in page.dom.find_all("tbody", data_filter_item="worklist"):
        eid = node.attrs["data-episode-id"]
        coder, local_id = expected[eid]
        assert node.attrs["data-coder"] == coder
        assert local_id in node.find("tr", class_="wl-row").words()
        assert f"Ward W1" in node.find("article").words()  # carried columns are on the card
    options = page.dom.find("select", id="filter-coder").find_all("option")
    assert {o.attrs["value"] for o in options} - {""} == set(page.findings["coder"])
    by_coder = page.dom.find("table", id="by-coder")
    assert {r.attrs["data-value"] for r in by_coder.find("tbody").find_all("tr")} == \
           set(page.episodes["coder"]) | set(page.findings["coder"])
    head = [th.words() for th in page.dom.find("table", id="worklist-table").find_all("thead")[0].find_all("th")]
    assert "Local id" in head and "Coder" in head


def test_breakdowns_give_no_percentage_below_the_minimum(report):
    table = report.dom.find("table", id="by-provider")
    for row in table.find("tbody").find_all("tr"):
        pairs = report.episodes.filter(pl.col("provider") == row.attrs["data-value"])
        judged = pairs.filter(pl.col("status") != "predates-guidance").height
        percent = row.find_all("td")[4].words()
        assert (percent == "–") == (judged < 10)
    assert "at least 10 judged episodes" in report.dom.find("section", id="areas").words()


# --- Re-rendering against the run's catalogue ----------------------------------------------------

LOCAL_GUIDANCE = '''id = "IPG9001"
title = "A local entry, no code set"
url = "https://www.nice.org.uk/guidance/ipg9001"
published = "2020"
code_set_recovered = false
sources = ["test"]
'''


def test_report_dir_re_renders_with_the_catalogue_the_run_used(tmp_path):
    from reports.render import run_catalogue

    extra = tmp_path / "local.toml"
    extra.write_text(LOCAL_GUIDANCE, encoding="utf-8")
    used = load_catalogue([extra])
    result = run_audit(AuditOptions(inputs=EXAMPLE_FILES, as_of=AS_OF), used, PINNED_TIME)
    out = tmp_path / "out"
    out.mkdir()
    outputs.write(result, out)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert str(extra.resolve()) in summary["catalogue_files"]
    again = run_catalogue(out)
    assert again.version == used.version and "IPG9001" in again.guidance
    # The file changed since the run: an error naming both versions, unless --catalogue is given.
    extra.write_text(LOCAL_GUIDANCE.replace("A local entry", "An edited entry"), encoding="utf-8")
    edited = load_catalogue([extra]).version
    with pytest.raises(UserError, match=rf"used catalogue {used.version}.*now give {edited}.*--catalogue"):
        run_catalogue(out)
    given = run_catalogue(out, [extra])
    html = render_report(out, given).read_text(encoding="utf-8")
    assert f"rendered with catalogue {edited}; the run used {used.version}" in html
    extra.unlink()
    with pytest.raises(UserError, match="no longer exist"):
        run_catalogue(out)


def test_report_dir_finds_the_built_in_catalogue_after_nice_audit_moved(tmp_path):
    """The run's nice-audit was installed elsewhere (a venv since rebuilt): summary.json names its
    built-in files by paths that no longer exist, or that hold an older copy. Either way they are
    the built-in catalogue, not extra files (loaded twice, every entry was 'already defined')."""
    from reports.render import run_catalogue

    catalogue = load_catalogue([])
    result = run_audit(AuditOptions(inputs=EXAMPLE_FILES, as_of=AS_OF), catalogue, PINNED_TIME)
    out = tmp_path / "out"
    out.mkdir()
    outputs.write(result, out)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    old_copy = tmp_path / "old-venv" / "site-packages" / "audit" / "guidance"
    old_copy.mkdir(parents=True)
    for path in summary["catalogue_files"][:3]:  # some still there, the rest gone
        shutil.copy(path, old_copy)
    summary["catalogue_files"] = [str(old_copy / Path(f).name) for f in summary["catalogue_files"]]
    (out / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    assert run_catalogue(out).version == catalogue.version
    render_report(out, run_catalogue(out))


def test_every_rule_has_a_plain_title():
    from reports.common import RULE_TITLES

    assert set(RULES) <= set(RULE_TITLES)


# --- The report bundle ---------------------------------------------------------------------------


def test_the_page_is_rendered_from_the_bundle_without_reading_the_csvs(tmp_path, example_outputs, report, monkeypatch):
    from reports import frames

    out = tmp_path / "out"
    shutil.copytree(example_outputs, out)
    assert (out / "report-data" / "bundle.json").is_file()

    def no_csv(*args, **kwargs):
        raise AssertionError("the CSVs are read back although the run wrote a bundle")

    monkeypatch.setattr(frames, "_read_csv", no_csv)
    assert render_report(out, load_catalogue()).read_bytes() == (example_outputs / "report.html").read_bytes()


@pytest.mark.parametrize("damage", ["absent", "older format", "csv edited", "a file missing", "not JSON"])
def test_without_a_usable_bundle_the_page_is_built_from_the_csvs_and_is_the_same(tmp_path, example_outputs, report,
                                                                                   damage):
    out = tmp_path / "out"
    shutil.copytree(example_outputs, out)
    bundle_json = out / "report-data" / "bundle.json"
    if damage == "absent":
        shutil.rmtree(out / "report-data")
    elif damage == "older format":
        bundle_json.write_text(json.dumps({**json.loads(bundle_json.read_text()), "format": 0}))
    elif damage == "a file missing":
        (out / "report-data" / "rules.parquet").unlink()
    elif damage == "not JSON":
        bundle_json.write_text("{")
    else:  # a CSV rewritten after the run: its rows, not the bundle's, are what the page shows
        findings = pl.read_csv(out / "findings.csv", infer_schema=False)
        findings.head(1).with_columns(pl.lit("an edit").alias("message")).write_csv(out / "findings.csv")
        html = render_report(out, load_catalogue()).read_text(encoding="utf-8")
        assert "an edit" in html and "1 finding:" in html
        return
    assert render_report(out, load_catalogue()).read_bytes() == (example_outputs / "report.html").read_bytes()


def _warehouse_with_carried_columns(tmp_path: Path) -> AuditOptions:
    from audit.layouts import load_mapping

    export = pl.read_csv(EXAMPLES / "warehouse_export.csv", infer_schema=False).with_columns(
        Coded_By=pl.lit("coder-1"), Ward=pl.lit("W1"))
    export.write_csv(tmp_path / "warehouse_export.csv")
    mapping = tmp_path / "mapping.toml"
    mapping.write_text((EXAMPLES / "warehouse_mapping.toml").read_text(encoding="utf-8")
                       + 'coder = "Coded_By"\ncarry = ["Ward"]\n', encoding="utf-8")
    return AuditOptions(inputs=[tmp_path / "warehouse_export.csv"], mapping=load_mapping(mapping), as_of=AS_OF)


RUNS = {  # inputs whose bundles differ in shape: carried columns, rejected rows, no finding at all
    "examples": lambda tmp_path: AuditOptions(inputs=EXAMPLE_FILES, as_of=AS_OF),
    "carried columns": _warehouse_with_carried_columns,
    "markup everywhere": lambda tmp_path: AuditOptions(inputs=[FIXTURES / "markup_in_every_text_column.csv"],
                                                      as_of=AS_OF),
    "rejected rows": lambda tmp_path: AuditOptions(inputs=[FIXTURES / "duplicate_episode_ids.csv"], as_of=AS_OF),
    "no rows": lambda tmp_path: AuditOptions(inputs=[FIXTURES / "header_only.csv"], as_of=AS_OF),
}


@pytest.mark.parametrize("run", RUNS)
def test_a_run_renders_its_report_from_the_bundle_its_files_will_hold(tmp_path, run):
    """A run renders report.html from its summary and bundle in memory while its other files are
    written (audit.outputs.write's `then`): they are what the written files give back, and so the
    page is the one `report DIR` renders from the folder afterwards."""
    from reports.bundle import FRAMES, as_written, read_bundle
    from reports.frames import read_summary

    result = run_audit(RUNS[run](tmp_path), load_catalogue(), PINNED_TIME)
    out = tmp_path / "out"
    out.mkdir()
    handed = {}

    def then(summary, bundle):
        handed.update(summary=summary, bundle=bundle,
                      page=render_report(out, load_catalogue(), written=(summary, bundle)).read_bytes())

    outputs.write(result, out, then=then)
    on_disk = read_bundle(out)
    assert on_disk is not None and sorted(handed["bundle"].frames) == list(FRAMES)
    in_memory = as_written(handed["bundle"])
    assert json.dumps(in_memory.facts) == json.dumps(on_disk.facts)  # keys in the same order too
    assert (in_memory.worksheet_cap, in_memory.findings_cap) == (on_disk.worksheet_cap, on_disk.findings_cap)
    for name in FRAMES:
        assert in_memory[name].schema == on_disk[name].schema, name
        assert in_memory[name].equals(on_disk[name]), name
    assert json.loads(json.dumps(handed["summary"], default=int)) == read_summary(out)
    assert (out / "report.html").read_bytes() == handed["page"]
    assert render_report(out, load_catalogue()).read_bytes() == handed["page"]


def test_a_larger_cap_than_the_bundle_holds_is_read_from_the_csvs(tmp_path, example_outputs):
    from reports.bundle import read_bundle

    out = tmp_path / "out"
    shutil.copytree(example_outputs, out)
    bundle = read_bundle(out)
    assert bundle is not None and bundle.worksheet_cap == 200 and not bundle.covers(201, 200)
    from reports.frames import load_outputs

    assert load_outputs(out, worksheet_cap=500).bundle.worksheet_cap == 500


def test_a_smaller_cap_is_a_prefix_of_the_bundle(tmp_path, example_outputs):
    """Rendering with cap 1 from the bundle (built at 200) gives the page built at cap 1 from the CSVs."""
    out = tmp_path / "out"
    shutil.copytree(example_outputs, out)
    from_bundle = render_report(out, load_catalogue(), worksheet_cap=1, findings_cap=1).read_bytes()
    shutil.rmtree(out / "report-data")
    assert render_report(out, load_catalogue(), worksheet_cap=1, findings_cap=1).read_bytes() == from_bundle


# --- Right-to-left overrides ---------------------------------------------------------------------

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: reverses the text after it until the end of its paragraph
BLOCKS = {"td", "th", "li", "p", "dd", "dt", "caption", "summary", "option", "h1", "h2", "h3", "div", "label",
          "title"}


def unisolated(dom: Node) -> list[str]:
    """Text holding a U+202E that could reverse what follows it: neither inside a <bdi> nor the
    whole text of a block of its own (a table cell, a list item: each is a bidi paragraph)."""
    found = []

    def walk(node: Node, ancestors: list[Node]) -> None:
        for child in node.children:
            if isinstance(child, Node):
                if child.tag not in ("script", "style"):
                    walk(child, [*ancestors, node])
            elif RLO in child:
                value = child.strip()
                for element in reversed([*ancestors, node]):
                    if element.tag == "bdi":
                        break
                    if element.text().strip() != value:
                        found.append(f"{element.tag}: {element.words()[:120]!r}")
                        break
                    if element.tag in BLOCKS:
                        break

    walk(dom, [])
    return found


def test_right_to_left_overrides_are_isolated_wherever_the_page_shows_a_value(tmp_path):
    """U+202E in a file name and in every value an export carries (ids, provider, specialty,
    consultant, codes): on the cards, the worklist rows, the tables, the breakdowns, the data
    quality lists and the list of inputs, each is in a <bdi> or alone in its own cell."""
    export = tmp_path / f"hes{RLO}vsc.csv"
    header = "EPIKEY,PROCODE3,TRETSPEF,CONSULT,OPERTN_01,OPDATE_01,OPERTN_02,OPDATE_02,OPERTN_03,OPDATE_03\n"
    rows = [
        f"1{RLO}exe.txt,R{RLO}TH,1{RLO}10,C{RLO}123,V522,2012-03-14,Y102,2012-03-14,Q{RLO}99,2012-03-14",
        f"2{RLO}exe.txt,R{RLO}TH,1{RLO}10,C{RLO}123,-,2012-03-14,W{RLO}903,2012-03-14,,",
        f"2{RLO}exe.txt,R{RLO}TH,1{RLO}10,C{RLO}123,V522,2012-03-14,,,,",  # a duplicate id: rejected
        f"3{RLO}exe.txt,R{RLO}TH,1{RLO}10,C{RLO}123,V401,2013-05-20,,,,",
    ]
    export.write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    out = audit_into([export], tmp_path / "out")
    page = rendered(out)
    assert RLO in page.dom.find("table", id="inputs-table").words()  # the fixture reaches the page
    assert page.dom.find_all("article") and page.dom.find("table", id="by-provider")
    assert unisolated(page.dom) == []
