"""report.html in headless Chromium: it loads cleanly, offline, and its filters work.

Chromium is driven from the command line (no new Python dependencies): `--dump-dom` prints the
DOM after the page's script has run, `--screenshot` saves a PNG. Console messages go to stderr
with `--enable-logging=stderr`; the page's Content-Security-Policy turns any attempt to reach the
network into a console message too, and the host resolver maps every name to nowhere.
"""

from __future__ import annotations

import re
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
    cards = dom.find_all("article", data_filter_item="worksheet")
    assert all(("error" in c.attrs["data-severity"].split()) != c.hidden for c in cards)


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
    cards = dom.find_all("article", data_filter_item="worksheet")
    visible = {c.attrs["data-episode-id"] for c in cards if not c.hidden}
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
