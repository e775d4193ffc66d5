"""How long the full audit takes, and how much memory it needs, against polars merely reading
the same export, and against what a user would write instead (issue 15).

    python tests/benchmarks/bench.py [--episodes 100000,1000000] [--formats csv,parquet]
                                     [--mixes padded,spinal,quoted,typed,windows,gzip]
                                     [--padded-episodes N] [--spinal-episodes N] [--quoted-episodes N]
                                     [--typed-episodes N] [--windows-episodes N] [--gzip-episodes N]
                                     [--long-episodes N] [--pandas-episodes N] [--no-duckdb]
                                     [--repeat K] [--workdir DIR] [--seed S] [--keep]

(`make bench`, with `BENCH_ARGS="..."` for the options; tests/benchmarks/README.md says more.)

It prints five tables:

1. the targets of issue 15 point 1 (audit / floor wall-time ratio and peak RSS, target beside
   each figure) for the `hes` mix at each size, the `padded` mix and the targeted `spinal` mix,
   CSV and Parquet, `quoted`: the hes CSV with every field quoted (as pandas, R and SQL Server
   exports may write it; CSV only), and `typed`: the hes Parquet with its dates typed as dates
   (as Spark writes a SUS extract; Parquet only), `windows`: the hes CSV as a Windows PAS may
   write it (cp1252, CR LF line ends, accented names), and `gzip`: the hes CSV gzipped (both CSV
   only); then (1b), for each ratio target, the seconds
   it leaves for the audit's own work once the fixed stack is imported (the stack floor: the
   floor after importing pandera, typer and jinja2), beside what that work takes now;
2. the sweep: seconds per million episodes at each size, so fixed costs (falling per million)
   and super-linear steps (rising) show;
3. the long layout (one row per procedure);
4. the peers: a DuckDB SQL version of the generic rules over the same CSV, and the pandas row
   loop an analyst would write (at a small size), with the ratio to nice-audit;
5. fixed costs: `nice-audit --version`, `catalogue list` and `history` (best of 5);

then what each audit found (from its summary.json), so a reader can see it did its work.

Inputs are generated once per (mix, episodes, seed, generator version) into the work folder
(default `out/bench/`) and reused. Each measurement runs in its own process, so its peak RSS is
its own (`os.wait4`); wall time is taken around the child (perf_counter), so both include starting
Python and importing polars. Floor, stack floor and audit alternate, K times each (`--repeat`,
default 3): the fastest time and the highest peak RSS are reported, and load on the machine
affects them alike.
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
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

from tests.benchmarks.generate import DEFAULT_SEED, GENERATOR_VERSION, MIXES  # noqa: E402
from tests.benchmarks.peers import GENERIC_RULES  # noqa: E402

FORMATS = ("csv", "parquet")
# The mixes made from the hes export, each measured in one format only
ONE_FORMAT = {"quoted": "csv", "typed": "parquet", "windows": "csv", "gzip": "csv"}
NICE_AUDIT = Path(sys.executable).parent / "nice-audit"
PEERS = Path(__file__).with_name("peers.py")
MB = 1024 * 1024  # peak RSS is printed in MB of 2**20 bytes; the targets' GB are 2**30 bytes

TO_PARQUET = """
import json, sys
sys.path.insert(0, sys.argv[3])
from tests.benchmarks.generate import csv_to_parquet
print(json.dumps(csv_to_parquet(sys.argv[1], sys.argv[2])))
"""

TO_QUOTED = """
import sys
import polars as pl
pl.read_csv(sys.argv[1], infer_schema=False).write_csv(sys.argv[2], quote_style="always")
"""

TO_TYPED = """
import sys
import polars as pl
dates = pl.col("ADMIDATE", "EPISTART", "EPIEND", *[f"OPDATE_{n:02d}" for n in range(1, 25)])
pl.scan_csv(sys.argv[1], infer_schema=False).with_columns(dates.str.to_date("%Y-%m-%d", strict=False)).sink_parquet(
    sys.argv[2])
