"""report.html in headless Chromium: it loads cleanly, offline, and its filters work.

Chromium is driven from the command line (no new Python dependencies): `--dump-dom` prints the
DOM after the page's script has run, `--screenshot` saves a PNG. Console messages go to stderr
with `--enable-logging=stderr`; the page's Content-Security-Policy turns any attempt to reach the
network into a console message too, and the host resolver maps every name to nowhere.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

from reports import render_report
from tests.test_report import EXAMPLE_FILES, audit_into, load_catalogue, parse_html

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
]


def chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
        "--host-resolver-rules=MAP * ~NOTFOUND", *args, url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def page_messages(stderr: str) -> list[str]:
    """Console output and script errors coming from the page (not Chromium's own chatter)."""
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


@pytest.fixture(scope="module")
def report_url(tmp_path_factory) -> str:
    out = audit_into(EXAMPLE_FILES, tmp_path_factory.mktemp("browser") / "out")
    return render_report(out, load_catalogue()).as_uri()


def listed(dom):
    """Every episode of the worklist and of the superseded-only list."""
    return [n for n in dom.find_all("tbody") if n.attrs.get("data-filter-item") in ("worklist", "check")]


def findings_rows(dom):
    return dom.find("table", id="findings-table").find("tbody").find_all("tr")


def test_page_loads_offline_without_console_errors(tmp_path, report_url):
    net_log = tmp_path / "net.json"
    run = chromium(tmp_path, report_url, f"--log-net-log={net_log}", "--dump-dom")
    assert page_messages(run.stderr) == []
    dom = parse_html(run.stdout)
    assert dom.find("html").attrs.get("data-js") == "ready"  # the script ran to its end
    assert not dom.find("div", id="filters").hidden  # controls appear only with scripts on
    assert not [row for row in findings_rows(dom) if row.hidden]
    assert dom.find("span", data_filter_count="findings").words() == f"{len(findings_rows(dom))} of " \
                                                                    f"{len(findings_rows(dom))} findings rows"
    sort_buttons = dom.find("table", id="findings-table").find("thead").find_all("button")
    assert len(sort_buttons) == len(dom.find("table", id="findings-table").find("thead").find_all("th"))
    # The NICE links are never fetched (Chromium's own background requests may appear in the log).
    requested = set(re.findall(r'"(https?://[^"\s]+)"', net_log.read_text(encoding="utf-8")))
    assert not [url for url in requested if "nice.org.uk" in url]


def test_fragment_filter_hides_rows(tmp_path, report_url):
    run = chromium(tmp_path, report_url + "#filter=severity:error", "--dump-dom")
    assert page_messages(run.stderr) == []
    dom = parse_html(run.stdout)
    rows = findings_rows(dom)
    assert {r.attrs["data-severity"] for r in rows if not r.hidden} == {"error"}
    assert [r for r in rows if r.attrs["data-severity"] != "error"] and \
           all(r.hidden for r in rows if r.attrs["data-severity"] != "error")
    items = listed(dom)
    assert items and all(("error" in i.attrs["data-severity"].split()) != i.hidden for i in items)


def test_filters_combine_with_a_search(tmp_path, report_url):
    url = report_url + "#filter=guidance:IPG319,rule:superseded-guidance&q=RRK"
    dom = parse_html(chromium(tmp_path, url, "--dump-dom").stdout)
    visible = [r for r in findings_rows(dom) if not r.hidden]
    findings = pl.read_csv(Path(report_url.removeprefix("file://")).with_name("findings.csv"), infer_schema=False)
    expected = findings.filter((pl.col("guidance_id") == "IPG319") & (pl.col("rule_id") == "superseded-guidance")
                               & (pl.col("provider") == "RRK"))
    assert sorted(r.attrs["data-episode-id"] for r in visible) == sorted(expected["episode_id"])


def test_status_filter_in_the_query_string(tmp_path, report_url):
    dom = parse_html(chromium(tmp_path, report_url + "?filter=status:superseded", "--dump-dom").stdout)
    visible = {i.attrs["data-episode-id"] for i in listed(dom) if not i.hidden}
    episodes = pl.read_csv(Path(report_url.removeprefix("file://")).with_name("episodes.csv"), infer_schema=False)
    assert visible == set(episodes.filter(pl.col("status") == "superseded")["episode_id"])


def test_screenshot(tmp_path, report_url):
    shot = tmp_path / "report.png"
    run = chromium(tmp_path, report_url, f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars")
    assert page_messages(run.stderr) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def test_hostile_values_never_run_or_fetch(tmp_path):
    """A report built from the hostile fixtures: no script from the data runs, nothing is fetched."""
    from tests.conftest import FIXTURES

    out = audit_into([FIXTURES / "markup_in_every_text_column.csv", FIXTURES / "nhs_number_column.csv"],
                     tmp_path / "out")
    url = render_report(out, load_catalogue()).as_uri()
    net_log = tmp_path / "net.json"
    run = chromium(tmp_path, url, f"--log-net-log={net_log}", "--dump-dom")
    dom = parse_html(run.stdout)
    assert dom.find("html").attrs.get("data-js") == "ready"
    assert "data-pwned" not in dom.find("body").attrs
    assert page_messages(run.stderr) == []
    requested = set(re.findall(r'"(https?://[^"\s]+)"', net_log.read_text(encoding="utf-8")))
    assert not [u for u in requested if "example.org" in u]
    # The payloads are on the page, as text.
    assert "document.body.setAttribute('data-pwned','script')" in run.stdout.replace("&#39;", "'")


# --- Driven through the DevTools protocol: clicks, downloads, sizes, print, scripts off ---------

from tests.cdp import Browser  # noqa: E402


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with Browser(tmp_path_factory.mktemp("cdp-profile")) as b:
        yield b


def visible(browser: Browser, kind: str) -> list[str]:
    return browser.evaluate(
        f"Array.from(document.querySelectorAll('[data-filter-item={kind}]')).filter(e => !e.hidden)"
        ".map(e => e.getAttribute('data-episode-id'))")


def drill_links(browser: Browser, selector: str) -> list[dict]:
    return browser.evaluate(
        f"Array.from(document.querySelectorAll('{selector} a.drill')).map(a => "
        "({href: a.getAttribute('href'), count: Number(a.textContent.replace(/,/g, ''))}))")


def test_drill_down_links_land_on_the_filtered_list_with_the_right_count(browser, report_url):
    browser.open(report_url)
    out = Path(report_url.removeprefix("file://")).parent
    episodes = pl.read_csv(out / "episodes.csv", infer_schema=False)
    compliance = drill_links(browser, "#compliance-table")
    rules = drill_links(browser, "#rules-table td[data-count=episodes]")
    assert compliance and rules
    for link in compliance + rules:  # the demo is within the caps: every listed count is complete
        browser.evaluate(f"location.hash = {link['href'][1:]!r}.replace(/^/, '#')")
        lists = visible(browser, "worklist") + visible(browser, "check")
        if "status:compliant" in link["href"] or "status:predates" in link["href"]:
            assert len(lists) <= link["count"]  # only those with a finding are listed
        else:
            assert len(lists) == link["count"], link["href"]
        what = browser.evaluate("document.querySelector('[data-filter-what]').textContent")
        assert what.startswith("Showing ") and what != "Showing everything"
    # Guidance and status together are that guidance's status.
    browser.evaluate("location.hash = '#filter=guidance:IPG319,status:non-compliant&in=worklist'")
    expected = episodes.filter((pl.col("guidance_id") == "IPG319") & (pl.col("status") == "non-compliant"))
    assert sorted(visible(browser, "worklist")) == sorted(expected["episode_id"])
    assert browser.evaluate("document.getElementById('worksheet').getBoundingClientRect().top") < 200  # landed
    browser.evaluate("location.hash = '#filter=provider:NO-SUCH-PROVIDER'")
    assert visible(browser, "worklist") == []
    assert browser.evaluate("document.querySelector('[data-empty-for=worklist]').hidden") is False
    assert "No episodes match" in browser.evaluate("document.querySelector('[data-empty-for=worklist]').textContent")
    assert browser.console_errors() == []


def download(browser: Browser, folder: Path, kind: str) -> str:
    browser.allow_downloads(folder)
    browser.events.clear()
    browser.evaluate(f"document.querySelector('button[data-download={kind}]').click()")
    while True:
        event = browser.wait_for("Browser.downloadProgress")
        if event["params"]["state"] == "completed":
            return Path(event["params"]["filePath"]).read_bytes().decode("utf-8")


def test_csv_download_has_the_filtered_rows_excel_safe(browser, tmp_path):
    out = audit_into(EXAMPLE_FILES, tmp_path / "out")
    # A consultant value Excel would run as a formula, and HES's "-" that must stay as it is.
    for name in ("findings.csv", "episodes.csv"):
        frame = pl.read_csv(out / name, infer_schema=False)
        frame.with_columns(
            pl.when(pl.col("episode_id") == "900000000002").then(pl.lit("=1+2")).otherwise(pl.col("consultant"))
            .alias("consultant"),
            pl.when(pl.col("episode_id") == "900000000002").then(pl.lit("-")).otherwise(pl.col("provider"))
            .alias("provider"),
        ).write_csv(out / name)
    url = render_report(out, load_catalogue()).as_uri()
    browser.open(url + "#filter=severity:error")
    text = download(browser, tmp_path / "downloads", "worklist")
    assert text.startswith("\ufeff")
    lines = text[1:].split("\r\n")
    assert lines[-1] == "" and lines[0].startswith("Episode,Date,Provider,Specialty,Consultant")
    rows = [line.split(",") for line in lines[1:-1]]
    assert [r[0] for r in rows] == visible(browser, "worklist")
    findings = pl.read_csv(out / "findings.csv", infer_schema=False)
    assert {r[0] for r in rows} == set(findings.filter(pl.col("severity") == "error")["episode_id"])
    row = next(r for r in rows if r[0] == "900000000002")
    assert row[2] == "-" and row[4] == "'=1+2"
    browser.open(url + "#filter=rule:approach-missing")
    shown = download(browser, tmp_path / "downloads2", "findings")[1:].split("\r\n")[1:-1]
    assert len(shown) == findings.filter(pl.col("rule_id") == "approach-missing").height


@pytest.mark.parametrize("fragment", ["", "#filter=severity:error&in=worklist"])
def test_no_sideways_scroll_at_390_px(browser, report_url, fragment):
    browser.open(report_url + fragment, width=390, height=844)
    browser.evaluate("document.querySelectorAll('.wl-card details').forEach(d => d.open = true)")
    assert browser.evaluate("document.documentElement.scrollWidth") <= 390
    # Key columns first: the episode id is the first column read, and stays in view as a table scrolls.
    assert browser.evaluate("document.querySelector('#worklist-table thead th.key').cellIndex") == 1


def test_print_is_a4_with_named_headers_and_no_sort_glyphs(browser, report_url, tmp_path):
    browser.open(report_url)
    browser.send("Emulation.setEmulatedMedia", session=True, media="print")
    try:
        glyphs = browser.evaluate("Array.from(document.querySelectorAll('button.sort'))"
                                  ".map(b => getComputedStyle(b, '::after').content)")
        assert glyphs and set(glyphs) == {"none"}
        heads = browser.evaluate("Array.from(document.querySelectorAll('table.data thead'))"
                                 ".map(h => [getComputedStyle(h).display, h.textContent.trim() !== ''])")
        assert heads and all(display == "table-header-group" and named for display, named in heads)
        assert browser.evaluate("getComputedStyle(document.querySelector('.wl-card')).display") == "none"
        assert browser.evaluate("getComputedStyle(document.querySelector('#worklist-table .tick .box')).display") \
            != "none"  # a box to tick
        unverified = browser.evaluate("document.querySelector('details.uncertain li').getClientRects().length")
        assert unverified > 0  # prints open
    finally:
        browser.send("Emulation.setEmulatedMedia", session=True, media="")
    pdf = tmp_path / "report.pdf"
    browser.pdf(pdf)
    assert pdf.read_bytes().startswith(b"%PDF")
    if shutil.which("pdftotext") and shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
        assert "(A4)" in info
        text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                              check=True).stdout
        assert "EPISODE" in text.upper() and "Done" in text and "↕" not in text


def test_scripts_off_shows_every_episode(tmp_path, report_url):
    with Browser(tmp_path / "profile-noscript", scripts=False) as b:
        b.open(report_url)
        assert b.evaluate("document.documentElement.dataset.js || ''") == ""
        out = Path(report_url.removeprefix("file://")).parent
        findings = pl.read_csv(out / "findings.csv", infer_schema=False)
        episodes = pl.read_csv(out / "episodes.csv", infer_schema=False)
        expected = set(findings["episode_id"]) | set(episodes.filter(
            pl.col("status").is_in(["non-compliant", "superseded"]))["episode_id"])
        shown = b.evaluate("Array.from(document.querySelectorAll('tbody[data-filter-item]'))"
                           ".filter(e => e.offsetParent !== null).map(e => e.getAttribute('data-episode-id'))")
        assert sorted(shown) == sorted(expected)
        assert b.evaluate("document.getElementById('filters').offsetParent") is None  # controls need scripts
        # A card opens from its row without scripts.
        b.evaluate("document.querySelector('.wl-card summary').click()")
        assert b.evaluate("document.querySelector('.wl-card details').open") is True
