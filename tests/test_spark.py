"""`--engine spark` against the local engine, in Spark local mode (one session for the module).

Skipped, with the reason, only when there is no Java runtime (`make test` installs Debian's
default-jre-headless when it can) or the spark extra is missing (`make test` installs it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from audit import outputs
from audit.catalogue import load_catalogue
from audit.config import Settings
from audit.ingest import ingest
from audit.layouts import load_mapping
from audit.pipeline import AuditOptions, run_audit
from tests.benchmarks.generate import generate_hes
from tests.conftest import EXAMPLES, PINNED_TIME, run_cli

pytestmark = [pytest.mark.spark, pytest.mark.slow]

AS_OF = date(2026, 11, 21)
CATALOGUE = load_catalogue()
MAPPING = EXAMPLES / "warehouse_mapping.toml"
OUTPUT_FILES = (outputs.FINDINGS_CSV, outputs.EPISODES_CSV, outputs.REJECTED_CSV, outputs.SEQUENCES_CSV)


@pytest.fixture(scope="module")
def spark():
    if shutil.which("java") is None:
        pytest.skip("no Java runtime: `make test` installs default-jre-headless when run as root")
    try:
        import pyspark  # noqa: F401
    except ImportError:
        pytest.skip("pyspark is not installed: `make test` installs the spark extra")
    from audit.engines.spark import session

    os.environ.setdefault("SPARK_MASTER", "local[2]")
    settings = Settings(spark_conf=("spark.sql.shuffle.partitions=2", "spark.driver.memory=1g",
                                    "spark.ui.enabled=false"))
    active = session(settings)
    yield active
    active.stop()


def spark_run(spark, inputs, out: Path, **options):
    from audit.engines.spark import run

    settings = Settings(inputs=tuple(inputs), out=out, as_of=AS_OF, **options)
    return run(spark, settings, CATALOGUE, PINNED_TIME)


def local_run(inputs, mapping=None):
    options = AuditOptions(inputs=list(inputs), as_of=AS_OF, mapping=load_mapping(mapping) if mapping else None)
    return run_audit(options, CATALOGUE, PINNED_TIME)


def rows(path: Path) -> list[tuple]:
    """A CSV's rows, sorted: engines promise the same content, not the same order of ties."""
    frame = pl.read_csv(path, infer_schema=False)
    return sorted(frame.rows(), key=lambda r: tuple("" if v is None else v for v in r)) if frame.height else [frame.columns]


def same_outputs(local: Path, spark_out: Path) -> None:
    for name in OUTPUT_FILES:
        assert pl.read_csv(local / name, infer_schema=False).columns == pl.read_csv(spark_out / name, infer_schema=False).columns, name
        assert rows(local / name) == rows(spark_out / name), name
    local_summary, spark_summary = (json.loads((f / "summary.json").read_text()) for f in (local, spark_out))
    assert local_summary.pop("run_id") != spark_summary.pop("run_id")
    assert local_summary == spark_summary


def written(result, folder: Path) -> Path:
    """A local run's output files (audit.outputs.write, as audit_to_directory stages them)."""
    from audit import volume

    folder.mkdir(parents=True)
    defaults = Settings()
    outputs.write(result, folder, run_id="local", volume=volume.check(result, None, defaults.max_drop, defaults.min_rows))
    return folder


