"""The `nice-audit` command's entry point: `--version` answered before the command line is built.

Schedulers and health checks call `nice-audit --version` often; building the typer app costs more
than the rest of Python's start (0.12 of 0.2 s on the standard machine, issue 15). Everything
else, `--version` among other options included, goes to `audit.cli`, which prints the same line.
"""

import gc
import os
import sys

# numpy, which pandera imports, loads OpenBLAS, whose pool of one thread per core spins waiting
# for matrix work that nice-audit never gives it: about 0.1 s of CPU a run, on the two cores
# polars needs (docs/performance.md, session 26). Set before anything imports numpy; a value the
# user set wins.
SINGLE_THREADED_BLAS = {"OPENBLAS_NUM_THREADS": "1"}
# Python's cycle collector runs after every 700 net allocations. Nearly all of a run's Python
# objects are made by its imports (polars, pandera, pydantic: some 700 modules), and it walks them
# again as they age through its generations; the data lives in polars' memory, which it never
# sees. By default 180 collections, 55-85 ms a run; every 20,000 allocations, 7 collections and
# 30 ms (docs/performance.md, session 26). Cycles are still collected, a little later.
COLLECT_EVERY = 20_000


def prepare_process() -> None:
    """What the command sets before it imports anything heavy."""
    for name, value in SINGLE_THREADED_BLAS.items():
        os.environ.setdefault(name, value)
    gc.set_threshold(COLLECT_EVERY, *gc.get_threshold()[1:])


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from audit import __version__

        print(f"nice-audit {__version__}")
        return
    prepare_process()
    from audit.cli import main as command_line

    command_line()
