"""The examples produce exactly the outcomes examples/README.md states."""

from collections import Counter

import polars as pl
import pytest

from audit.catalogue import load_catalogue
from audit.layouts import load_mapping
from audit.pipeline import AuditOptions, run_audit
from tests.conftest import AS_OF, EXAMPLES, PINNED_TIME


def expected_outcomes() -> dict[str, tuple[set[str], Counter]]:
    """Parse the README's table: episode_id -> (statuses, findings)."""
    expected = {}
    for line in (EXAMPLES / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[0] in ("episode_id", "") or set(cells[0]) <= {"-"}:
            continue
        episode_id, _, _, statuses, findings = cells
        expected[episode_id] = (set(statuses.split()), Counter(findings.split()))
    return expected


@pytest.fixture(scope="module")
def example_audit():
    options = AuditOptions(
        inputs=[EXAMPLES], mapping=load_mapping(EXAMPLES / "warehouse_mapping.toml"), as_of=AS_OF
    )
    return run_audit(options, load_catalogue(), PINNED_TIME)


def test_readme_lists_every_example_episode(example_audit):
    ids = set()
    for name, column in [("hes_episodes.csv", "EPIKEY"), ("long_procedures.csv", "episode_id"),
                         ("warehouse_export.csv", "Spell_Episode_Number")]:
        ids |= set(pl.read_csv(EXAMPLES / name, columns=[column], infer_schema=False)[column])
    assert set(expected_outcomes()) == ids
    assert example_audit.data.episodes_audited == len(ids)


@pytest.mark.parametrize("episode_id", sorted(expected_outcomes()))
def test_example_outcome(example_audit, episode_id):
    statuses, findings = expected_outcomes()[episode_id]
    pairs = example_audit.episodes.filter(pl.col("episode_id") == episode_id)
    actual_statuses = {f"{g}:{s}" for g, s in pairs.select("guidance_id", "status").iter_rows()}
    rows = example_audit.findings.filter(pl.col("episode_id") == episode_id)
    actual_findings = Counter(
        f"{rule}@{guidance}" if guidance else rule
        for rule, guidance in rows.select("rule_id", "guidance_id").iter_rows()
    )
    assert (actual_statuses, actual_findings) == (statuses, findings)


def test_possible_and_date_uncertain_reach_the_summary_and_the_report(example_audit, tmp_path):
    from audit.outputs import write
    from reports.render import render_report

    staging = tmp_path / "out"
    staging.mkdir()
    summary = write(example_audit, staging)
    # Episodes 48 (lone V33.8) and 53 (V52.2 with Y11.4): index code without its evidence.
    assert summary["possible_not_audited"] == {"IPG319": 1, "IPG387": 1}
    assert summary["by_status"]["date-uncertain"] == sum(
        1 for statuses, _ in expected_outcomes().values() for s in statuses if s.endswith(":date-uncertain"))
    html = render_report(staging, load_catalogue(), generated=PINNED_TIME).read_text(encoding="utf-8")
    assert "Possible, not audited" in html and "IPG387 1" in html
    assert "data-date-uncertain" in html
