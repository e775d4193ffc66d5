"""--out is replaced only when the tool wrote it, and a kill at any publish step loses nothing."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from audit import publish
from tests.conftest import run_cli

HEADER = "episode_id,position,code,procedure_date\n"
OUTPUTS = {"findings.csv", "findings.parquet", "episodes.csv", "rejected.csv", "sequences.csv", "summary.json",
           "report.html", publish.MARKER}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under a folder, with its bytes (the user's files, to check they are untouched)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A user's folder: exports, a mapping, a config, a catalogue entry, a history, a notes file."""
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "night.csv").write_text(HEADER + "A,1,Y534,2012-01-01\n")
    (tmp_path / "mapping.toml").write_text('episode_id = "id"\nshape = "long"\nposition = "pos"\ncode = "code"\n')
    (tmp_path / "local").mkdir()
    (tmp_path / "notes.txt").write_text("the coding manager's own notes")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "out, problem",
    [
        ("exports", "contains the input"),
        (".", "not '.'"),
        ("..", "not '..'"),
        ("/", "not '/'"),
        ("notes.txt", "is a file, not a folder"),
        ("local", "contains the catalogue"),
        ("history-folder", "contains the history"),
    ],
)
def test_out_that_would_destroy_the_users_files_is_refused(site, out, problem):
    (site / "history-folder").mkdir()
    before = snapshot(site)
    result = run_cli("run", "exports", "--out", out, "--catalogue", "local",
                     "--history", "history-folder/h.sqlite")
    assert result.exit_code == 2, result.stdout
    assert len(result.stderr.strip().splitlines()) == 1 and problem in result.stderr, result.stderr
    assert snapshot(site) == before


def test_out_holding_unrelated_files_is_refused(site):
    (site / "reports").mkdir()
    (site / "reports" / "board-paper.docx").write_text("someone else's")
    before = snapshot(site)
    result = run_cli("run", "exports", "--out", "reports")
    assert result.exit_code == 2 and "holds files nice-audit did not write" in result.stderr
    assert snapshot(site) == before


def test_out_parent_of_the_inputs_and_the_working_folder_is_refused(site):
    before = snapshot(site)
    result = run_cli("run", str(site / "exports"), "--out", str(site))
    assert result.exit_code == 2 and "working folder" in result.stderr
    result = run_cli("run", str(site / "exports" / "night.csv"), "--out", str(site / "exports"))
    assert result.exit_code == 2 and "contains the input" in result.stderr
    assert snapshot(site) == before


def test_config_out_dot_is_refused_and_the_config_survives(site):
    (site / "nice-audit.toml").write_text('inputs = ["exports"]\nout = "."\nhistory = "h.sqlite"\n')
    before = snapshot(site)
    result = run_cli("run", "--config", str(site / "nice-audit.toml"))
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert snapshot(site) == before


@pytest.mark.parametrize("what", ["mapping", "config"])
def test_out_containing_the_mapping_or_the_config_is_refused(site, what):
    (site / "settings").mkdir()
    (site / "settings" / "mapping.toml").write_text((site / "mapping.toml").read_text())
    (site / "settings" / "nice-audit.toml").write_text('inputs = ["../exports"]\n')
    before = snapshot(site)
    args = (["--mapping", "settings/mapping.toml"] if what == "mapping"
            else ["--config", "settings/nice-audit.toml"])
    result = run_cli("run", "exports", "--out", "settings", *args)
    assert result.exit_code == 2 and f"contains the {what}" in result.stderr, result.stderr
    assert snapshot(site) == before


def test_symlink_at_out_is_refused(site):
    (site / "elsewhere").mkdir()
    (site / "latest").symlink_to(site / "elsewhere")
    result = run_cli("run", "exports", "--out", "latest")
    assert result.exit_code == 2 and "symbolic link" in result.stderr
    assert (site / "latest").is_symlink() and list((site / "elsewhere").iterdir()) == []


def test_empty_folder_and_the_tools_own_folder_are_replaced(site):
    (site / "audit").mkdir()
    assert run_cli("run", "exports", "--out", "audit").exit_code == 0
    assert {p.name for p in (site / "audit").iterdir()} >= OUTPUTS
    assert run_cli("run", "exports", "--out", "audit").exit_code == 0