"""

# The Windows export: cp1252 (a consultant's name accented every 97th row, so every block of the
# file holds some), each line ended by CR LF.
TO_WINDOWS = """
import sys
with open(sys.argv[1], "rb") as source, open(sys.argv[2], "wb") as out:
    for number, line in enumerate(source):
        if number and number % 97 == 0:
            line = line.replace(b",C", b",\\xe9C", 1)
        out.write(line.removesuffix(b"\\n") + b"\\r\\n")
"""

TO_GZIP = """
import gzip, shutil, sys
with open(sys.argv[1], "rb") as source, gzip.GzipFile(sys.argv[2], "wb", compresslevel=6, mtime=0) as out:
    shutil.copyfileobj(source, out, 1 << 20)
"""
MADE = {"quoted": (TO_QUOTED, "csv"), "typed": (TO_TYPED, "parquet"), "windows": (TO_WINDOWS, "csv"),
        "gzip": (TO_GZIP, "csv.gz")}

# polars reads a gzipped CSV itself (in memory), and cp1252 only as lossy UTF-8: as near to
# "merely reading" those files as it comes.
FLOOR = """
import sys
import polars as pl
path, fmt, encoding = sys.argv[1:4]
frame = pl.read_parquet(path) if fmt == "parquet" else pl.read_csv(path, infer_schema=False, encoding=encoding)
print(frame.height, frame.width)
"""

# The floor after importing the libraries every run must import beside polars, which the user
# fixed (pandera's polars API as nice-audit imports it, without pandas: schemas/engine.py; typer;
# jinja2): the floor plus the imports no run on this stack can avoid.
STACK_FLOOR = "import schemas.engine, typer, jinja2\n" + FLOOR


@dataclass
class Measurement:
    seconds: float
    rss_mb: float
    cpu: float  # user + system seconds of the child and everything under it
    stdout: str
    stderr: str
    exit_code: int


@dataclass
class Pair:
    """Floor and audit of one input, measured alternately."""

    mix: str
    fmt: str
    episodes: int
    path: Path
    floor: Measurement
    stack: Measurement  # the floor after the stack's imports (STACK_FLOOR)
    audit: Measurement
    summary: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.audit.seconds / self.floor.seconds

    @property
    def own_work(self) -> float:
        """The audit's seconds beyond the stack floor: its own checks, outputs and report."""
        return self.audit.seconds - self.stack.seconds

    @property
    def cpu_ratio(self) -> float:
        return self.audit.cpu / self.floor.cpu


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
            cpu=usage.ru_utime + usage.ru_stime,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
            exit_code=child.returncode,
        )


def _checked(run: Measurement, what: str) -> Measurement:
    if run.exit_code != 0:
        sys.stderr.write(f"bench: {what} exited with {run.exit_code}:\n{run.stderr}")
        sys.exit(1)
    return run


def _best(runs: list[Measurement]) -> Measurement:
    fastest = min(runs, key=lambda r: r.seconds)
    fastest.rss_mb = max(r.rss_mb for r in runs)
    fastest.cpu = min(r.cpu for r in runs)
    return fastest


def best_of(command: list[str], repeat: int, scratch: Path, what: str) -> Measurement:
    return _best([_checked(measure(command, scratch), what) for _ in range(repeat)])


def audit_command(path: Path, out: Path) -> list[str]:
    return [str(NICE_AUDIT), "run", str(path), "--out", str(out), "--quiet"]


