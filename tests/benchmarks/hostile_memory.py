"""Peak memory of a run on each hostile input of issue 12 point 5. Prints figures; asserts nothing.

    python tests/benchmarks/hostile_memory.py [--workdir DIR] [--bomb-gb 10] [--field-mb 2048]

Cases, each generated into --workdir and audited by a child process of its own (so its peak RSS,
from wait4's rusage, is its own):

- gzip bomb: a small .csv.gz expanding to --bomb-gb gigabytes of one line;
- long field: one row whose field holds --field-mb megabytes;
- wide header: 100,000 columns;
- a 1M-row export with --max-memory 300M, to show the ceiling stopping the run.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

MB = 1 << 20


def gzip_bomb(path: Path, gigabytes: float) -> None:
    block = b"x" * (16 * MB)
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(b"EPIKEY,OPERTN_01\n1,")
        for _ in range(int(gigabytes * 1024 / 16)):
            out.write(block)
        out.write(b"\n")


def long_field(path: Path, megabytes: int) -> None:
    block = "y" * MB
    with open(path, "w") as out:
        out.write("EPIKEY,CONSULT,OPERTN_01\n1,C1,V522\n2,")
        for _ in range(megabytes):
            out.write(block)
        out.write(",W371\n3,C3,W371\n")


def wide_header(path: Path, columns: int = 100_000) -> None:
    names = ["EPIKEY", "OPERTN_01"] + [f"X{n}" for n in range(columns)]
    path.write_text(",".join(names) + "\n1,V522" + "," * columns + "\n")


def measure(label: str, args: list[str]) -> None:
    started = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    stderr = child.stderr.read().strip().splitlines()
    code = os.waitstatus_to_exitcode(status)
    said = stderr[0] if stderr else ""
    print(f"{label:<34} exit {code}  {seconds:7.1f} s  peak RSS {usage.ru_maxrss / 1024:8,.0f} MB  {said[:110]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("out/hostile-memory"))
    parser.add_argument("--bomb-gb", type=float, default=10.0)
    parser.add_argument("--field-mb", type=int, default=2048)
    parser.add_argument("--episodes", type=int, default=1_000_000, help="rows of the export run under --max-memory")
    options = parser.parse_args(argv)
    work = options.workdir
    work.mkdir(parents=True, exist_ok=True)
    audit = [sys.executable, "-m", "audit", "run", "--quiet", "--as-of", "2026-11-21"]
    cases = {
        "bomb.csv.gz": (lambda p: gzip_bomb(p, options.bomb_gb), f"gzip bomb ({options.bomb_gb:g} GB expanded)"),
        "long_field.csv": (lambda p: long_field(p, options.field_mb), f"one field of {options.field_mb:,} MB"),
        "wide_header.csv": (wide_header, "100,000-column header"),
    }
    for name, (make, label) in cases.items():
        path = work / name
        if not path.exists():
            make(path)
        size = path.stat().st_size / MB
        measure(f"{label} [{size:,.0f} MB file]", audit + [str(path), "--out", str(work / f"out-{name}")])
    from tests.benchmarks.generate import generate_hes

    export = work / f"hes-{options.episodes}.csv"
    if not export.exists():
        generate_hes(export, options.episodes)
    measure(f"{options.episodes:,} rows, no ceiling", audit + [str(export), "--out", str(work / "out-plain")])
    measure(f"{options.episodes:,} rows, --max-memory 300M",
            audit + [str(export), "--out", str(work / "out-capped"), "--max-memory", "300M"])
    for name in ("out-plain", "out-capped", *(f"out-{n}" for n in cases)):
        shutil.rmtree(work / name, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