# A kill at a named publish step: the hook audit.publish calls after each step exits the process
# on the spot, as SIGKILL would (no cleanup, no finally blocks).
KILLER = """
import os, sys
from audit import publish
step = sys.argv[1]
publish.checkpoint = lambda name: os._exit(9) if name == step else None
from audit.cli import app
app(sys.argv[2:], prog_name="nice-audit")
"""


def runs_recorded(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT run_id FROM runs ORDER BY rowid")]


def marker_run(out: Path) -> str:
    return json.loads((out / publish.MARKER).read_text())["run_id"]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".out.") and p.name != ".out.lock")


@pytest.mark.slow
@pytest.mark.parametrize("step", publish.STEPS)
def test_kill_at_each_publish_step_leaves_out_whole_and_the_history_agreeing(tmp_path, step):
    out, db = tmp_path / "out", tmp_path / "h.sqlite"
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text(HEADER + "A,1,Y534,2012-01-01\n")
    second.write_text(HEADER + "A,1,Y534,2012-01-01\nB,1,W371,2012-01-01\n")
    common = ["--out", str(out), "--history", str(db), "--scope", "nightly", "--quiet"]
    assert run_cli("run", str(first), *common).exit_code == 0
    before = snapshot(out)
    killed = subprocess.run([sys.executable, "-c", KILLER, step, "run", str(second), *common],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert killed.returncode == 9, killed.stderr
    # Right after the kill --out is either the previous run, untouched, or the new one complete
    # (only between the two renames is it briefly absent: the next start puts it back).
    if out.exists():
        assert snapshot(out) == before or set(snapshot(out)) == set(before)
    # The next start repairs what the kill left: what is published is what the history holds last.
    with publish.lock(out):
        publish.recover(out)
    assert leftovers(tmp_path) == []
    recorded = runs_recorded(db)
    assert marker_run(out) == recorded[-1]
    episodes = json.loads((out / "summary.json").read_text())["totals"]["episodes_audited"]
    assert episodes == (2 if step in ("recorded", "cleaned") else 1)
    assert len(recorded) == (2 if step in ("recorded", "cleaned") else 1)
    # And the next night runs normally.
    assert run_cli("run", str(second), *common).exit_code == 0
    assert marker_run(out) == runs_recorded(db)[-1] and leftovers(tmp_path) == []


@pytest.mark.slow
def test_a_killed_runs_staging_folder_is_removed_at_the_next_start(tmp_path):
    export = tmp_path / "e.csv"
    export.write_text(HEADER + "A,1,Y534,2012-01-01\n")
    killed = subprocess.run([sys.executable, "-c", KILLER, "staged", "run", str(export), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == 9
    assert [p.name.split("-")[0] for p in tmp_path.iterdir() if ".staging-" in p.name] == [".out.staging"]
    assert run_cli("run", str(export), "--out", str(tmp_path / "out"), "--quiet").exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "e.csv", "out"]


def test_a_failed_run_leaves_no_staging_folder(tmp_path, monkeypatch):
    import reports.render

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / ".out.staging-x" / "report.html"))

    export = tmp_path / "e.csv"
    export.write_text(HEADER + "A,1,Y534,2012-01-01\n")
    assert run_cli("run", str(export), "--out", str(tmp_path / "out")).exit_code == 0
    before = snapshot(tmp_path / "out")
    monkeypatch.setattr(reports.render, "render_report", broken)
    result = run_cli("run", str(export), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "No space left on device (the previous outputs are kept)" in result.stderr
    assert snapshot(tmp_path / "out") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "e.csv", "out"]


