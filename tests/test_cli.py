"""The command line as users and schedulers meet it."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import ARTIFICIAL_HES, EXAMPLES, ROOT, run_cli

CONSOLE_SCRIPT = Path(sys.executable).parent / "nice-audit"


def demo_command(out: Path) -> list[str]:
    """The `make demo` command line, read from the Makefile so the two cannot drift apart."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^demo:.*\n(?:\t.*\n)*?\t(\$\(BIN\)/nice-audit .+)$", makefile, re.MULTILINE).group(1)
    recipe = recipe.replace("$(BIN)/nice-audit", str(CONSOLE_SCRIPT)).replace("$(OUT)", str(out))
    return shlex.split(recipe)


@pytest.mark.slow
def test_make_demo_command_line(tmp_path):
    out = tmp_path / "demo"
    done = subprocess.run(demo_command(out), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"Outputs written to {out}/" in done.stdout
    for name in ("findings.csv", "findings.parquet", "episodes.csv", "rejected.csv", "summary.json"):
        assert (out / name).is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["totals"]["episodes_audited"] == 72  # examples/README.md: 59 + 10 + 3 episodes


@pytest.mark.slow
def test_artificial_hes_export(tmp_path, needs_shared):
    out = tmp_path / "out"
    done = subprocess.run([str(CONSOLE_SCRIPT), "run", str(ARTIFICIAL_HES), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    totals = summary["totals"]
    assert (totals["rows_read"], totals["rows_rejected"], totals["rows_audited"]) == (2075, 0, 2075)
    assert totals["episodes_audited"] == 2075
    # No NICE index codes in this file: nothing matches.
    assert totals["matched_pairs"] == 0 and summary["by_guidance"] == {}
    findings = pl.read_csv(out / "findings.csv", infer_schema=False)
    rules = set(findings["rule_id"])
    # Codes recorded after a "-" primary, and a malformed "8", are reported.
    # The artificial data's codes are random: `&` before codes, a Z code first after a blank
    # OPERTN_4_01, and spinal operations without V55 (issue 10's generic rules) all occur.
    assert rules == {"no-operation-with-codes", "invalid-code", "not-known-with-codes", "subsidiary-code-primary",
                     "levels-not-second"}
    assert findings["guidance_id"].is_null().all()
    # Nothing episode-level reaches the console.
    episode_ids = set(pl.read_csv(ARTIFICIAL_HES, columns=["EPIKEY"], infer_schema=False)["EPIKEY"])
    assert not any(e in done.stdout + done.stderr for e in episode_ids)


def test_outputs_are_byte_identical_across_runs(tmp_path):
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    outputs = []
    for name in ("a", "b"):
        out = tmp_path / name
        args = ["run", str(EXAMPLES), "--mapping", str(EXAMPLES / "warehouse_mapping.toml"), "--out", str(out)]
        os.environ.update(env)
        try:
            assert run_cli(*args).exit_code == 0
        finally:
            os.environ.pop("SOURCE_DATE_EPOCH")
        outputs.append({str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert outputs[0] == outputs[1]
    assert ".nice-audit-run" in outputs[0]  # the folder is marked as the tool's (audit.publish)


def test_a_rerun_replaces_the_previous_outputs_whole(tmp_path):
    out = tmp_path / "out"
    assert run_cli("run", str(EXAMPLES / "hes_episodes.csv"), "--out", str(out)).exit_code == 0
    (out / "stale.txt").write_text("left in an earlier run's folder")
    assert run_cli("run", str(EXAMPLES / "hes_episodes.csv"), "--out", str(out)).exit_code == 0
    assert not (out / "stale.txt").exists()
    # No staging folders left behind (only the lock file that serialises runs into one folder).
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "archive", "out"]  # archive: the dated reports (reports.archive)


def test_bad_as_of_is_a_usage_error(tmp_path):
    result = run_cli("run", str(EXAMPLES), "--as-of", "yesterday", "--out", str(tmp_path))
    assert (result.exit_code, result.stderr.strip()) == (
        2, "nice-audit: error: --as-of 'yesterday' is not a date (yyyy-mm-dd)")


def test_unknown_option_is_exit_2(tmp_path):
    assert run_cli("run", str(EXAMPLES), "--colour", "red").exit_code == 2


def test_internal_error_is_exit_3_with_a_log(tmp_path, monkeypatch):
    import audit.pipeline

    def broken(*args, **kwargs):
        value = "episode " + "123"  # stands for a value read from an export
        raise KeyError(value)

    monkeypatch.setattr(audit.pipeline, "run_audit", broken)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli("run", str(EXAMPLES), "--out", str(out))
    assert result.exit_code == 3
    log_file = tmp_path / "state" / "nice-audit" / "nice-audit-error.log"
    assert result.stderr.strip() == (
        f"nice-audit: error: internal error (KeyError); details in {log_file}. Please report it.")
    log = log_file.read_text()
    assert "episode 123" not in result.stderr and "episode 123" not in log
    assert "KeyError" in log and "test_cli.py" in log  # where it failed
    # Nothing written into --out (it may be someone else's folder) or beside it.
    assert list(out.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out", "state"]


def test_quiet_prints_nothing_on_success(tmp_path):
    result = run_cli("run", str(EXAMPLES / "hes_episodes.csv"), "--out", str(tmp_path / "o"), "--quiet")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


def test_version():
    result = run_cli("--version")
    assert result.exit_code == 0 and result.stdout.startswith("nice-audit ")


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", str(EXAMPLES), "--colour", "red"], "No such option: --colour"),
        (["report"], "Missing argument 'directory'."),
        (["history", "--limit", "0"], "Invalid value for '--limit'"),
        (["history", "--limit", "many"], "Invalid value for '--limit'"),
        (["run", str(EXAMPLES), "--min-rows", "lots"], "Invalid value for '--min-rows'"),
        (["catalogue", "nonsense"], "No such command 'nonsense'"),
    ],
)
def test_parser_errors_are_one_line_and_exit_2(args, message):
    result = run_cli(*args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nice-audit: error: ") and message in lines[0], result.stderr
    assert "╭" not in result.stderr and "│" not in result.stderr


def test_help_shows_flags_without_a_type_and_defaults_one_way():
    text = run_cli("run", "--help").stdout
    assert "<bool>" not in text and "╭" not in text
    assert "[default:" not in text and "(default:" not in text
    assert "--max-drop" in text and "--min-rows" in text


def test_report_of_a_missing_folder_says_so(tmp_path):
    result = run_cli("report", str(tmp_path / "nowhere"))
    assert (result.exit_code, result.stderr.strip()) == (2, f"nice-audit: error: {tmp_path / 'nowhere'}: no such folder")


def test_misspelt_guidance_id_suggests_the_nearest():
    result = run_cli("catalogue", "show", "IPG3199")
    assert result.exit_code == 2 and "(did you mean IPG319?)" in result.stderr


@pytest.mark.parametrize(
    "entry, problem",
    [
        ('replaced_by = "IPG9999"\nreplaced_on = "2020-01-01"\n', "replaced_by: IPG9999 is not in the catalogue"),
        ("", "index code J99.- is a category"),
        ('titel = "typo"\n', "unknown field (did you mean title?)"),
    ],
)
def test_catalogue_check_is_strict(tmp_path, entry, problem):
    index = '"J99.-"' if not entry else '"J99.1"'
    (tmp_path / "local.toml").write_text(
        'id = "IPG9001"\ntitle = "A local entry"\nurl = "https://example.org/ipg9001"\npublished = "2020-01"\n'
        'code_set_recovered = true\nsources = ["local audit team"]\n'
        + entry + f'[[code_sets]]\nname = "main"\ncomponents = [{{ role = "index", codes = [{index}] }}]\n')
    result = run_cli("catalogue", "check", str(tmp_path / "local.toml"))
    assert result.exit_code == 2 and problem in result.stderr, result.stderr


@pytest.mark.parametrize("folder_exists", [True, False])
def test_catalogue_check_fails_on_an_empty_or_missing_folder(tmp_path, folder_exists):
    folder = tmp_path / "local"
    if folder_exists:
        folder.mkdir()
    result = run_cli("catalogue", "check", str(folder))
    assert result.exit_code == 2
    assert ("holds no .toml files" if folder_exists else "no such file or folder") in result.stderr


@pytest.mark.parametrize("option", ["--mapping", "--config", "--opcs-codes"])
def test_a_folder_given_for_a_file_is_a_user_error(tmp_path, option):
    result = run_cli("run", str(EXAMPLES / "hes_episodes.csv"), "--out", str(tmp_path / "o"), option, str(tmp_path))
    assert result.exit_code == 2 and f"{tmp_path}: is a folder" in result.stderr, result.stderr
    assert not (tmp_path / "o").exists()


def test_a_mapping_no_input_needs_is_an_error_not_ignored(tmp_path):
    mapping = tmp_path / "map.toml"
    mapping.write_text('episode_id = "EPIKEY"\nprocedure_codes = ["OPERTN_*"]\ncarry = ["PROCODE3"]\n')
    out = tmp_path / "out"
    result = run_cli("run", str(EXAMPLES / "hes_episodes.csv"), "--mapping", str(mapping), "--out", str(out))
    assert result.exit_code == 2 and "not used, every input's layout was recognised (hes_episodes.csv (hes))" \
        in result.stderr
    assert not out.exists()
    # Forced, it is used: the carried column reaches the findings.
    result = run_cli("run", str(EXAMPLES / "hes_episodes.csv"), "--mapping", str(mapping), "--layout", "mapped",
                     "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert "PROCODE3" in pl.read_csv(out / "findings.csv", infer_schema=False).columns
