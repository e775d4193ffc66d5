"""Where one audit's wall time (and CPU time) goes, stage by stage, from the pipeline's own
progress callback.

    python tests/benchmarks/stages.py EXPORT [EXPORT ...] [--out DIR]

For docs/performance.md: one run in this process (no profiler: pyinstrument inflates the
Python-heavy stages, jinja2 rendering above all). The first line is the imports the `run`
command pays before its first stage (polars, pandera and the pipeline's modules; typer and the
interpreter's own start are not in it). Stages run inside `audit_to_directory` exactly as
`nice-audit run` runs them, so the sum is the run's wall time less the interpreter start. The
report is rendered in a thread while the output files are still being written (audit.outputs),
so "Writing outputs" ends when the render starts, and the files written after that count in the
report's line.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

began, began_cpu = time.perf_counter(), time.process_time()
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from audit.entry import prepare_process  # noqa: E402

prepare_process()  # as the command prepares its process, before numpy is imported
from audit.catalogue import load_catalogue  # noqa: E402
from audit.config import load_settings  # noqa: E402
from audit.pipeline import audit_to_directory  # noqa: E402

IMPORTED, IMPORTED_CPU = time.perf_counter() - began, time.process_time() - began_cpu


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch) / "out"
        settings, _ = load_settings(None, {"inputs": args.inputs, "out": out})
        marks: list[tuple[str, float, float, float]] = [
            ("imports (polars, pandera, the pipeline)", IMPORTED, IMPORTED_CPU, _peak_mb())]
        last = [time.perf_counter(), time.process_time()]
        current = ["catalogue and setup"]

        def progress(stage: str) -> None:
            now, cpu = time.perf_counter(), time.process_time()
            marks.append((current[0], now - last[0], cpu - last[1], _peak_mb()))
            current[0], last[:] = stage, [now, cpu]

        catalogue = load_catalogue()
        audit_to_directory(settings, catalogue, datetime.now(timezone.utc), progress)
        marks.append((current[0] + " (and publishing)", time.perf_counter() - last[0], time.process_time() - last[1],
                      _peak_mb()))
    total, total_cpu = sum(mark[1] for mark in marks), sum(mark[2] for mark in marks)
    # peak MB: the process's peak resident memory when the stage ended (it never falls), so the
    # stage whose figure jumps is the one that needed the memory.
    # CPU: user and system seconds of every thread of the process in the stage (polars' pool, the
    # workbook's and the report's threads included): above the wall time where cores overlap.
    print(f"{'stage':<48} {'seconds':>8} {'share':>6} {'CPU s':>6} {'peak MB':>8}")
    for stage, seconds, cpu, peak in marks:
        print(f"{stage:<48} {seconds:>8.2f} {seconds / total:>6.0%} {cpu:>6.2f} {peak:>8,.0f}")
    print(f"{'total (after the interpreter start)':<48} {total:>8.2f} {'':>6} {total_cpu:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
