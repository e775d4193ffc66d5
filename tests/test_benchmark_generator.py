"""The benchmark's synthetic HES generator: deterministic, the right shape and mix, and audited
the way its statistics say. (No timings here: the benchmark itself only prints figures.)"""

import subprocess
import sys
from datetime import datetime, timezone

import polars as pl
import pytest

from audit.catalogue import load_catalogue
from audit.pipeline import AuditOptions, run_audit
from tests.benchmarks.generate import HEADER, SLOTS, csv_to_parquet, generate_hes
from tests.conftest import ROOT

N = 2_000


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "hes.csv"
    return path, generate_hes(path, N)


@pytest.fixture(scope="module")
def audited(generated):
    path, _ = generated
    return run_audit(AuditOptions(inputs=[path]), load_catalogue(), datetime.now(timezone.utc))


def test_same_seed_same_bytes_whatever_the_chunk_size(generated, tmp_path):
    path, _ = generated
    again = tmp_path / "again.csv"
    generate_hes(again, N, chunk=333)
    assert again.read_bytes() == path.read_bytes()


def test_another_seed_gives_another_file(generated, tmp_path):
    path, _ = generated
    other = tmp_path / "other.csv"
    generate_hes(other, N, seed=1)
    assert other.read_bytes() != path.read_bytes()


def test_header_and_row_count(generated):
    path, stats = generated
    header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header[:9] == ["EPIKEY", "ADMIDATE", "EPISTART", "EPIEND", "PROCODE3", "TRETSPEF",
                          "CONSULT", "OPERTN_01", "OPDATE_01"]
    assert header[7:7 + 2 * SLOTS:2] == [f"OPERTN_{n:02d}" for n in range(1, SLOTS + 1)]
    assert header[8:8 + 2 * SLOTS:2] == [f"OPDATE_{n:02d}" for n in range(1, SLOTS + 1)]
    assert {"SEX", "STARTAGE", "DIAG_01", "PSEUDO_HESID"} <= set(header)
    assert header == HEADER
    frame = pl.read_csv(path, infer_schema=False)
    assert frame.height == N == stats["episodes"]
    assert frame["EPIKEY"].n_unique() == N
    assert stats["bytes"] == path.stat().st_size


def test_mix_of_episodes(generated):
    path, stats = generated
    frame = pl.read_csv(path, infer_schema=False)
    codes = pl.concat_list(
        pl.col(f"OPERTN_{n:02d}").str.to_uppercase().str.replace_all(".", "", literal=True)
        for n in range(1, SLOTS + 1)
    )
    spinal = frame.select(codes.list.eval(pl.element().is_in(["V522", "V401"])).list.any().sum()).item()
    assert 0.005 * N <= spinal <= 0.05 * N
    assert spinal == sum(stats["index_code_episodes"].values())
    no_operation = (frame["OPERTN_01"] == "-").mean()
    assert 0.3 < no_operation < 0.5
    dates = frame["EPISTART"].str.to_date("%Y-%m-%d")
    assert dates.min().year == 2010 and dates.max().year == 2024


def test_parquet_holds_the_same_rows_as_strings(generated, tmp_path):
    path, _ = generated
    parquet = tmp_path / "hes.parquet"
    csv_to_parquet(path, parquet)
    read = pl.read_parquet(parquet)
    assert read.columns == HEADER
    assert set(read.dtypes) == {pl.String}
    assert read.equals(pl.read_csv(path, infer_schema=False))


def test_the_audit_reads_every_row(audited):
    (counts,) = audited.data.files
    assert counts.rows_read == N
    assert counts.rows_rejected == 0
    assert audited.data.rejected.height == 0


def test_spinal_episodes_are_judged_both_ways(audited, generated):
    _, stats = generated
    episodes = audited.episodes
    statuses = {
        guidance: set(episodes.filter(pl.col("guidance_id") == guidance)["status"])
        for guidance in ("IPG319", "IPG366")
    }
    assert {"compliant", "non-compliant", "superseded"} <= statuses["IPG319"]
    assert {"compliant", "non-compliant"} <= statuses["IPG366"]
    by_guidance = dict(episodes.group_by("guidance_id").len().iter_rows())
    assert by_guidance == {"IPG319": stats["index_code_episodes"]["V522"],
                           "IPG366": stats["index_code_episodes"]["V401"]}


def test_findings_match_what_was_generated(audited, generated):
    """Each generated data-quality case and spinal variant gives exactly its finding."""
    _, stats = generated
    by_rule = dict(audited.findings.group_by("rule_id").len().iter_rows())
    quality, variants = stats["data_quality"], stats["spinal_variants"]
    assert by_rule.get("subsidiary-code-primary", 0) == quality["yz_primary"]
    assert by_rule.get("no-operation-with-codes", 0) == quality["codes_after_no_operation"]
    assert by_rule.get("invalid-code", 0) == quality["invalid_value"]
    assert by_rule.get("method-missing", 0) == variants.get("V522 method-missing", 0)
    assert by_rule.get("levels-unspecified", 0) == variants.get("V522 levels-unspecified", 0)
    assert sum(quality.values()) > 0


def test_rare_cases_appear_at_about_their_rates(tmp_path):
    """0.1% each: at 20,000 episodes every kind shows up, and none is common."""
    stats = generate_hes(tmp_path / "hes.csv", 20_000)
    for kind, count in stats["data_quality"].items():
        assert 1 <= count <= 80, kind
    frame = pl.read_csv(tmp_path / "hes.csv", infer_schema=False)
    odd = pl.any_horizontal(
        pl.col(f"OPERTN_{n:02d}").str.contains(r"^[a-z]|\.") for n in range(1, SLOTS + 1)
    )
    # Episodes with no procedures have nothing to respell.
    assert 1 <= frame.filter(odd).height <= stats["data_quality"]["odd_spelling"]


@pytest.mark.slow
def test_bench_script_prints_its_table(tmp_path):
    bench = ROOT / "tests" / "benchmarks" / "bench.py"
    run = subprocess.run(
        [sys.executable, str(bench), "--episodes", str(N), "--formats", "csv", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    header = next(line for line in lines if line.startswith("format"))
    assert header.split() == ["format", "episodes", "floor_s", "floor_rss_MB", "audit_s", "audit_rss_MB", "ratio"]
    row = lines[lines.index(header) + 1].split()
    assert row[:2] == ["csv", f"{N:,}"]
    assert f"episodes_audited {N:,}" in run.stdout
