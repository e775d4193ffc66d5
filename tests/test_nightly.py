"""Unattended operation: history, what changed, config, exit codes, safe outputs."""

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from audit import history
from audit.cli import fails
from tests.conftest import EXAMPLES, run_cli

CONSOLE_SCRIPT = Path(sys.executable).parent / "nice-audit"


def integrity_ok(path: Path) -> bool:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
HEADER = "episode_id,position,code,procedure_date\n"


def night(tmp_path, rows: str, *extra, name="exports.csv"):
    """One nightly run over a long export with the given rows, into tmp_path/out."""
    export = tmp_path / name
    export.write_text(HEADER + rows)
    result = run_cli("run", str(export), "--out", str(tmp_path / "out"), "--history", str(tmp_path / "h.sqlite"),
                     "--scope", "nightly", "--as-of", "2026-11-21", *extra)
    assert result.exit_code == 0, result.stderr
    return tmp_path / "out"


def changes(out: Path) -> set[tuple]:
    frame = pl.read_csv(out / "changes.csv", infer_schema=False)
    return set(frame.select("episode_id", "rule_id", "change").iter_rows())


FIRST = "A,1,V522,2012-01-01\nA,2,Y102,2012-01-01\nB,1,Y534,2012-01-01\nC,1,W371,2012-01-01\n"
# A's levels fixed, B still wrong, C now has an invalid code.
SECOND = "A,1,V522,2012-01-01\nA,2,V551,2012-01-01\nA,3,Y102,2012-01-01\nB,1,Y534,2012-01-01\nC,1,V5,2012-01-01\n"


