"""The benchmark's synthetic HES generator: deterministic, the right shape and mix, and audited
the way its statistics say. (No timings here: the benchmark itself only prints figures.)"""

import subprocess
import sys
from datetime import datetime, timezone

import polars as pl
import pytest

from audit.catalogue import load_catalogue
from audit.pipeline import AuditOptions, run_audit
from tests.benchmarks.generate import HEADER, LONG_HEADER, SLOTS, TEMPLATES, csv_to_parquet, generate_hes
from tests.conftest import ROOT

N = 2_000


def audit(path):
    return run_audit(AuditOptions(inputs=[path]), load_catalogue(), datetime.now(timezone.utc))


def findings_by_rule(result) -> dict[str, int]:
    return dict(result.findings.group_by("rule_id").len().iter_rows())


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "hes.csv"
    return path, generate_hes(path, N)


@pytest.fixture(scope="module")
def audited(generated):
    path, _ = generated
    return audit(path)


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
    # About 3% hold a spinal operation (V22-V54, V56-V69: audit/spinal_operations.csv).
    categories = set(pl.read_csv(ROOT / "audit" / "spinal_operations.csv")["category"])
    operation = frame.select(codes.list.eval(pl.element().str.slice(0, 3).is_in(categories)).list.any().sum()).item()
    assert operation == stats["spinal_operation_episodes"]
    assert 0.02 * N <= operation <= 0.045 * N
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
    possible = stats["spinal_variants"].get("V522 other-method-possible", 0)  # IPG319's not_with method
    assert by_guidance["IPG319"] == stats["index_code_episodes"]["V522"] - possible
    assert by_guidance["IPG366"] == stats["index_code_episodes"]["V401"]
    assert audited.possible.filter(pl.col("guidance_id") == "IPG319").height >= possible


def test_every_template_group_reaches_its_guidance(audited, generated):
    """The other code sets' templates are audited under their guidance (so their rules run)."""
    _, stats = generated
    by_guidance = dict(audited.episodes.group_by("guidance_id").len().iter_rows())
    for guidance in ("IPG336", "IPG352", "IPG387", "IPG504"):
        made = sum(v for name, v in stats["spinal_variants"].items() if name.startswith(f"guidance {guidance} "))
        assert by_guidance.get(guidance, 0) == made, guidance


def test_findings_match_what_was_generated(audited, generated):
    """Each generated data-quality case and spinal variant gives exactly its finding."""
    _, stats = generated
    by_rule = dict(audited.findings.group_by("rule_id").len().iter_rows())
    quality, variants = stats["data_quality"], stats["spinal_variants"]
    assert by_rule.get("subsidiary-code-primary", 0) == quality["yz_primary"]
    assert by_rule.get("no-operation-with-codes", 0) == quality["codes_after_no_operation"]
    assert by_rule.get("invalid-code", 0) == quality["invalid_value"]
    assert by_rule.get("not-known-with-codes", 0) == quality["codes_after_not_known"]
    assert by_rule.get("no-operation-between-codes", 0) == quality["no_operation_between"]
    assert by_rule.get("date-in-future", 0) == quality["future_date"]
    assert by_rule.get("date-missing", 0) == quality["undated"]
    assert by_rule.get("method-missing", 0) == (variants.get("V522 method-missing", 0)
                                                + variants.get("guidance IPG352 method-missing", 0))
    assert by_rule.get("levels-unspecified", 0) == variants.get("V522 levels-unspecified", 0)
    assert by_rule.get("levels-repeated", 0) == variants.get("spinal levels-repeated", 0)
    # The generic V55 rule: every spinal operation without V55 directly after it.
    no_levels = sum(variants.get(name, 0) for name in ("spinal levels-missing", "spinal levels-late",
                                                        "V522 levels-missing", "V401 levels-missing"))
    assert by_rule.get("levels-not-second", 0) == no_levels
    assert sum(quality.values()) > 0


def test_padded_export_is_the_same_audit(generated, audited, tmp_path):
    """The `padded` mix is the same episodes with unused slots as `-` in 30% of rows: padding is
    not a finding, so the audit finds exactly the same."""
    path, stats = generated
    padded = tmp_path / "padded.csv"
    padded_stats = generate_hes(padded, N, mix="padded")
    assert 0.25 * N < padded_stats["padded_rows"] < 0.35 * N
    assert padded_stats["spinal_variants"] == stats["spinal_variants"]
    wide = pl.read_csv(padded, infer_schema=False)
    assert (wide["OPERTN_24"] == "-").sum() > 0.25 * N
    again = audit(padded)
    assert again.findings.drop("source_file", strict=False).equals(audited.findings.drop("source_file", strict=False))


def test_spinal_mix_is_a_targeted_extract(tmp_path):
    path = tmp_path / "spinal.csv"
    stats = generate_hes(path, N, mix="spinal")
    assert 0.55 * N < sum(stats["template_groups"].values()) < 0.65 * N
    assert stats["spinal_operation_episodes"] == sum(stats["template_groups"].values())
    assert stats["episodes_without_procedures"] == 0
    frame = pl.read_csv(path, infer_schema=False)
    filled = frame.select(pl.sum_horizontal(pl.col(f"OPERTN_{n:02d}").is_not_null() for n in range(1, SLOTS + 1)))
    assert (filled.to_series().is_between(3, 8)).mean() > 0.8


