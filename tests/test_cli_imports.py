"""Commands import only what they need (issue 15): `--version`, `catalogue` and `history` start
without polars, pandera or jinja2, and `run` imports jinja2 only to render. Checked through
`sys.modules` in a fresh interpreter, not by timing (the benchmark prints the times)."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

HEAVY = ("polars", "pandera", "jinja2")

# Runs the command line in-process, then writes the top-level packages it imported to a file.
PROBE = """
import json, sys
record, sys.argv = sys.argv[1], ["nice-audit", *sys.argv[2:]]
from audit.cli import main
try:
    main()
except SystemExit as stop:
    code = stop.code
else:
    code = 0
with open(record, "w", encoding="utf-8") as handle:
    json.dump({"exit": code, "modules": sorted({name.split(".")[0] for name in sys.modules})}, handle)
"""


def imported_by(tmp_path, *args: str) -> dict:
    record = tmp_path / "modules.json"
    run = subprocess.run([sys.executable, "-c", PROBE, str(record), *args], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert record.exists(), run.stderr
    return json.loads(record.read_text(encoding="utf-8")) | {"stdout": run.stdout, "stderr": run.stderr}


@pytest.fixture
def history_file(tmp_path):
    from audit import history

    path = tmp_path / "history.sqlite"
    history.connect(path).close()  # an empty, current-schema history
    return path


@pytest.mark.parametrize("args", [
    ["--version"],
    ["--help"],
    ["catalogue", "list"],
    ["catalogue", "show", "IPG319"],
    ["catalogue", "check", str(ROOT / "audit" / "guidance" / "ipg319.toml")],
    ["config", "show"],
], ids=" ".join)
def test_light_commands_import_no_heavy_library(tmp_path, args):
    seen = imported_by(tmp_path, *args)
    assert seen["exit"] == 0, seen["stderr"]
    assert seen["stdout"].strip()  # the command did its work
    assert not set(HEAVY) & set(seen["modules"]), args


@pytest.mark.parametrize("args", [[], ["show", "no-such-run"]], ids=["list", "show"])
def test_history_commands_read_sqlite_without_polars(tmp_path, history_file, args):
    seen = imported_by(tmp_path, "history", *args, "--history", str(history_file))
    expected_exit = 0 if not args else 2  # an empty history has no run to show
    assert seen["exit"] == expected_exit, seen["stderr"]
    assert "sqlite3" in seen["modules"]
    assert not set(HEAVY) & set(seen["modules"])


def test_version_is_the_installed_distributions(tmp_path):
    from importlib.metadata import version

    seen = imported_by(tmp_path, "--version")
    assert seen["stdout"].strip() == f"nice-audit {version('nice-audit')}"


def test_run_imports_jinja2_only_to_render(tmp_path):
    """A run stopped by its input never reaches the report, so never pays for jinja2."""
    seen = imported_by(tmp_path, "run", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "out"))
    assert seen["exit"] == 2
    assert "missing.csv" in seen["stderr"]
    assert "polars" in seen["modules"]  # it did get as far as the reader
    assert "jinja2" not in seen["modules"]


@pytest.mark.slow
def test_a_whole_run_does_render(tmp_path):
    """The other side of the lazy import: a successful run still imports jinja2 and writes the report."""
    seen = imported_by(tmp_path, "run", str(ROOT / "examples"), "--mapping",
                       str(ROOT / "examples" / "warehouse_mapping.toml"), "--out", str(tmp_path / "out"), "--quiet")
    assert seen["exit"] == 0, seen["stderr"]
    assert "jinja2" in seen["modules"]
    assert (tmp_path / "out" / "report.html").is_file()


def test_a_whole_run_never_imports_pandas_or_hypothesis(tmp_path):
    """pandera would import pandas and its pandas engine (0.7 s) wherever pandas is installed, and
    hypothesis (0.1-0.25 s, at its first validation) wherever that is; the audit validates polars
    frames only and synthesises no data (schemas/engine.py)."""
    seen = imported_by(tmp_path, "run", str(ROOT / "examples"), "--mapping",
                       str(ROOT / "examples" / "warehouse_mapping.toml"), "--out", str(tmp_path / "out"), "--quiet")
    assert seen["exit"] == 0, seen["stderr"]
    assert "pandera" in seen["modules"]
    assert "pandas" not in seen["modules"]
    assert "hypothesis" not in seen["modules"]


# After the audit's first validation (pandera's strategies loaded), each still imports and works.
@pytest.mark.parametrize("package, probe, printed", [
    ("pandas", "import pandas; print(pandas.DataFrame({'a': [1]}).shape)", "(1, 1)"),
    ("hypothesis", "import hypothesis.strategies as st; print(st.just(1).example())", "1"),
])
def test_hidden_packages_still_import_after_pandera(package, probe, printed):
    pytest.importorskip(package)
    first_use = ("import sys, polars as pl; from audit.validate import rejected_rows; "
                 "from schemas.inputs import IDENTITY_ONE_FILE; "
                 "rejected_rows(pl.DataFrame({'episode_id': ['a'], 'source_file': ['0'], 'source_row': [1], "
                 "'shape': ['wide'], 'position': pl.Series([None], dtype=pl.Int32)}), IDENTITY_ONE_FILE); "
                 f"assert {package!r} not in sys.modules; ")
    run = subprocess.run([sys.executable, "-c", first_use + probe], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == printed


def test_version_is_answered_before_the_command_line_is_built(tmp_path):
    """`nice-audit --version` (audit.entry) prints what the typer option prints, without typer."""
    probe = ("import sys; sys.argv = ['nice-audit', '--version']; from audit.entry import main; main(); "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'typer', 'polars', 'click'}))")
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    printed, modules = run.stdout.strip().splitlines()
    assert modules == "[]"
    assert printed == imported_by(tmp_path, "--version")["stdout"].strip()  # the typer option's line


def test_the_entry_point_hands_every_other_command_to_the_command_line(tmp_path):
    run = subprocess.run([sys.executable, "-m", "audit", "catalogue", "list"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "IPG319" in run.stdout


def _environment_without(name: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != name}


# After the command has run: the OpenBLAS setting, the threads the process has once numpy (pandera's)
# is imported, and how often the cycle collector runs.
BLAS_PROBE = """
import atexit, os, sys