def test_second_night_reports_new_resolved_and_still_open(tmp_path):
    first = night(tmp_path, FIRST)
    assert {c for _, _, c in changes(first)} == {"new"}
    second = night(tmp_path, SECOND)
    assert changes(second) == {
        ("A", "levels-not-second", "resolved"),
        ("A", "approach-missing", "still-open"),
        ("A", "site-missing", "still-open"),
        ("B", "subsidiary-code-primary", "still-open"),
        ("C", "invalid-code", "new"),
    }
    summary = json.loads((second / "summary.json").read_text())
    assert {k: summary["changes"][k] for k in ("new", "resolved", "still-open")} == {
        "new": 1, "resolved": 1, "still-open": 3}
    findings = pl.read_csv(second / "findings.csv", infer_schema=False)
    assert "first_seen" in findings.columns and findings["first_seen"].is_not_null().all()
    with sqlite3.connect(tmp_path / "h.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
        # Only open findings are stored per run: 4 after the first night, 4 after the second.
        assert conn.execute("SELECT count(*) FROM findings").fetchone()[0] == 8


def test_history_commands(tmp_path):
    night(tmp_path, FIRST)
    night(tmp_path, SECOND)
    listed = run_cli("history", "--history", str(tmp_path / "h.sqlite"))
    assert listed.exit_code == 0
    lines = listed.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("run id")
    run_id = lines[1].split()[0]
    shown = run_cli("history", "show", run_id, "--history", str(tmp_path / "h.sqlite"))
    assert shown.exit_code == 0 and "1 new, 1 resolved, 3 still open" in shown.stdout
    missing = run_cli("history", "show", "nope", "--history", str(tmp_path / "h.sqlite"))
    assert missing.exit_code == 2


def test_history_file_from_an_older_schema_is_upgraded(tmp_path):
    path = tmp_path / "h.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    history.migrate(conn, target=1)
    summary = {"by_guidance": {}, "inputs": [], "tool_version": "0.0.1", "catalogue_version": "x"}
    conn.execute("INSERT INTO runs VALUES ('old-run', '2026-11-19T02:00:00+00:00', '2026-11-19T02:01:00+00:00',"
                 " 'nightly', ?)", (json.dumps(summary),))
    conn.execute("INSERT INTO findings VALUES ('old-run', 'B', '', 'subsidiary-code-primary', 1)")
    conn.close()
    out = night(tmp_path, FIRST)
    assert ("B", "subsidiary-code-primary", "still-open") in changes(out)
    first_seen = pl.read_csv(out / "findings.csv", infer_schema=False).filter(pl.col("episode_id") == "B")["first_seen"]
    assert first_seen.to_list() == ["2026-11-19"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == history.SCHEMA_VERSION


def test_two_runs_at_once_are_both_recorded(tmp_path):
    export = tmp_path / "e.csv"
    export.write_text(HEADER + FIRST)
    procs = [
        subprocess.Popen([str(CONSOLE_SCRIPT), "run", str(export), "--out", str(tmp_path / f"out{i}"),
                          "--history", str(tmp_path / "h.sqlite"), "--quiet"])
        for i in range(2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert integrity_ok(tmp_path / "h.sqlite")
    with sqlite3.connect(tmp_path / "h.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 2


@pytest.mark.slow
class _BusyOnce:
    """A connection whose first statement SQLite answers "busy" without waiting, as it does to one
    of two runs creating a history at the same moment."""

    def __init__(self, conn, busy):
        self.conn, self.busy = conn, busy

    def execute(self, *args):
        if self.busy:
            self.busy.pop()
            error = sqlite3.OperationalError("database is locked")
            error.sqlite_errorcode = sqlite3.SQLITE_BUSY
            raise error
        return self.conn.execute(*args)

    def __getattr__(self, name):
        return getattr(self.conn, name)


@pytest.mark.parametrize("errors", [1, 3])
def test_a_history_answering_busy_at_once_is_opened_again(tmp_path, monkeypatch, errors):
    busy, connect = [True] * errors, sqlite3.connect
    monkeypatch.setattr(history.sqlite3, "connect", lambda *a, **k: _BusyOnce(connect(*a, **k), busy))
    conn = history.connect(tmp_path / "h.sqlite")
    assert not busy and conn.execute("PRAGMA user_version").fetchone()[0] == history.SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_history_busy_past_the_wait_is_one_line(tmp_path, monkeypatch):
    busy, connect = [True] * 1000, sqlite3.connect
    monkeypatch.setattr(history, "LOCK_WAIT_SECONDS", 0)
    monkeypatch.setattr(history.sqlite3, "connect", lambda *a, **k: _BusyOnce(connect(*a, **k), busy))
    with pytest.raises(history.UserError, match="locked by another process for too long"):
        history.connect(tmp_path / "h.sqlite")


@pytest.mark.parametrize("delay", [0.3, 0.8, 1.3, 1.8, 2.5])
def test_killed_run_leaves_previous_outputs_intact(tmp_path, delay):
    out, db = tmp_path / "out", tmp_path / "h.sqlite"
    args = [str(CONSOLE_SCRIPT), "run", str(EXAMPLES), "--mapping", str(EXAMPLES / "warehouse_mapping.toml"),
            "--out", str(out), "--history", str(db), "--quiet"]
    subprocess.run(args, check=True, timeout=120)
    before = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    proc = subprocess.Popen(args)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    after = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # Either the old outputs, untouched, or (if the run got to the end) a complete new set.
    assert after.keys() == before.keys()
    if after != before:
        assert json.loads(after["summary.json"])["totals"] == json.loads(before["summary.json"])["totals"]
    assert integrity_ok(db)


@pytest.mark.parametrize(
    "severities, fail_on, expected",
    [
        (set(), "error", False), ({"warning"}, "never", False), ({"error"}, "never", False),
        ({"warning"}, "warning", True), ({"superseded"}, "warning", True), ({"error"}, "warning", True),
        ({"warning"}, "superseded", False), ({"superseded"}, "superseded", True), ({"error"}, "superseded", True),
        ({"warning", "superseded"}, "error", False), ({"error"}, "error", True),
    ],
)
def test_fail_on_levels(severities, fail_on, expected):
    assert fails(severities, fail_on) is expected


@pytest.mark.parametrize(
    "rows, fail_on, code",
    [
        ("A,1,W371,2012-01-01\n", "error", 0),
        ("A,1,Y534,2012-01-01\n", "error", 1),
        ("A,1,V401,2012-01-01\nA,2,V552,2012-01-01\nA,3,Z676,2012-01-01\n", "warning", 1),
        ("A,1,V401,2012-01-01\nA,2,V552,2012-01-01\nA,3,Z676,2012-01-01\n", "error", 0),
        ("A,1,V522,2017-01-01\nA,2,V551,\nA,3,Y102,\nA,4,Y534,\nA,5,Z992,\n", "superseded", 1),
        ("A,1,Y534,2012-01-01\n", "never", 0),
    ],
)
def test_exit_code_follows_fail_on(tmp_path, rows, fail_on, code):
    export = tmp_path / "e.csv"
    export.write_text(HEADER + rows)
    result = run_cli("run", str(export), "--out", str(tmp_path / "out"), "--fail-on", fail_on, "--quiet")
    assert (result.exit_code, result.stdout) == (code, "")
    # Cron mails only what a job prints: a failing night says why, --quiet or not.
    if code == 1:
        findings = pl.read_csv(tmp_path / "out" / "findings.csv", infer_schema=False)
        levels = {"warning": ["warning", "superseded", "error"], "superseded": ["superseded", "error"],
                  "error": ["error"]}[fail_on]
        n = findings.filter(pl.col("severity").is_in(levels)).height
        assert result.stderr == (f"nice-audit: {n} finding{'s' if n != 1 else ''} at or above --fail-on {fail_on}; "
                                 f"report: {tmp_path / 'out' / 'report.html'}\n")
    else:
        assert result.stderr == ""


def test_bad_fail_on_is_a_usage_error(tmp_path):
    result = run_cli("run", str(EXAMPLES), "--out", str(tmp_path / "o"), "--fail-on", "sometimes")
    assert result.exit_code == 2 and "--fail-on must be one of" in result.stderr


def test_config_file_supplies_settings_and_options_override(tmp_path, monkeypatch):
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "e.csv").write_text(HEADER + "A,1,Y534,2012-01-01\n")
    (tmp_path / "nice-audit.toml").write_text(
        'inputs = ["exports"]\nout = "nightly"\nhistory = "h.sqlite"\nfail_on = "error"\nworksheet_cap = 50\n')
    monkeypatch.chdir(tmp_path)
    shown = run_cli("config", "show")
    assert shown.exit_code == 0
    assert f'out = "{tmp_path / "nightly"}"' in shown.stdout and "worksheet_cap = 50" in shown.stdout
    assert run_cli("run", "--quiet").exit_code == 1  # fail_on = "error" from the file
    assert (tmp_path / "nightly" / "findings.csv").is_file() and (tmp_path / "h.sqlite").is_file()
    assert run_cli("run", "--quiet", "--fail-on", "never").exit_code == 0


def test_bad_config_file_is_one_line(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('fail_on = "always"\n')
    result = run_cli("run", "--config", str(config))
    assert (result.exit_code, result.stderr.strip()) == (
        2, f"nice-audit: error: {config}: fail_on: must be one of never, warning, superseded, error")
    config.write_text('colour = "red"\n')
    assert "unknown setting(s): colour" in run_cli("run", "--config", str(config)).stderr


def test_run_without_inputs_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("run", "--out", "o")
    assert result.exit_code == 2 and "no inputs" in result.stderr


def test_trend_counts_judged_episodes_like_the_compliance_table(tmp_path):
    # B is dated before IPG366 was published (November 2010): matched, but not judged.
    rows = ("A,1,V401,2012-01-01\nA,2,V552,2012-01-01\nA,3,Y534,2012-01-01\nA,4,Z676,2012-01-01\n"
            "B,1,V401,2009-01-01\nB,2,V552,2009-01-01\nB,3,Z676,2009-01-01\n")
    night(tmp_path, rows)
    out = night(tmp_path, rows)
    trend = pl.read_csv(out / "trend.csv")
    assert trend.select("guidance_id", "episodes", "compliant", "judged").rows() == [
        ("IPG366", 2, 1, 1), ("IPG366", 2, 1, 1)]
    # The current run, last, under the id it has in summary.json and the history.
    assert trend["run_id"].to_list()[-1] == json.loads((out / "summary.json").read_text())["run_id"]


def test_history_keeps_the_newest_runs_and_first_seen_survives(tmp_path):
    night(tmp_path, FIRST, "--history-keep", "2")
    night(tmp_path, FIRST, "--history-keep", "2")
    out = night(tmp_path, FIRST, "--history-keep", "2")
    with sqlite3.connect(tmp_path / "h.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
        kept = {r[0] for r in conn.execute("SELECT run_id FROM runs")}
        assert {r[0] for r in conn.execute("SELECT DISTINCT run_id FROM findings")} == kept
        assert {r[0] for r in conn.execute("SELECT DISTINCT run_id FROM inputs")} == kept
    # Findings open since the first (now pruned) night keep their first-seen date.
    assert changes(out) == {(e, r, "still-open") for e, r, _ in changes(out)}


@pytest.mark.parametrize("option", ["--history-keep", "--worksheet-cap"])
def test_counts_must_be_positive(tmp_path, option):
    result = run_cli("run", str(EXAMPLES), "--out", str(tmp_path / "o"), option, "0")
    assert result.exit_code == 2 and "must be at least 1" in result.stderr


def test_two_runs_into_one_folder_leave_one_complete_set(tmp_path):
    export = tmp_path / "e.csv"
    export.write_text(HEADER + FIRST)
    out = tmp_path / "out"
    procs = [subprocess.Popen([str(CONSOLE_SCRIPT), "run", str(export), "--out", str(out), "--quiet"])
             for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    assert {p.name for p in out.iterdir()} >= {"findings.csv", "episodes.csv", "summary.json", "report.html"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "archive", "e.csv", "out"]


def test_no_spinner_without_a_terminal(capsys):
    from audit.cli import _progress

    with _progress(quiet=False) as progress:  # pytest's stderr is not a terminal
        progress("Reading exports")
    assert capsys.readouterr().err == ""


# --- A shrinking or empty export -------------------------------------------------------------

MANY = "".join(f"E{n},1,W371,2012-01-01\n" for n in range(10))


@pytest.mark.parametrize(
    "second, extra, code, alert",
    [
        (MANY[: MANY.index("E8")], [], 0, None),  # 8 of 10: a 20% drop is within the default
        (MANY[: MANY.index("E7")], [], 4, "30% fewer than the 10"),
        (MANY[: MANY.index("E5")], ["--max-drop", "0.6"], 0, None),
        ("", [], 4, "the inputs hold no rows"),
        (MANY, ["--min-rows", "11"], 4, "10 rows read, fewer than --min-rows 11"),
    ],
)
def test_a_shrinking_or_empty_export_is_an_alert_with_exit_4(tmp_path, second, extra, code, alert):
    night(tmp_path, MANY)
    export = tmp_path / "exports.csv"
    export.write_text(HEADER + second)
    result = run_cli("run", str(export), "--out", str(tmp_path / "out"), "--history", str(tmp_path / "h.sqlite"),
                     "--scope", "nightly", "--as-of", "2026-11-21", "--quiet", *extra)
    assert result.exit_code == code, result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    report = (tmp_path / "out" / "report.html").read_text()
    if alert is None:
        assert result.stderr == "" and summary["volume"]["alerts"] == [] and 'id="volume-alert"' not in report
        return
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("nice-audit: volume alert: ") and alert in line
    assert any(alert in a for a in summary["volume"]["alerts"])
    assert summary["volume"]["previous_episodes_audited"] == 10
    assert 'id="volume-alert"' in report


def test_findings_of_episodes_that_left_the_export_are_not_resolved(tmp_path):
    night(tmp_path, "A,1,Y534,2012-01-01\nB,1,Y534,2012-01-01\nC,1,W371,2012-01-01\n")
    # A fixed; B no longer exported; C still there and clean.
    out = night(tmp_path, "A,1,W371,2012-01-01\nC,1,W371,2012-01-01\n", "--max-drop", "0.5")
    assert changes(out) == {("A", "subsidiary-code-primary", "resolved"),
                            ("B", "subsidiary-code-primary", "episode-gone")}
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["changes"]["resolved"], summary["changes"]["episode-gone"]) == (1, 1)


def test_an_unchanged_export_changes_nothing_findings_without_a_position_included(tmp_path):
    """A generic finding on an episode date has no position: the next night must still match it
    (it was reported "new" and "resolved" every night)."""
    for _ in range(2):
        result = run_cli("run", str(EXAMPLES / "hes_episodes.csv"), "--out", str(tmp_path / "out"),
                         "--history", str(tmp_path / "h.sqlite"), "--as-of", "2026-11-21", "--quiet")
        assert result.exit_code == 0, result.stderr
    listed = pl.read_csv(tmp_path / "out" / "changes.csv", infer_schema=False)
    assert listed.filter(pl.col("position").is_null()).height > 0
    assert set(listed["change"]) == {"still-open"}


def test_volume_settings_are_validated(tmp_path):
    for option, value, problem in [("--max-drop", "1.5", "--max-drop must be a fraction"),
                                   ("--min-rows", "-1", "--min-rows must be at least 0")]:
        result = run_cli("run", str(EXAMPLES), "--out", str(tmp_path / "o"), option, value)
        assert result.exit_code == 2 and problem in result.stderr


# --- Nights compare by default ----------------------------------------------------------------


def test_default_scope_compares_nights_whose_export_has_a_new_dated_name(tmp_path):
    history_file, out = tmp_path / "h.sqlite", tmp_path / "latest"
    for day, rows in (("2026-11-20", FIRST), ("2026-11-21", SECOND)):
        folder = tmp_path / "exports" / day
        folder.mkdir(parents=True)
        (folder / f"episodes-{day}.csv").write_text(HEADER + rows)
        result = run_cli("run", str(folder), "--out", str(out), "--history", str(history_file), "--as-of", day)
        assert result.exit_code == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scope"] == f"out:{out}"
    assert summary["changes"]["previous_run"] is not None
    assert {k: summary["changes"][k] for k in ("new", "resolved", "still-open")} == {
        "new": 1, "resolved": 1, "still-open": 3}
    assert "1 new, 1 resolved since 2026-" in result.stdout
    listed = run_cli("history", "--history", str(history_file))
    assert f"out:{out}" in listed.stdout


def test_a_scope_with_no_earlier_run_says_the_history_holds_others(tmp_path):
    night(tmp_path, FIRST)
    export = tmp_path / "exports.csv"
    result = run_cli("run", str(export), "--out", str(tmp_path / "out"), "--history", str(tmp_path / "h.sqlite"),
                     "--scope", "other", "--as-of", "2026-11-21")
    assert result.exit_code == 0
    assert "First run of this scope: the history holds 1 run(s) of 1 other scope(s)" in result.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["changes"]["other_scopes"] == {"nightly": 1}


def test_console_points_at_rejected_rows(tmp_path):
    export = tmp_path / "e.csv"
    export.write_text(HEADER + ",1,Y534,2012-01-01\nA,1,W371,2012-01-01\n")
    result = run_cli("run", str(export), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0 and f"Rejected rows, with the reason for each: {tmp_path / 'out' / 'rejected.csv'}" \
        in result.stdout


# --- The README's scheduler recipes, as written ---------------------------------------------

def readme_recipes(site: Path) -> dict[str, str]:
    """The crontab command and the systemd ExecStart from README.md, pointed at `site`."""
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    cron = re.search(r"```cron\n(?:MAILTO=\S+\n)?(\S+ \S+ \S+ \S+ \S+) (.+)\n```", readme).group(2)
    service = re.search(r"^ExecStart=(/opt/nice-audit/\S+ run .+)$", readme, re.MULTILINE).group(1)
    assert "MAILTO=" in readme and "OnFailure=" in readme and "SuccessExitStatus" not in readme
    commands = {"cron": cron, "systemd": f"cd /data/audit && {service}"}
    return {name: command.replace("/opt/nice-audit/.venv/bin/nice-audit", str(CONSOLE_SCRIPT))
            .replace("/data/audit", str(site)) for name, command in commands.items()}


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["cron", "systemd"])
def test_scheduler_recipes_print_nothing_on_a_good_night_and_one_line_otherwise(tmp_path, recipe):
    (tmp_path / "exports").mkdir()
    (tmp_path / "nice-audit.toml").write_text(
        'inputs = ["exports"]\nout = "latest"\nhistory = "history.sqlite"\nfail_on = "error"\n')
    command = readme_recipes(tmp_path)[recipe]

    def night(rows: str):
        (tmp_path / "exports" / "e.csv").write_text(HEADER + rows)
        return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=120)

    good = night("".join(f"E{n},1,W371,2012-01-01\n" for n in range(10)))
    assert (good.returncode, good.stdout, good.stderr) == (0, "", "")
    failing = night("".join(f"E{n},1,W371,2012-01-01\n" for n in range(9)) + "E9,1,Y534,2012-01-01\n")
    assert (failing.returncode, failing.stdout) == (1, "")
    assert failing.stderr == f"nice-audit: 1 finding at or above --fail-on error; report: {tmp_path / 'latest' / 'report.html'}\n"
    short = night("E0,1,W371,2012-01-01\n")
    assert (short.returncode, short.stdout) == (4, "")
    assert len(short.stderr.splitlines()) == 1 and short.stderr.startswith("nice-audit: volume alert: ")


def test_trend_counts_resolved_apart_from_findings_gone_with_their_episode(tmp_path):
    night(tmp_path, FIRST + "D,1,V522,2012-01-01\n")
    out = night(tmp_path, SECOND, "--max-drop", "0.5")  # A's levels fixed; D no longer exported
    trend = pl.read_csv(out / "trend.csv", infer_schema=False)
    current = trend.filter(pl.col("run_id") == json.loads((out / "summary.json").read_text())["run_id"])
    row = current.filter(pl.col("guidance_id") == "IPG319").row(0, named=True)
    listed = pl.read_csv(out / "changes.csv", infer_schema=False).filter(pl.col("guidance_id") == "IPG319")
    counted = dict(listed.group_by("change").len().iter_rows())
    assert set(listed.filter(pl.col("change") == "episode-gone")["episode_id"]) == {"D"}
    assert (row["resolved"], row["episode_gone"]) == (str(counted["resolved"]), str(counted["episode-gone"]))
    first = trend.filter(pl.col("run_id") != current["run_id"][0])
    assert first["resolved"].to_list() == ["0"]  # the first night: every finding new