def test_long_layout_holds_the_same_episodes(generated, audited, tmp_path):
    wide_path, _ = generated
    path = tmp_path / "hes.csv"
    long_path = tmp_path / "long.csv"
    stats = generate_hes(path, N, long_path=long_path)
    assert path.read_bytes() == wide_path.read_bytes()  # writing the long file changes nothing else
    long = pl.read_csv(long_path, infer_schema=False)
    assert long.columns == LONG_HEADER
    assert long.height == stats["long"]["rows"]
    assert long["episode_id"].n_unique() == N
    # Episode then position order, so whole episodes sit on consecutive rows.
    order = long.select(pl.col("episode_id").cast(pl.Int64), pl.col("position").cast(pl.Int64))
    assert order.equals(order.sort("episode_id", "position"))
    again = audit(long_path)
    assert findings_by_rule(again) == findings_by_rule(audited)


def test_templates_are_weighted_to_one_hundred():
    for group, rows in TEMPLATES.items():
        assert sum(weight for _, _, weight in rows) == 100, group


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
    # And the mix exercises every rule but code-not-in-opcs (it needs --opcs-codes).
    from audit.rules import RULES

    assert set(RULES) - set(findings_by_rule(audit(tmp_path / "hes.csv"))) == {"code-not-in-opcs"}


@pytest.mark.parametrize("peer", ["duckdb", "pandas"])
def test_peers_count_what_the_audit_finds(generated, audited, peer):
    """The benchmark's peers (what a user would write instead) do the generic rules' work: the
    same counts as nice-audit, so their times are comparable."""
    pytest.importorskip(peer)  # the bench extra
    from tests.benchmarks.peers import GENERIC_RULES, duckdb_counts, pandas_counts

    path, _ = generated
    counts = duckdb_counts(path) if peer == "duckdb" else pandas_counts(path)
    by_rule = findings_by_rule(audited)
    assert counts == {rule: by_rule.get(rule, 0) for rule in GENERIC_RULES}
    assert sum(counts.values()) > 0


@pytest.mark.slow
def test_bench_script_prints_its_tables(tmp_path):
    bench = ROOT / "tests" / "benchmarks" / "bench.py"
    peers = []
    try:
        import duckdb  # noqa: F401
        import pandas  # noqa: F401
    except ImportError:  # the bench extra is not installed: the rest still runs
        peers = ["--no-duckdb", "--pandas-episodes", "0"]
    run = subprocess.run(
        [sys.executable, str(bench), "--episodes", f"{N},{2 * N}", "--padded-episodes", str(N),
         "--spinal-episodes", str(N), "--quoted-episodes", str(N), "--typed-episodes", str(N),
         "--windows-episodes", str(N), "--gzip-episodes", str(N),
         "--long-episodes", str(N), "--repeat", "1", "--workdir", str(tmp_path),
         *(peers or ["--pandas-episodes", str(N)])],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    header = next(line for line in lines if line.startswith("mix "))
    assert header.split()[:6] == ["mix", "format", "episodes", "floor_s", "audit_s", "ratio"]
    rows = [line.split() for line in lines[lines.index(header) + 1:lines.index(header) + 13]]
    assert [row[:3] for row in rows] == [
        ["hes", "csv", f"{N:,}"], ["hes", "parquet", f"{N:,}"], ["hes", "csv", f"{2 * N:,}"],
        ["hes", "parquet", f"{2 * N:,}"], ["padded", "csv", f"{N:,}"], ["padded", "parquet", f"{N:,}"],
        ["spinal", "csv", f"{N:,}"], ["spinal", "parquet", f"{N:,}"], ["quoted", "csv", f"{N:,}"],
        ["typed", "parquet", f"{N:,}"], ["windows", "csv", f"{N:,}"], ["gzip", "csv", f"{N:,}"]]
    found = [line.split() for line in lines if line.startswith(("windows ", "gzip "))][-2:]  # (summary.json)
    assert [row[4] for row in found] == [f"{N:,},"] * 2  # every row read from the cp1252 and gzip copies
    assert "≤3.00" in lines[lines.index(header) + 7]  # the targeted export's target beside its ratio
    budget = next(i for i, line in enumerate(lines) if line.startswith("1b. "))
    assert lines[budget + 1].split() == ["mix", "format", "episodes", "floor_s", "stack_s", "stack/floor",
                                         "target_s", "left_s", "own_work_s"]
    # One row per ratio target (the spinal mix's, at any size), its seconds adding up.
    spinal = [line.split() for line in lines[budget + 2:budget + 4]]
    assert [row[:2] for row in spinal] == [["spinal", "csv"], ["spinal", "parquet"]]
    for row in spinal:
        floor, stack, target, left = map(float, (row[3], row[4], row[6], row[7]))
        assert abs(target - 3 * floor) <= 0.021 and abs(left - (target - stack)) <= 0.021  # (rounding)
    assert any(line.startswith("long ") for line in lines)
    assert f"episodes {N:,}, matched" in run.stdout
    assert "nice-audit --version" in run.stdout
    if not peers:
        assert run.stdout.count("generic rules: the same counts as nice-audit") == 3  # DuckDB x2, pandas