def floor_and_audit(mix: str, fmt: str, episodes: int, path: Path, args) -> Pair:
    """The floor, the stack floor and the audit of one input, alternating (floor, stack, audit,
    floor, stack, audit, ...)."""
    print(f"Measuring {mix} {fmt} at {episodes:,} episodes ...", flush=True)
    out = args.workdir / f"audit-{mix}-{fmt}-n{episodes}"
    floors, stacks, audits = [], [], []
    read = [str(path), fmt, "utf8-lossy" if mix == "windows" else "utf8"]  # (FLOOR's arguments)
    for _ in range(args.repeat):
        floors.append(_checked(measure([sys.executable, "-c", FLOOR, *read], args.workdir), f"floor ({mix} {fmt})"))
        stacks.append(_checked(measure([sys.executable, "-c", STACK_FLOOR, *read], args.workdir),
                               f"stack floor ({mix} {fmt})"))
        audits.append(_checked(measure(audit_command(path, out), args.workdir), f"nice-audit ({mix} {fmt})"))
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    pair = Pair(mix, fmt, episodes, path, _best(floors), _best(stacks), _best(audits), summary)
    # As it goes, so that an interrupted run still leaves its figures in the log.
    print(f"  floor {pair.floor.seconds:.2f} s (CPU {pair.floor.cpu:.2f} s) {pair.floor.rss_mb:,.0f} MB, stack floor "
          f"{pair.stack.seconds:.2f} s, audit {pair.audit.seconds:.2f} s (CPU {pair.audit.cpu:.2f} s) "
          f"{pair.audit.rss_mb:,.0f} MB, ratio {pair.ratio:.2f} (load {os.getloadavg()[0]:.1f})", flush=True)
    return pair


# --- Inputs --------------------------------------------------------------------------------------

GENERATE = Path(__file__).with_name("generate.py")


