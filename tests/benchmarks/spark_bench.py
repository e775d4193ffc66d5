"""The local engine against the Spark engine (local mode, warm) on the same Parquet file.

    python tests/benchmarks/spark_bench.py [--episodes 1000000] [--master local[2]] [--workdir DIR]
                                           [--partitions N] [--repeat K]

The input is the benchmark generator's HES export (seeded), written once as Parquet into the
work folder (default `out/bench/`) and reused. Printed per engine: wall seconds, CPU seconds
(user + system of this process and every process under it: the JVM and Spark's Python workers,
read from /proc) and the load average when it ran; then the ratio Spark / local. Spark is timed
warm: one run first starts the JVM, the Python workers and imports, and is reported apart
(`spark cold`). Both engines produce their full outputs (datasets, CSVs, summary, report).

Five other engineers share this machine's 2 cores: read CPU seconds beside wall seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.benchmarks.generate import DEFAULT_SEED, GENERATOR_VERSION, csv_to_parquet, generate_hes  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def _tree_cpu(root: int) -> float:
    """CPU seconds of `root` and its descendants, reaped children included."""
    parents, times = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = sum(int(v) for v in fields[11:15]) / TICKS  # utime stime cutime cstime
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        total += times.get(pid, 0.0)
        stack += [child for child, parent in parents.items() if parent == pid]
    return total


def _measure(label: str, action) -> dict:
    load = os.getloadavg()[0]
    cpu, began = _tree_cpu(os.getpid()), time.perf_counter()
    result = action()
    wall, cpu = time.perf_counter() - began, _tree_cpu(os.getpid()) - cpu
    row = {"run": label, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "load_1min": round(load, 1),
           "findings": result}
    print(f"{label:<12} wall {wall:7.1f} s   cpu {cpu:7.1f} s   load {load:5.1f}   findings {result:,}", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=1_000_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--partitions", type=int, default=None, help="default: one per 500k rows")
    parser.add_argument("--repeat", type=int, default=1, help="warm Spark runs (the fastest is kept)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "out" / "bench")
    args = parser.parse_args(argv)

    from audit.catalogue import load_catalogue
    from audit.config import Settings
    from audit.pipeline import AuditOptions, run_audit
    from audit import outputs

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    name = f"hes_{args.episodes}_s{DEFAULT_SEED}_g{GENERATOR_VERSION}"
    parquet = work / f"{name}.parquet"
    if not parquet.exists():
        csv = work / f"{name}.csv"
        if not csv.exists():
            generate_hes(csv, args.episodes)
        csv_to_parquet(csv, parquet)
    catalogue = load_catalogue()
    started = datetime.now(timezone.utc)
    print(f"input: {parquet} ({args.episodes:,} episodes, {parquet.stat().st_size / 1e6:.0f} MB); "
          f"{os.cpu_count()} cores; spark master {args.master}", flush=True)

    def local() -> int:
        result = run_audit(AuditOptions(inputs=[parquet], as_of=started.date()), catalogue, started)
        folder = work / "local-out"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        outputs.write(result, folder)
        return result.findings.height

    rows = [_measure("local", local)]

    os.environ.setdefault("SPARK_MASTER", args.master)
    from audit.engines import spark

    settings = Settings(inputs=(parquet,), out=work / "spark-out", as_of=started.date(), partitions=args.partitions,
                        spark_conf=("spark.driver.memory=4g", "spark.sql.shuffle.partitions=4"))
    session_row = _measure("spark start", lambda: spark.session(settings) and 0)
    session = spark.session(settings)

    def on_spark() -> int:
        return spark.run(session, settings, catalogue, started).summary["totals"]["findings"]

    rows += [session_row, _measure("spark cold", on_spark)]
    warm = [_measure("spark warm", on_spark) for _ in range(args.repeat)]
    best = min(warm, key=lambda r: r["wall_s"])
    rows += warm
    session.stop()
    local_row = rows[0]
    assert best["findings"] == local_row["findings"], "the engines disagree"
    print(f"ratio spark warm / local: wall {best['wall_s'] / local_row['wall_s']:.1f}x, "
          f"cpu {best['cpu_s'] / max(local_row['cpu_s'], 0.1):.1f}x")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
