"""The `nice-audit` command's entry point: `--version` answered before the command line is built.

Schedulers and health checks call `nice-audit --version` often; building the typer app costs more
than the rest of Python's start (0.12 of 0.2 s on the standard machine, issue 15). Everything
else, `--version` among other options included, goes to `audit.cli`, which prints the same line.
Around it the process is prepared for a run (`prepare_process`) and left without the
interpreter's teardown (`leave`): together 0.2-0.25 s of a small run's 1.0 s (session 26).
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

    try:
        command_line()
    except SystemExit as stop:  # (typer ends every command so, 0 included)
        leave(stop.code)
    leave(0)


def leave(code: int | str | None) -> None:  # (never returns; typing.NoReturn would import typing for --version)
    """End the process with `code` as `SystemExit(code)` would, without the interpreter's
    teardown: finalising the objects of some 700 imported modules took 0.10-0.12 s of every run,
    a tenth of a small one (docs/performance.md, session 26), after every output had been
    written and closed. What an exit must still do is done first: the `atexit` functions
    (logging's flush, the temporary copies' removal, any library's) and the flush of stdout and
    stderr. While a thread that Python would wait for is still running, the interpreter's own
    exit is taken instead."""
    import atexit
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        raise SystemExit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # SystemExit's own rule: a message is printed, and the exit is 1
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()  # (the interpreter's teardown would run them; os._exit does not)
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing left to tell it
            pass
    os._exit(status)
