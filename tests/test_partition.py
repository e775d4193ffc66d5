"""The partition property the Spark engine relies on, checked without a JVM.

For random runs (wide and long files, ids differing only in whitespace, cross-file duplicates,
repeated long positions) and random partitionings by `unit.partition_key`, the union of
`audit_rows` over the parts equals the whole run, and the counts reduce to the whole run's
summary. Kept quick by default (few examples); HYPOTHESIS_PROFILE=thorough searches longer.
"""

from __future__ import annotations

import os
from datetime import date

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audit import outputs, unit
from audit.catalogue import load_catalogue
from audit.load import read_exports
from audit.pipeline import AuditOptions, run_audit
from schemas.inputs import REJECTION_REASONS
from tests.conftest import PINNED_TIME

settings.register_profile("partition-quick", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("partition-thorough", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile("partition-thorough" if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else "partition-quick")

AS_OF = date(2026, 11, 21)
CATALOGUE = load_catalogue()
# Codes that fire rules (the spinal code sets, qualifiers, generic checks) and ones that do not.
CODES = ["V522", "V401", "V551", "V552", "Y534", "Y539", "Z066", "Z992", "Y102", "W371", "-", "V5", "v52.2", ""]
DATES = ["2012-03-14", "2018-05-16", "2024-02-01", "", "not a date"]
# Ids differing only in whitespace are one episode after stripping.
IDS = ["E1", " E1", "E1\t", "E2", "E3", "E4\n", "E4", "E5", "", "E6"]

wide_row = st.tuples(st.sampled_from(IDS), st.lists(st.sampled_from(CODES), min_size=4, max_size=4),
                     st.sampled_from(DATES))
long_row = st.tuples(st.sampled_from(IDS), st.sampled_from(["1", "2", "3", " 2", "2.0", "x"]),
                     st.sampled_from(CODES), st.sampled_from(DATES))
files = st.lists(st.one_of(st.tuples(st.just("wide"), st.lists(wide_row, max_size=8)),
                           st.tuples(st.just("long"), st.lists(long_row, max_size=12))),
                 min_size=1, max_size=3)


def _write(folder, number: int, shape: str, rows: list) -> object:
    path = folder / f"f{number}_{shape}.csv"
    if shape == "wide":
        data = {"EPIKEY": [r[0] for r in rows], "PROCODE3": ["RTH"] * len(rows), "ADMIDATE": [r[2] for r in rows]}
        for n in range(4):
            data[f"OPERTN_0{n + 1}"] = [r[1][n] for r in rows]
            data[f"OPDATE_0{n + 1}"] = [r[2] for r in rows]
    else:
        data = {"episode_id": [r[0] for r in rows], "position": [r[1] for r in rows],
                "code": [r[2] for r in rows], "procedure_date": [r[3] for r in rows],
                "provider": ["RRK"] * len(rows)}
    pl.DataFrame(data, schema={k: pl.String for k in data}).write_csv(path)
    return path


def _run(folder, spec):
    paths = [_write(folder, n, shape, rows) for n, (shape, rows) in enumerate(spec)]
    exports = read_exports(paths)
    ctx = unit.AuditContext(CATALOGUE, AS_OF, PINNED_TIME, tuple(exports))
    empty = [pl.DataFrame(schema=unit.canonical_schema(e)) for e in exports]
    rows = pl.concat([*empty, *(b for e in exports for b in e.batches())], how="diagonal")
    return paths, ctx, rows


# Counters whose split depends on where the prefilter drew its line, not on the run: a field is
# counted as an audited procedure (or no-operation marker) when its episode went to the full audit,
# else in its file's `clean_*` counter. The local engine sends an episode whose rows its
# episode-aligned batches split to the full audit; a partition holding all its rows in one frame
# may set it aside. Each pair is compared by its sum, as the summary adds them.
_PREFILTER_SPLIT = {("code_kind", "procedure"): "clean_procedures",
                    ("code_kind", "no_operation"): "clean_no_operations"}


def _counts(counts: pl.DataFrame) -> list[tuple]:
    folded = counts
    for (metric, key), clean in _PREFILTER_SPLIT.items():
        pair = ((pl.col("metric") == metric) & (pl.col("key") == key)) | (pl.col("metric") == clean)
        folded = folded.with_columns(pl.when(pair).then(pl.lit("")).otherwise("source_file").alias("source_file"),
                                     pl.when(pair).then(pl.lit(f"{metric}:{key} + {clean}")).otherwise("metric")
                                     .alias("metric"),
                                     pl.when(pair).then(pl.lit("")).otherwise("key").alias("key"))
    return unit.sum_counts(folded).rows()


def _frames(part: unit.PartitionResult) -> dict[str, list]:
    frames = {name: getattr(part, name).rows() for name in
              ("findings", "episodes", "rejected", "sequences", "carried", "episode_ids")}
    return {**frames, "counts": _counts(part.counts)}


@given(spec=files, partitions=st.integers(1, 4), salt=st.integers(0, 1000))
# E2's rows split by E1's: the local engine audits E2 in full, a partition sets it aside (_PREFILTER_SPLIT)
@example(spec=[("long", [("E2", "1", "W371", "2012-03-14"), ("E1", "1", "V522", "2012-03-14"),
                         ("E2", "2", "Y534", "2012-03-14")])], partitions=1, salt=0)
def test_union_over_any_partitioning_equals_the_whole_run(tmp_path_factory, spec, partitions, salt):
    paths, ctx, rows = _run(tmp_path_factory.mktemp("run"), spec)
    whole = run_audit(AuditOptions(inputs=paths, as_of=AS_OF), CATALOGUE, PINNED_TIME)
    bucket = (unit.partition_key(pl.col("episode_id")).hash(seed=salt) % partitions).alias("_bucket")
    keyed = rows.with_columns(bucket)
    parts = [unit.audit_rows(keyed.filter(pl.col("_bucket") == b).drop("_bucket"), ctx) for b in range(partitions)]
    union = unit.combine(parts)
    assert _frames(union) == _frames(unit.canonical_order(unit.from_result(whole)))
    assert unit.summary_from_counts(union.counts, ctx) == outputs.summary(whole)


def test_a_split_episode_breaks_the_property(tmp_path):
    """Why engines must partition by the key: a cross-file duplicate split over two partitions
    goes unseen (scale-out.md P7)."""
    spec = [("wide", [("E1", ["V522", "V551", "Y534", "Z066"], "2012-03-14")]),
            ("wide", [("E1 ", ["V522", "", "", ""], "2012-03-14")])]
    _, ctx, rows = _run(tmp_path, spec)
    together = unit.audit_rows(rows, ctx)
    split = unit.combine([unit.audit_rows(rows.head(1), ctx), unit.audit_rows(rows.tail(1), ctx)])
    assert together.rejected["reason"].to_list() == [REJECTION_REASONS["episode-in-several-files"]] * 2
    assert split.rejected.height == 0  # wrong, silently: the copies were never seen together


@pytest.mark.parametrize("value", ["7", " 7", "7\t", "\n7", "7\u00a0", "\u20037 "])
def test_partition_key_strips_like_the_canonical_stage(value):
    """Unicode whitespace too, where Spark's trim keeps it (scale-out.md P8)."""
    assert pl.select(unit.partition_key(pl.lit(value))).item() == "7"