def probe():
    import gc, numpy
    print(os.environ.get("OPENBLAS_NUM_THREADS"), len(os.listdir("/proc/self/task")), gc.get_threshold()[0])


atexit.register(probe)  # run as the command exits (audit.entry.leave)
sys.argv = ["nice-audit", "catalogue", "list"]
from audit.entry import main
main()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc")
@pytest.mark.parametrize(("given", "expected"), [(None, "1"), ("2", "2")], ids=["unset", "the user's"])
def test_the_command_prepares_its_process(tmp_path, given, expected):
    """numpy's OpenBLAS pool spins on cores polars needs (audit.entry): the command starts none,
    unless the user asked for one; and it runs Python's cycle collector less often than every 700
    allocations (its default), which walks the imports' objects again and again."""
    env = _environment_without("OPENBLAS_NUM_THREADS")
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    run = subprocess.run([sys.executable, "-c", BLAS_PROBE], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    setting, threads, collect_every = run.stdout.strip().splitlines()[-1].split()
    assert setting == expected
    assert int(collect_every) > 700
    if given is None:
        assert threads == "1"  # the main thread alone: no pool was started


# The command, with an atexit function and, optionally, a thread still running when it returns.
LEAVE_PROBE = """
import atexit, sys, threading, time
marks, command = sys.argv[1], sys.argv[2:]
atexit.register(lambda: (open(marks, "a").write("atexit;"), print("printed at exit")))
if command == ["thread"]:
    def late():
        time.sleep(0.3)
        open(marks, "a").write("thread;")
    threading.Thread(target=late).start()
    command = ["catalogue", "list"]
sys.argv = ["nice-audit", *command]
from audit.entry import main
main()
"""


@pytest.mark.parametrize(("command", "status", "marks"), [
    (["catalogue", "list"], 0, "atexit;"),
    (["run", "no-such-export.csv", "--out", "out"], 2, "atexit;"),  # a user error keeps its exit code
    (["no-such-command"], 2, "atexit;"),
    (["thread"], 0, "thread;atexit;"),  # a thread still running: the interpreter waits for it, as ever
], ids=["done", "user error", "usage error", "a thread still running"])
def test_the_command_exits_as_python_would_without_its_teardown(tmp_path, command, status, marks):
    """audit.entry.leave: the exit status, the atexit functions, and stdout flushed into a pipe."""
    record = tmp_path / "marks.txt"
    buffered = _environment_without("PYTHONUNBUFFERED")  # (set on some machines)
    run = subprocess.run([sys.executable, "-c", LEAVE_PROBE, str(record), *command], cwd=tmp_path, env=buffered,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == status, run.stderr
    assert record.read_text(encoding="utf-8") == marks
    assert run.stdout.endswith("printed at exit\n")  # printed into a pipe, so there only once flushed
    if status == 0:
        assert "IPG319" in run.stdout
    else:
        assert run.stderr.startswith("nice-audit: error:") and len(run.stderr.splitlines()) == 1


@pytest.mark.parametrize(("code", "status", "stderr"), [(None, 0, ""), (3, 3, ""), ("stopped", 1, "stopped\n")])
def test_leave_reads_an_exit_code_as_system_exit_does(code, status, stderr):
    run = subprocess.run([sys.executable, "-c", f"from audit.entry import leave; leave({code!r})"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert (run.returncode, run.stderr) == (status, stderr)