def test_history_failure_at_publish_keeps_the_previous_outputs(tmp_path, monkeypatch):
    from audit import history

    export = tmp_path / "e.csv"
    export.write_text(HEADER + "A,1,Y534,2012-01-01\n")
    common = ["--out", str(tmp_path / "out"), "--history", str(tmp_path / "h.sqlite")]
    assert run_cli("run", str(export), *common).exit_code == 0
    before = snapshot(tmp_path / "out")

    def full(*args, **kwargs):
        error = sqlite3.OperationalError("database or disk is full")
        error.sqlite_errorcode = sqlite3.SQLITE_FULL
        raise error

    monkeypatch.setattr(history, "record", full)
    result = run_cli("run", str(export), *common)
    assert (result.exit_code, result.stderr.strip()) == (
        2, f"nice-audit: error: {tmp_path / 'h.sqlite'}: no space left on the device")
    assert snapshot(tmp_path / "out") == before
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX file-system semantics")
def test_out_name_too_long_or_under_a_file_or_missing_parent(tmp_path):
    export = tmp_path / "e.csv"
    export.write_text(HEADER + "A,1,Y534,2012-01-01\n")
    (tmp_path / "plain").write_text("x")
    cases = [
        (tmp_path / ("n" * 250), "name is too long"),
        (tmp_path / "plain" / "out", "is a file, not a folder"),
        (tmp_path / "missing" / "out", "does not exist"),
    ]
    for out, problem in cases:
        result = run_cli("run", str(export), "--out", str(out))
        assert result.exit_code == 2 and problem in result.stderr, (out, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.csv", "plain"]


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs of our own (root only; skipped where it cannot be mounted)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave: int) -> None:
    """Fill the file system under `folder` until about `leave` bytes are free."""
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(folder / "filler", "wb") as handle:
        handle.write(b"\0" * max(free - leave, 0))


@pytest.mark.slow
@pytest.mark.parametrize("history_too", [False, True])
def test_full_disk_is_a_user_error_and_keeps_the_previous_outputs(tmp_path, small_disk, history_too):
    export = tmp_path / "e.csv"
    export.write_text(HEADER + "".join(f"E{n},1,Y534,2012-01-01\n" for n in range(300)))
    out = small_disk / "out"
    extra = ["--history", str(small_disk / "h.sqlite")] if history_too else []
    assert run_cli("run", str(export), "--out", str(out), *extra).exit_code == 0
    before = snapshot(out)
    fill(small_disk, leave=16 * 1024)
    result = run_cli("run", str(export), "--out", str(out), *extra)
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and ("No space left on device" in line or "no space left" in line), line
    assert "disk I/O error" not in line and "ROLLBACK" not in line
    assert snapshot(out) == before
    assert sorted(p.name for p in small_disk.iterdir() if p.name.startswith(".out.")) == [".out.lock"]


@pytest.fixture
def read_only_disk(tmp_path):
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("where", ["out", "history"])
def test_read_only_out_or_history_is_refused_before_the_audit(tmp_path, read_only_disk, monkeypatch, where):
    import audit.pipeline

    def not_reached(*args, **kwargs):
        raise AssertionError("the audit must not start")

    monkeypatch.setattr(audit.pipeline, "run_audit", not_reached)
    export = tmp_path / "e.csv"
    export.write_text(HEADER + "A,1,Y534,2012-01-01\n")
    out = read_only_disk / "out" if where == "out" else tmp_path / "out"
    history_file = tmp_path / "h.sqlite" if where == "out" else read_only_disk / "h.sqlite"
    result = run_cli("run", str(export), "--out", str(out), "--history", str(history_file))
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "read-only file system" in result.stderr, result.stderr
    assert str(out if where == "out" else history_file) in result.stderr


def test_an_unreadable_input_is_one_line_naming_it(tmp_path, monkeypatch):
    import audit.load

    export = tmp_path / "e.csv"
    export.write_text(HEADER + "A,1,Y534,2012-01-01\n")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(export))

    monkeypatch.setattr(audit.load, "read_exports", denied)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    result = run_cli("run", str(export), "--out", str(tmp_path / "out"))
    assert (result.exit_code, result.stderr) == (2, f"nice-audit: error: {export}: Permission denied\n")
    assert not (tmp_path / "state").exists()  # a user error, not an internal one: no error log


def test_history_that_is_a_folder_or_not_sqlite_is_one_line(tmp_path):
    export = tmp_path / "e.csv"
    export.write_text(HEADER + "A,1,Y534,2012-01-01\n")
    (tmp_path / "folder.sqlite").mkdir()
    (tmp_path / "text.sqlite").write_text("not a database, just text " * 100)
    for history_file, problem in ((tmp_path / "folder.sqlite", "is a folder, not a history file"),
                                  (tmp_path / "text.sqlite", "not a usable history file")):
        result = run_cli("run", str(export), "--out", str(tmp_path / "out"), "--history", str(history_file))
        assert (result.exit_code, result.stderr) == (2, f"nice-audit: error: {history_file}: {problem}"
                                                     + (" (not SQLite, or damaged)\n" if "usable" in problem else "\n"))
