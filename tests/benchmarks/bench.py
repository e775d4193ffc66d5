"""How long the full audit takes, and how much memory it needs, against polars merely reading
the same export.

    python tests/benchmarks/bench.py [--episodes 1000000] [--formats csv,parquet] [--workdir DIR]
                                     [--repeat K] [--seed S] [--keep]

(`make bench`, with `BENCH_ARGS="..."` for the options.)

The input is generated once per (episodes, seed, generator version) into the work folder
(default `out/bench/`) and reused. Each measurement runs in its own process, so its peak RSS is
its own:

- floor: `polars.read_csv(path, infer_schema=False)` (every column, as strings), or
  `polars.read_parquet(path)`;
- audit: `nice-audit run PATH --out DIR --quiet`, the console script beside this Python.

Wall time is measured around the child (perf_counter), peak RSS from `os.wait4` (`ru_maxrss`).
Both include starting Python and importing polars. With `--repeat K` the fastest of K runs is
reported, with the highest peak RSS seen. The file is read from a warm page cache.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

from tests.benchmarks.generate import (  # noqa: E402
    DEFAULT_SEED,
    GENERATOR_VERSION,
    csv_to_parquet,
    generate_hes,
)

FORMATS = ("csv", "parquet")
NICE_AUDIT = Path(sys.executable).parent / "nice-audit"
HEADER = f"{'format':<8} {'episodes':>12} {'floor_s':>10} {'floor_rss_MB':>13} {'audit_s':>9} {'audit_rss_MB':>13} {'ratio':>7}"

FLOOR = """
import sys
import polars as pl
path, fmt = sys.argv[1], sys.argv[2]
frame = pl.read_parquet(path) if fmt == "parquet" else pl.read_csv(path, infer_schema=False)
print(frame.height, frame.width)
"""


@dataclass
class Measurement:
    seconds: float
    rss_mb: float
    stdout: str
    stderr: str
    exit_code: int


def measure(command: list[str], scratch: Path) -> Measurement:
    """Run `command` in its own process; its wall time and peak RSS (from wait4)."""
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=scratch) as out, tempfile.TemporaryFile(dir=scratch) as err:
        began = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - began
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return Measurement(
            seconds=seconds,
            rss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
            exit_code=child.returncode,
        )


def best_of(command: list[str], repeat: int, scratch: Path, what: str) -> Measurement:
    runs = []
    for _ in range(repeat):
        run = measure(command, scratch)
        if run.exit_code != 0:
            sys.stderr.write(f"bench: {what} exited with {run.exit_code}:\n{run.stderr}")
            sys.exit(1)
        runs.append(run)
    fastest = min(runs, key=lambda r: r.seconds)
    fastest.rss_mb = max(r.rss_mb for r in runs)
    return fastest


def inputs_for(episodes: int, seed: int, formats: list[str], workdir: Path) -> dict[str, Path]:
    """The cached inputs, generating whatever is missing (written beside, then renamed)."""
    stem = f"hes_n{episodes}_seed{seed}_v{GENERATOR_VERSION}"
    csv = workdir / f"{stem}.csv"
    paths = {"csv": csv, "parquet": workdir / f"{stem}.parquet"}
    workdir.mkdir(parents=True, exist_ok=True)
    if not csv.exists():
        partial = csv.with_name(csv.name + ".partial")
        print(f"Generating {episodes:,} episodes (seed {seed}) ...", flush=True)
        stats = generate_hes(partial, episodes, seed=seed)
        os.replace(partial, csv)
        (workdir / f"{stem}.json").write_text(json.dumps(stats | {"path": str(csv)}, indent=2) + "\n")
        print(f"  {csv} ({stats['bytes'] / 1e6:,.1f} MB) in {stats['seconds']:.1f} s", flush=True)
    if "parquet" in formats and not paths["parquet"].exists():
        partial = paths["parquet"].with_name(paths["parquet"].name + ".partial")
        made = csv_to_parquet(csv, partial)
        os.replace(partial, paths["parquet"])
        print(f"  {paths['parquet']} ({made['bytes'] / 1e6:,.1f} MB) in {made['seconds']:.1f} s", flush=True)
    return {fmt: paths[fmt] for fmt in formats}


def total_ram_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=1_000_000)
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated: csv,parquet")
    parser.add_argument("--workdir", type=Path, default=ROOT / "out" / "bench",
                        help="where inputs are cached and audits write (default out/bench/)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--repeat", type=int, default=1, help="best of K runs (default 1)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the audit outputs in WORKDIR/audit-FORMAT-nN (deleted by default)")
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if not formats or any(f not in FORMATS for f in formats):
        parser.error(f"--formats takes a comma-separated list of {', '.join(FORMATS)}")
    if args.episodes < 1 or args.repeat < 1:
        parser.error("--episodes and --repeat must be at least 1")
    if not NICE_AUDIT.exists():
        sys.stderr.write(f"bench: {NICE_AUDIT} not found (pip install -e . into this Python's venv)\n")
        return 1

    workdir = args.workdir.resolve()
    load_before = os.getloadavg()[0]
    inputs = inputs_for(args.episodes, args.seed, formats, workdir)
    rows, totals = [], {}
    for fmt, path in inputs.items():
        print(f"Measuring {fmt} ...", flush=True)
        floor = best_of([sys.executable, "-c", FLOOR, str(path), fmt], args.repeat, workdir, f"floor ({fmt})")
        out = workdir / f"audit-{fmt}-n{args.episodes}"
        audit = best_of([str(NICE_AUDIT), "run", str(path), "--out", str(out), "--quiet"],
                        args.repeat, workdir, f"nice-audit ({fmt})")
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        totals[fmt] = summary
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
        rows.append((fmt, floor, audit))

    ram = total_ram_gb()
    print()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{f'{ram:.1f} GiB RAM' if ram else 'RAM unknown'}, {platform.system()} {platform.release()}")
    print(f"python {platform.python_version()}, polars {pl.__version__}, "
          f"POLARS_MAX_THREADS={os.environ.get('POLARS_MAX_THREADS', 'unset')}")
    print(f"1-minute load average: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after "
          f"(other work on the machine inflates the figures)")
    for fmt, path in inputs.items():
        print(f"input {fmt:<8} {path} ({path.stat().st_size / 1e6:,.1f} MB)")
    print(f"wall time and peak RSS of each child process; {'best of ' + str(args.repeat) if args.repeat > 1 else 'one run each'}; "
          "ratio = audit_s / floor_s")
    print()
    print(HEADER)
    for fmt, floor, audit in rows:
        print(f"{fmt:<8} {args.episodes:>12,} {floor.seconds:>10.2f} {floor.rss_mb:>13.1f} "
              f"{audit.seconds:>9.2f} {audit.rss_mb:>13.1f} {audit.seconds / floor.seconds:>7.2f}")
    print()
    for fmt, summary in totals.items():
        t = summary["totals"]
        status = ", ".join(f"{k} {v:,}" for k, v in summary["by_status"].items())
        print(f"audit {fmt:<8} rows_read {t['rows_read']:,}, rows_rejected {t['rows_rejected']:,}, "
              f"episodes_audited {t['episodes_audited']:,}, matched_pairs {t['matched_pairs']:,}, "
              f"findings {t['findings']:,} ({status})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