def test_ingest_then_spark_run_gives_the_same_outputs_as_a_local_run(spark, tmp_path, monkeypatch):
    """The issue's 'done when': ingest examples/, run on Spark, compare with `run examples/`."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(int(PINNED_TIME.timestamp())))
    common = ["--mapping", str(MAPPING), "--as-of", AS_OF.isoformat(), "--quiet"]
    assert run_cli("run", str(EXAMPLES), "--out", str(tmp_path / "local"), *common).exit_code == 0
    converted = run_cli("ingest", str(EXAMPLES), "--to", str(tmp_path / "parquet"), "--mapping", str(MAPPING))
    assert converted.exit_code == 0, converted.output
    ran = run_cli("run", str(tmp_path / "parquet"), "--engine", "spark", "--out", str(tmp_path / "spark"), *common)
    assert ran.exit_code == 0, ran.output
    assert ran.stdout == ""  # --quiet: nothing on a good night
    latest = json.loads((tmp_path / "spark" / "LATEST.json").read_text())
    run_folder = tmp_path / "spark" / latest["path"]
    findings = pl.read_csv(tmp_path / "local" / outputs.FINDINGS_CSV)
    assert findings.height > 20 and latest["findings"] == findings.height
    same_outputs(tmp_path / "local", run_folder)
    # At-scale outputs: Parquet datasets, findings and episodes one folder per provider.
    providers = sorted(p.name for p in (run_folder / "findings").iterdir() if p.is_dir())
    assert providers == sorted(f"provider_partition={p}" for p in findings["provider"].unique())
    # One renderer for both engines: the same report bundle counts (reports.bundle), and the Spark
    # run's page is rendered from its bundle.
    from reports.bundle import read_bundle

    local_bundle, spark_bundle = read_bundle(tmp_path / "local"), read_bundle(run_folder)
    assert local_bundle is not None and spark_bundle is not None
    for name in ("guidance", "rules", "severities", "breakdowns", "reason_totals", "invalid_values"):
        assert spark_bundle[name].equals(local_bundle[name]), name
    # `nice-audit report OUT` follows LATEST.json and re-renders the same page.
    before = (run_folder / "report.html").read_bytes()
    again = run_cli("report", str(tmp_path / "spark"))
    assert again.exit_code == 0 and (run_folder / "report.html").read_bytes() == before


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("generated")
    generate_hes(folder / "hes.csv", episodes=20_000, seed=7)
    ingest([folder / "hes.csv"], folder / "parquet")
    return folder


def test_equivalence_on_20k_generated_episodes(spark, generated, tmp_path):
    whole = local_run([generated / "hes.csv"])
    outcome = spark_run(spark, [generated / "parquet"], tmp_path / "spark", partitions=3)
    assert whole.findings.height > 200 and whole.episodes.height > 300  # the input exercises the rules
    same_outputs(written(whole, tmp_path / "local"), outcome.out)
    expected = outputs.summary(whole)
    assert {key: outcome.summary[key] for key in expected} == expected


def _split_long(folder: Path) -> list[Path]:
    """The long example split into two 'trust' files; three episodes are sent by both (one of
    them with a tab after its id), and one episode's rows straddle the two files."""
    frame = pl.read_csv(EXAMPLES / "long_procedures.csv", infer_schema=False)
    ids = frame["episode_id"].unique(maintain_order=True).to_list()
    first = frame.filter(pl.col("episode_id").is_in(ids[: len(ids) // 2]))
    second = frame.filter(pl.col("episode_id").is_in(ids[len(ids) // 2:]))
    planted = first.filter(pl.col("episode_id").is_in(ids[:3]))
    planted = planted.with_columns(pl.when(pl.col("episode_id") == ids[0]).then(pl.col("episode_id") + "\t")
                                   .otherwise(pl.col("episode_id")).alias("episode_id"))
    straddling = second.filter(pl.col("episode_id") == ids[-1])
    paths = [folder / "trust_a.csv", folder / "trust_b.csv"]
    pl.concat([first, straddling.head(1)]).write_csv(paths[0])
    pl.concat([second.filter(pl.col("episode_id") != ids[-1]), straddling.tail(-1), planted]).write_csv(paths[1])
    return paths


@pytest.fixture(scope="module")
def long_split(tmp_path_factory):
    folder = tmp_path_factory.mktemp("long")
    paths = _split_long(folder)
    ingest(paths, folder / "parquet")
    return folder, paths


def test_long_layout_tiny_batches_and_cross_file_duplicates(spark, long_split, tmp_path):
    folder, paths = long_split
    whole = local_run(paths)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "3")  # episodes straddle batches
    try:
        outcome = spark_run(spark, [folder / "parquet"], tmp_path / "spark")
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "100000")
    same_outputs(written(whole, tmp_path / "local"), outcome.out)
    rejected = pl.read_csv(outcome.out / outputs.REJECTED_CSV, infer_schema=False)
    several = rejected.filter(pl.col("reason").str.contains("more than one input file"))
    # Four episodes are in both files: three planted, one straddling; every copy is rejected,
    # named by the original export and its row number there.
    assert several["episode_id"].n_unique() == 4
    assert set(several["source_file"]) == {str(p) for p in paths}
    assert len([p for p in (outcome.out / "rejected").iterdir() if p.name.startswith("source_partition=")]) == 2
    source = pl.read_csv(paths[1], infer_schema=False).with_row_index("row", offset=1)
    for row in several.filter(pl.col("source_file") == str(paths[1])).iter_rows(named=True):
        assert source.filter(pl.col("row") == int(row["source_row"]))["episode_id"].str.strip_chars().item() == row["episode_id"]


def test_partition_counts_do_not_change_the_content(spark, long_split, tmp_path):
    folder, _ = long_split
    results = []
    for partitions in (1, 2, 3):
        outcome = spark_run(spark, [folder / "parquet"], tmp_path / str(partitions), partitions=partitions)
        summary = {k: v for k, v in outcome.summary.items() if k != "run_id"}
        results.append(([rows(outcome.out / name) for name in OUTPUT_FILES], summary))
    assert results[0] == results[1] == results[2]


def test_header_only_input(spark, tmp_path):
    export = tmp_path / "empty.csv"
    export.write_text("EPIKEY,OPERTN_01,OPDATE_01\n", encoding="utf-8")
    ingest([export], tmp_path / "parquet")
    outcome = spark_run(spark, [tmp_path / "parquet"], tmp_path / "spark")
    same_outputs(written(local_run([export]), tmp_path / "local"), outcome.out)
    assert outcome.summary["totals"]["rows_read"] == 0 and outcome.summary["inputs"][0]["path"] == str(export)


def test_a_table_input(spark, tmp_path):
    """--table: a catalogue table or view (here a temporary view over the examples)."""
    spark.read.parquet(str(_ingested_hes(tmp_path))).createOrReplaceTempView("hes_apc")
    from audit.engines.spark import run

    outcome = run(spark, Settings(tables=("hes_apc",), out=tmp_path / "spark", as_of=AS_OF), CATALOGUE, PINNED_TIME)
    local = local_run([EXAMPLES / "hes_episodes.csv"])
    # Tables have no row numbers or file, so compare what the coding manager acts on.
    keys = ["episode_id", "guidance_id", "rule_id", "position", "severity"]
    spark_findings = pl.read_csv(outcome.out / outputs.FINDINGS_CSV, infer_schema=False).select(keys)
    assert sorted(spark_findings.rows(), key=str) == sorted(local.findings.select(keys).cast(pl.String).rows(), key=str)
    assert outcome.summary["inputs"][0]["path"] == "hes_apc"


def _ingested_hes(tmp_path: Path) -> Path:
    ingest([EXAMPLES / "hes_episodes.csv"], tmp_path / "hes")
    return tmp_path / "hes" / "hes_episodes.parquet"


def test_spark_connect_smoke(tmp_path):
    """The same run over Spark Connect (a local Connect server), as on Databricks shared or
    serverless compute: no RDD, no sparkContext. A separate process: one JVM hosts one kind."""
    if shutil.which("java") is None:
        pytest.skip("no Java runtime: `make test` installs default-jre-headless when run as root")
    pytest.importorskip("grpc", reason="the spark extra's Spark Connect client (grpcio) is not installed")
    folder = tmp_path / "hes"
    ingest([EXAMPLES / "hes_episodes.csv"], folder)
    # SPARK_TESTING: the local Connect server takes an ephemeral port (SPARK-42272), so runs of
    # this test in other checkouts on the same machine do not collide on port 15002.
    env = {**os.environ, "SPARK_REMOTE": "local[2]", "SPARK_TESTING": "1", "PYSPARK_PYTHON": sys.executable,
           "SOURCE_DATE_EPOCH": str(int(PINNED_TIME.timestamp()))}
    command = [sys.executable, "-m", "audit", "run", str(folder), "--engine", "spark", "--out", str(tmp_path / "out"),
               "--as-of", AS_OF.isoformat(), "--quiet"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    latest = json.loads((tmp_path / "out" / "LATEST.json").read_text())
    local = local_run([EXAMPLES / "hes_episodes.csv"])
    assert latest["findings"] == local.findings.height > 0


def test_fail_on_exit_code_as_on_one_machine(spark, long_split, tmp_path):
    folder, _ = long_split
    ran = run_cli("run", str(folder / "parquet"), "--engine", "spark", "--out", str(tmp_path / "out"),
                  "--as-of", AS_OF.isoformat(), "--fail-on", "error", "--quiet")
    assert ran.exit_code == 1  # the long example has errors



def test_a_jdbc_source(spark, tmp_path):
    """--jdbc-url/--jdbc-table, against the Derby database Spark ships (in memory): the path a
    SQL Server warehouse takes with Microsoft's driver in the cluster image."""
    from audit.engines.spark import run

    driver = "org.apache.derby.iapi.jdbc.AutoloadedDriver"
    url = "jdbc:derby:memory:nice_audit;create=true"
    (spark.read.option("header", True).csv(str(EXAMPLES / "hes_episodes.csv"))  # test data only
     .write.format("jdbc").option("url", url).option("dbtable", "EPISODES").option("driver", driver)
     .mode("overwrite").save())
    settings = Settings(jdbc_url=url, jdbc_table="EPISODES", out=tmp_path / "spark", as_of=AS_OF,
                        spark_conf=(f"jdbc.driver={driver}",))
    outcome = run(spark, settings, CATALOGUE, PINNED_TIME)
    local = local_run([EXAMPLES / "hes_episodes.csv"])
    keys = ["episode_id", "guidance_id", "rule_id", "position", "severity"]
    spark_findings = pl.read_csv(outcome.out / outputs.FINDINGS_CSV, infer_schema=False).select(keys)
    assert sorted(spark_findings.rows(), key=str) == sorted(local.findings.select(keys).cast(pl.String).rows(), key=str)
    assert outcome.summary["totals"]["rows_read"] == local.data.files[0].rows_read > 0


def test_history_compares_spark_runs_as_local_runs(spark, long_split, tmp_path):
    """The next night's comparison works: still-open findings keep their first-seen date."""
    from audit.engines.spark import run

    folder, _ = long_split
    settings = Settings(inputs=(folder / "parquet",), out=tmp_path / "out", as_of=AS_OF, history=tmp_path / "h.sqlite",
                        runs_keep=1)
    first = run(spark, settings, CATALOGUE, PINNED_TIME)
    second = run(spark, settings, CATALOGUE, PINNED_TIME.replace(day=22))
    assert not first.out.exists() and second.out.is_dir()  # --runs-keep 1: the older run folder is pruned
    findings = first.summary["totals"]["findings"]
    assert first.run_id and second.run_id and first.out != second.out
    assert first.summary["changes"]["new"] == findings > 0
    changes = second.summary["changes"]
    assert (changes["previous_run"], changes["new"], changes["resolved"], changes["still-open"]) == (
        first.run_id, 0, 0, findings)
    seen = pl.read_csv(second.out / outputs.FINDINGS_CSV, infer_schema=False)["first_seen"].unique().to_list()
    assert seen == [PINNED_TIME.date().isoformat()]
    latest = json.loads((tmp_path / "out" / "LATEST.json").read_text())
    assert tmp_path / "out" / latest["path"] == second.out


def _next_night(folder: Path) -> tuple[Path, str, str]:
    """The example export, and the next night's: one episode with findings left out, and one
    episode's single finding fixed (its procedures recoded as a clean episode's). Returns the
    second export, the episode gone and the episode fixed."""
    first = pl.read_csv(EXAMPLES / "hes_episodes.csv", infer_schema=False)
    findings = local_run([EXAMPLES / "hes_episodes.csv"]).findings
    per_episode = findings.group_by("episode_id").len().sort("episode_id")
    gone = per_episode.filter(pl.col("len") > 1)["episode_id"][0]
    fixed = per_episode.filter(pl.col("len") == 1)["episode_id"][0]
    clean = first.filter(~pl.col("EPIKEY").is_in(findings["episode_id"].implode())).row(0, named=True)
    procedures = [c for c in first.columns if c.startswith(("OPERTN_", "OPDATE_"))]
    second = (first.filter(pl.col("EPIKEY") != gone)
              .with_columns(pl.when(pl.col("EPIKEY") == fixed).then(pl.lit(clean[c])).otherwise(pl.col(c)).alias(c)
                            for c in procedures))
    path = folder / "night2" / "hes_episodes.csv"
    path.parent.mkdir()
    second.write_csv(path)
    return path, gone, fixed


def test_spark_history_gives_the_same_changes_as_local_runs(spark, tmp_path, monkeypatch):
    """Two nights on each engine, the second with one episode gone and one finding fixed: the
    same changes.csv (episode-gone apart from resolved; a generic finding without a position
    still open), with the Spark run's keys kept as Parquet beside the history file."""
    from audit import history
    from audit.engines.spark import run

    second, gone, fixed = _next_night(tmp_path)
    nights = [(EXAMPLES / "hes_episodes.csv", PINNED_TIME), (second, PINNED_TIME.replace(day=22))]
    for number, (export, started) in enumerate(nights):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", str(int(started.timestamp())))
        ran = run_cli("run", str(export), "--out", str(tmp_path / "local"), "--history", str(tmp_path / "local.sqlite"),
                      "--scope", "trust", "--as-of", AS_OF.isoformat(), "--quiet")
        assert ran.exit_code in (0, 1), ran.output
        ingest([export], tmp_path / f"parquet{number}")
        settings = Settings(inputs=(tmp_path / f"parquet{number}",), out=tmp_path / "spark", as_of=AS_OF,
                            history=tmp_path / "spark.sqlite", scope="trust")
        outcome = run(spark, settings, CATALOGUE, started)
    local_changes = pl.read_csv(tmp_path / "local" / outputs.CHANGES_CSV, infer_schema=False)
    assert rows(tmp_path / "local" / outputs.CHANGES_CSV) == rows(outcome.out / outputs.CHANGES_CSV)
    changed = dict(local_changes.select("episode_id", "change").unique().group_by("episode_id")
                   .agg(pl.col("change").unique()).iter_rows())
    assert changed[gone] == [history.EPISODE_GONE] and changed[fixed] == [history.RESOLVED]
    undated = local_changes.filter(pl.col("position").is_null())
    assert undated.height and set(undated["change"]) == {history.STILL_OPEN}
    local_summary = json.loads((tmp_path / "local" / "summary.json").read_text())
    assert outcome.summary["changes"] | {"previous_run": None} == local_summary["changes"] | {"previous_run": None}
    # first_seen in the findings, and the next night's keys: Parquet beside the history file.
    assert rows(tmp_path / "local" / outputs.FINDINGS_CSV) == rows(outcome.out / outputs.FINDINGS_CSV)
    assert list((tmp_path / "spark.sqlite.keys").iterdir())


def test_wide_rows_sent_twice_meet_their_copies(spark, tmp_path):
    """A wide row whose id is elsewhere too (another file, with a tab after it; twice in one
    file) meets its copies in one partition and is rejected as on one machine."""
    frame = pl.read_csv(EXAMPLES / "hes_episodes.csv", infer_schema=False)
    half = frame.height // 2
    first, second = frame.head(half), frame.tail(frame.height - half)
    planted = first.head(2).with_columns(pl.concat_str(pl.col("EPIKEY"), pl.lit("\t")).alias("EPIKEY"))
    paths = [tmp_path / "trust_a.csv", tmp_path / "trust_b.csv"]
    pl.concat([first, first.tail(1)]).write_csv(paths[0])  # its last row twice
    pl.concat([second, planted]).write_csv(paths[1])
    ingest(paths, tmp_path / "parquet")
    whole = local_run(paths)
    outcome = spark_run(spark, [tmp_path / "parquet"], tmp_path / "spark", partitions=2)
    same_outputs(written(whole, tmp_path / "local"), outcome.out)
    assert whole.data.rejected["episode_id"].n_unique() == 3 and outcome.summary["totals"]["findings"] > 20


@pytest.mark.parametrize("written_as", ["INT96", "TIMESTAMP_MICROS"])
def test_timestamps_are_dated_in_england_whatever_the_session_time_zone(spark, tmp_path, written_as):
    """A timestamp Spark wrote is an instant: both engines date it by its day in England
    (audit.dates), though Spark's cast to text gives the session's wall time (here New York's)
    and polars reads INT96 without a time zone (audit.load.spark_instants)."""
    from audit.engines.spark import run

    as_of = date(2026, 6, 1)
    before = spark.conf.get("spark.sql.session.timeZone")
    try:
        spark.conf.set("spark.sql.session.timeZone", "Europe/London")
        spark.conf.set("spark.sql.parquet.outputTimestampType", written_as)
        spark.sql("select * from values ('E1', timestamp'2026-06-02 00:30:00'), ('E2', timestamp'2026-06-01 23:30:00')"
                  " as t(EPIKEY, OPDATE_01)").selectExpr(  # after the as-of day in England (BST), and on it
            "EPIKEY", "'2026-05-31' as EPIEND", "'W371' as OPERTN_01", "OPDATE_01", "'Z943' as OPERTN_02",
        ).coalesce(1).write.parquet(str(tmp_path / "instants"))
        spark.conf.set("spark.sql.session.timeZone", "America/New_York")
        spark.read.parquet(str(tmp_path / "instants")).createOrReplaceTempView("instants")
        settings = Settings(tables=("instants",), out=tmp_path / "spark", as_of=as_of)
        outcome = run(spark, settings, CATALOGUE, PINNED_TIME)
    finally:
        spark.conf.set("spark.sql.session.timeZone", before)
        spark.conf.unset("spark.sql.parquet.outputTimestampType")
    keys = ["episode_id", "rule_id", "position"]
    spark_findings = pl.read_csv(outcome.out / outputs.FINDINGS_CSV, infer_schema=False).select(keys).rows()
    assert spark_findings == [("E1", "date-in-future", "1")]
    (path,) = (tmp_path / "instants").glob("*.parquet")
    local = run_audit(AuditOptions(inputs=[path], as_of=as_of), CATALOGUE, PINNED_TIME)
    assert local.findings.select(keys).cast(pl.String).rows() == spark_findings