def _generate(*args: str) -> dict:
    """Run generate.py in a child process: the children's peak RSS (wait4) starts from this
    process's own high-water mark, so the benchmark itself must stay small."""
    done = subprocess.run([sys.executable, str(GENERATE), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(f"bench: generate.py {' '.join(args)} failed:\n{done.stderr}")
        sys.exit(1)
    return json.loads(done.stdout)


def input_for(mix: str, episodes: int, fmt: str, seed: int, workdir: Path) -> Path:
    """The cached input, generated when missing (written beside, then renamed). fmt: csv, parquet
    or long (the long layout, as CSV); the mixes of ONE_FORMAT are made from the hes CSV (MADE)."""
    if mix in MADE:
        script, suffix = MADE[mix]
        made = workdir / f"hes_n{episodes}_seed{seed}_v{GENERATOR_VERSION}_{mix}.{suffix}"
        if not made.exists():
            partial = made.with_name(made.name + ".partial")
            _checked(measure([sys.executable, "-c", script,
                              str(input_for("hes", episodes, "csv", seed, workdir)), str(partial)], workdir),
                     f"writing the {mix} export")
            os.replace(partial, made)
            print(f"  {made} ({made.stat().st_size / 1e6:,.1f} MB)", flush=True)
        return made
    stem = f"{mix}_n{episodes}_seed{seed}_v{GENERATOR_VERSION}"
    csv, parquet, long = (workdir / f"{stem}.csv", workdir / f"{stem}.parquet", workdir / f"{stem}_long.csv")
    workdir.mkdir(parents=True, exist_ok=True)
    if fmt == "long" and not long.exists():
        print(f"Generating {episodes:,} {mix} episodes in the long layout (seed {seed}) ...", flush=True)
        wide, partial = csv.with_name(csv.name + ".partial"), long.with_name(long.name + ".partial")
        stats = _generate(str(wide), "--episodes", str(episodes), "--seed", str(seed), "--mix", mix,
                          "--long", str(partial))
        os.replace(partial, long)
        if csv.exists():
            wide.unlink()
        else:
            os.replace(wide, csv)
        print(f"  {long} ({stats['long']['bytes'] / 1e6:,.1f} MB, {stats['long']['rows']:,} rows) "
              f"in {stats['seconds']:.1f} s", flush=True)
    if not csv.exists():
        print(f"Generating {episodes:,} {mix} episodes (seed {seed}) ...", flush=True)
        partial = csv.with_name(csv.name + ".partial")
        stats = _generate(str(partial), "--episodes", str(episodes), "--seed", str(seed), "--mix", mix)
        os.replace(partial, csv)
        (workdir / f"{stem}.json").write_text(json.dumps(stats | {"path": str(csv)}, indent=2) + "\n")
        print(f"  {csv} ({stats['bytes'] / 1e6:,.1f} MB) in {stats['seconds']:.1f} s", flush=True)
    if fmt == "parquet" and not parquet.exists():
        partial = parquet.with_name(parquet.name + ".partial")
        made = json.loads(_checked(measure([sys.executable, "-c", TO_PARQUET, str(csv), str(partial), str(ROOT)], workdir),
                                   "Parquet conversion").stdout)
        os.replace(partial, parquet)
        print(f"  {parquet} ({made['bytes'] / 1e6:,.1f} MB) in {made['seconds']:.1f} s", flush=True)
    return {"csv": csv, "parquet": parquet, "long": long}[fmt]


# --- Targets (issue 15 point 1) --------------------------------------------------------------------

def targets(mix: str, fmt: str, episodes: int) -> tuple[float | None, float | None]:
    """(audit/floor ratio, peak RSS in MB) the issue sets for this input, or None where it sets none.
    The wide targets are for 1M and 10M episodes; the targeted spinal export's ratio is 3x."""
    if fmt == "long":
        return None, (3 * 1024 if episodes >= 10_000_000 else None)  # "bounded memory at 10M"
    if mix == "spinal":
        return 3.0, (1.5 * 1024 if episodes <= 1_000_000 else 3 * 1024)
    if episodes == 1_000_000:
        return (1.5 if fmt == "csv" else 2.0), 1.5 * 1024
    if episodes >= 10_000_000:
        return (1.25 if fmt == "csv" else 1.5), 3 * 1024
    return None, None


def _against(value: float, target: float | None, width: int, digits: int) -> str:
    if target is None:
        return f"{value:>{width},.{digits}f} {'':>9}"
    mark = "ok" if value <= target else "MISSED"
    return f"{value:>{width},.{digits}f} {f'≤{target:,.{digits}f}':>9} {mark:<6}"


# --- Fixed costs -----------------------------------------------------------------------------------

def fixed_costs(workdir: Path, repeat: int) -> list[tuple[str, Measurement, float | None]]:
    history = workdir / "empty-history.sqlite"
    if not history.exists():
        from audit.history import connect

        connect(history).close()  # an empty history of the current schema
    commands = [
        ("python -c pass (interpreter start)", [sys.executable, "-c", "pass"], None),
        ("python -c 'import polars'", [sys.executable, "-c", "import polars"], None),
        ("nice-audit --version", [str(NICE_AUDIT), "--version"], 0.15),
        ("nice-audit catalogue list", [str(NICE_AUDIT), "catalogue", "list"], None),
        ("nice-audit history (empty history)", [str(NICE_AUDIT), "history", "--history", str(history)], None),
    ]
    return [(name, best_of(command, repeat, workdir, name), target) for name, command, target in commands]


# --- Printing --------------------------------------------------------------------------------------

def _audit_line(pair: Pair) -> str:
    t = pair.summary["totals"]
    return (f"{pair.mix:<7} {pair.fmt:<8} {pair.episodes:>11,}  rows_read {t['rows_read']:,}, rejected "
            f"{t['rows_rejected']:,}, episodes {t['episodes_audited']:,}, matched {t['matched_pairs']:,}, "
            f"findings {t['findings']:,}")


def print_targets(pairs: list[Pair]) -> None:
    print("1. Issue 15 point 1: audit / floor, wall time and peak RSS (target beside each figure)")
    print(f"{'mix':<7} {'format':<8} {'episodes':>11} {'floor_s':>8} {'audit_s':>8} "
          f"{'ratio':>6} {'target':>9} {'':<6} {'floor_MB':>9} {'audit_MB':>9} {'target':>9} {'':<6} "
          f"{'floor_cpu':>9} {'audit_cpu':>9} {'cpu_ratio':>9}")
    for p in pairs:
        ratio_target, rss_target = targets(p.mix, p.fmt, p.episodes)
        print(f"{p.mix:<7} {p.fmt:<8} {p.episodes:>11,} {p.floor.seconds:>8.2f} {p.audit.seconds:>8.2f} "
              f"{_against(p.ratio, ratio_target, 6, 2)} {p.floor.rss_mb:>9,.0f} "
              f"{_against(p.audit.rss_mb, rss_target, 9, 0):<26} {p.floor.cpu:>9.2f} {p.audit.cpu:>9.2f} "
              f"{p.cpu_ratio:>9.2f}")
    print("(targets: issue 15 point 1 for 1M and 10M episodes, CSV and Parquet; ≤3x for the targeted"
          " spinal export; none at other sizes. cpu: user + system seconds, less sensitive to other load"
          " than wall time)")


def print_budget(pairs: list[Pair]) -> None:
    """What each ratio target leaves for the audit's own work once the stack is imported, beside
    what that work takes now."""
    print("1b. What each ratio target leaves for the audit's own work (wall seconds)")
    print(f"{'mix':<7} {'format':<8} {'episodes':>11} {'floor_s':>8} {'stack_s':>8} {'stack/floor':>11} "
          f"{'target_s':>9} {'left_s':>7} {'own_work_s':>10}")
    for p in pairs:
        ratio_target, _ = targets(p.mix, p.fmt, p.episodes)
        if ratio_target is None:
            continue
        allowed = ratio_target * p.floor.seconds
        print(f"{p.mix:<7} {p.fmt:<8} {p.episodes:>11,} {p.floor.seconds:>8.2f} {p.stack.seconds:>8.2f} "
              f"{p.stack.seconds / p.floor.seconds:>11.2f} {allowed:>9.2f} {allowed - p.stack.seconds:>7.2f} "
              f"{p.own_work:>10.2f}")
    print("(stack_s: the floor after importing what every run must beside polars: pandera's polars API, typer,"
          " jinja2. target_s: the ratio target times the floor; left_s: target_s - stack_s, the seconds the"
          " target leaves for validating, triaging, matching, judging, every output file and the report;"
          " own_work_s: audit_s - stack_s, what they take now)")


def print_sweep(pairs: list[Pair], title: str) -> None:
    print(title)
    print(f"{'format':<8} {'episodes':>11} {'floor_s':>8} {'audit_s':>8} {'floor_s/M':>10} {'audit_s/M':>10} "
          f"{'ratio':>6} {'audit_MB':>9} {'audit_cpu/M':>12}")
    for p in sorted(pairs, key=lambda p: (p.fmt, p.episodes)):
        per = 1e6 / p.episodes
        print(f"{p.fmt:<8} {p.episodes:>11,} {p.floor.seconds:>8.2f} {p.audit.seconds:>8.2f} "
              f"{p.floor.seconds * per:>10.2f} {p.audit.seconds * per:>10.2f} {p.ratio:>6.2f} {p.audit.rss_mb:>9,.0f} "
              f"{p.audit.cpu * per:>12.2f}")


def print_peers(rows: list[tuple[str, int, Measurement, Measurement, dict | None]],
                reference: dict[int, dict]) -> None:
    """Each peer beside nice-audit at the same size, and per million episodes against nice-audit's
    per-million cost at the largest size (where its fixed costs weigh least)."""
    largest = max(reference)
    audit_per_m = next(a.seconds for _, n, _, a, _ in rows if n == largest) * 1e6 / largest
    print("4. Issue 15 point 5: against what a user would write (the same hes CSV)")
    print(f"{'tool':<32} {'episodes':>11} {'seconds':>8} {'cpu_s':>7} {'s/M':>8} {'peak_MB':>8} {'x same N':>9} "
          f"{'x per M':>8}  findings")
    for name, episodes, run, audit, counts in rows:
        per_m = run.seconds * 1e6 / episodes
        agree = ""
        if counts is not None:
            expected = {rule: reference[episodes]["by_rule"].get(rule, 0) for rule in GENERIC_RULES}
            agree = ("generic rules: the same counts as nice-audit" if counts == expected
                     else f"DIFFER from nice-audit: {counts} vs {expected}")
        print(f"{name:<32} {episodes:>11,} {run.seconds:>8.2f} {run.cpu:>7.2f} {per_m:>8.1f} {run.rss_mb:>8,.0f} "
              f"{run.seconds / audit.seconds:>9.2f} {per_m / audit_per_m:>8.2f}  {agree}")
    print(f"(x same N: seconds / nice-audit's at that size; x per M: s/M / nice-audit's s/M at {largest:,}. "
          "The peers check only the generic rules: no code sets, dates, row validation, outputs or report)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", default="100000,1000000",
                        help="comma-separated sizes of the hes mix (default 100000,1000000)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated: csv,parquet")
    parser.add_argument("--mixes", default="padded,spinal,quoted,typed,windows,gzip",
                        help="extra mixes: padded,spinal,quoted,typed,windows,gzip (or none)")
    parser.add_argument("--padded-episodes", type=int, default=1_000_000, help="size of the padded mix (default 1M)")
    parser.add_argument("--spinal-episodes", type=int, default=200_000,
                        help="size of the targeted spinal mix (default 200,000, as in the issue)")
    parser.add_argument("--quoted-episodes", type=int, default=1_000_000,
                        help="size of the quoted mix (default 1M)")
    parser.add_argument("--typed-episodes", type=int, default=1_000_000,
                        help="size of the typed mix (default 1M)")
    parser.add_argument("--windows-episodes", type=int, default=1_000_000,
                        help="size of the windows mix (default 1M)")
    parser.add_argument("--gzip-episodes", type=int, default=1_000_000,
                        help="size of the gzip mix (default 1M)")
    parser.add_argument("--long-episodes", type=int, default=1_000_000,
                        help="size of the long-layout run (default 1M; 0 to skip)")
    parser.add_argument("--pandas-episodes", type=int, default=20_000,
                        help="size of the pandas row-loop peer (default 20,000; 0 to skip)")
    parser.add_argument("--no-duckdb", action="store_true", help="skip the DuckDB peer")
    parser.add_argument("--workdir", type=Path, default=ROOT / "out" / "bench",
                        help="where inputs are cached and audits write (default out/bench/)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--repeat", type=int, default=3, help="best of K runs (default 3)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the audit outputs in WORKDIR/audit-MIX-FORMAT-nN (deleted by default)")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s.replace("_", "")) for s in args.episodes.split(",") if s.strip()]
    except ValueError:
        parser.error("--episodes takes a comma-separated list of numbers")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    mixes = [m.strip() for m in args.mixes.split(",") if m.strip() and m.strip() != "none"]
    if not formats or any(f not in FORMATS for f in formats):
        parser.error(f"--formats takes a comma-separated list of {', '.join(FORMATS)}")
    if any(m not in [*MIXES, *ONE_FORMAT] or m == "hes" for m in mixes):
        parser.error("--mixes takes a comma-separated list of padded, spinal, quoted, typed, windows, gzip "
                     "(or none)")
    if not sizes or min(sizes) < 1 or args.repeat < 1:
        parser.error("--episodes and --repeat must be at least 1")
    if not NICE_AUDIT.exists():
        sys.stderr.write(f"bench: {NICE_AUDIT} not found (pip install -e . into this Python's venv)\n")
        return 1
    args.workdir = args.workdir.resolve()
    began, load_before = time.perf_counter(), os.getloadavg()[0]

    main_pairs = [floor_and_audit("hes", fmt, n, input_for("hes", n, fmt, args.seed, args.workdir), args)
                  for n in sizes for fmt in formats]
    mix_size = {"padded": args.padded_episodes, "spinal": args.spinal_episodes, "quoted": args.quoted_episodes,
                "typed": args.typed_episodes, "windows": args.windows_episodes, "gzip": args.gzip_episodes}
    mix_pairs = [floor_and_audit(mix, fmt, mix_size[mix], input_for(mix, mix_size[mix], fmt, args.seed, args.workdir),
                                 args)
                 for mix in mixes for fmt in formats if ONE_FORMAT.get(mix, fmt) == fmt]
    long_pairs = []
    if args.long_episodes:
        path = input_for("hes", args.long_episodes, "long", args.seed, args.workdir)
        long_pairs.append(floor_and_audit("hes", "long", args.long_episodes, path, args))
        long_pairs[-1].fmt = "long"

    # Peers: the same hes CSV as the audits above (DuckDB at each size; pandas at its own small size).
    reference = {p.episodes: p.summary for p in main_pairs if p.fmt == "csv"}
    audit_at = {p.episodes: p.audit for p in main_pairs if p.fmt == "csv"}
    peers = []
    if args.pandas_episodes and args.pandas_episodes not in reference:
        n = args.pandas_episodes
        pair = floor_and_audit("hes", "csv", n, input_for("hes", n, "csv", args.seed, args.workdir), args)
        reference[n], audit_at[n] = pair.summary, pair.audit
    for n in sorted(reference):
        path = input_for("hes", n, "csv", args.seed, args.workdir)
        peers.append(("nice-audit run, every rule", n, audit_at[n], audit_at[n], None))
        if not args.no_duckdb and n in sizes:
            print(f"Measuring DuckDB at {n:,} episodes ...", flush=True)
            run = best_of([sys.executable, str(PEERS), "duckdb", str(path)], args.repeat, args.workdir, "DuckDB peer")
            print(f"  {run.seconds:.2f} s", flush=True)
            peers.append(("DuckDB SQL, generic rules", n, run, audit_at[n], json.loads(run.stdout)))
        if n == args.pandas_episodes:
            print(f"Measuring the pandas row loop at {n:,} episodes ...", flush=True)
            run = best_of([sys.executable, str(PEERS), "pandas", str(path)], args.repeat, args.workdir, "pandas peer")
            print(f"  {run.seconds:.2f} s", flush=True)
            peers.append(("pandas row loop, generic rules", n, run, audit_at[n], json.loads(run.stdout)))
    print("Measuring fixed costs ...", flush=True)
    fixed = fixed_costs(args.workdir, max(5, args.repeat))

    ram = _total_ram_gb()
    print()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{f'{ram:.1f} GiB RAM' if ram else 'RAM unknown'}, {platform.system()} {platform.release()}")
    print(f"python {platform.python_version()}, polars {pl.__version__}, "
          f"POLARS_MAX_THREADS={os.environ.get('POLARS_MAX_THREADS', 'unset')}")
    print(f"1-minute load average: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after "
          f"(other work on the machine inflates the figures; the ratios less than the seconds)")
    print(f"each figure: its own process, best of {args.repeat} (peak RSS: the highest of them); "
          f"floor = polars.read_csv(infer_schema=False) or read_parquet of the whole file; "
          f"audit = nice-audit run --quiet (every output and report.html); MB = 2**20 bytes")
    print()
    print_targets(main_pairs + mix_pairs)
    print()
    print_budget(main_pairs + mix_pairs)
    print()
    print_sweep(main_pairs, "2. Issue 15 point 4: seconds per million episodes (hes mix; falling = fixed costs, "
                            "rising = super-linear)")
    print()
    if long_pairs:
        print_sweep(long_pairs, "3. Issue 15 point 4: the long layout (one row per procedure; episodes, not rows, "
                                "per million), against polars reading it")
        print()
    print("What each audit found (summary.json)")
    for pair in main_pairs + mix_pairs + long_pairs:
        print(_audit_line(pair))
    print()
    if peers:
        print_peers(peers, reference)
        print()
    print("5. Issue 15 point 3: fixed costs (best of 5 wall times)")
    for name, run, target in fixed:
        print(f"{name:<36} {_against(run.seconds, target, 8, 3)}")
    print()
    for pair in main_pairs + mix_pairs + long_pairs:
        print(f"input {pair.mix:<7} {pair.fmt:<8} {pair.path} ({pair.path.stat().st_size / 1e6:,.1f} MB)")
    print(f"benchmark wall time {time.perf_counter() - began:,.0f} s")
    return 0


def _total_ram_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return None


if __name__ == "__main__":
    sys.exit(main())
