"""A ceiling on the run's memory, so that one hostile input cannot exhaust the machine.

A nightly run shares its machine. polars aborts the whole process when an allocation fails, with
no chance to say which file was to blame, so instead a watchdog thread reads the process's
resident memory every `POLL_SECONDS` and, past the ceiling, ends the run itself: one line naming
the file being read, exit 2 (the input is the problem, not the tool). Linux only (/proc); elsewhere
the ceiling is not enforced.

The default ceiling is three quarters of the machine's memory; `--max-memory` (or `max_memory` in
nice-audit.toml) sets another, as `8G`, `500M` or a number of megabytes.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from audit.errors import EXIT_USER_ERROR, UserError

POLL_SECONDS = 0.01  # reading /proc/self/statm costs microseconds
DEFAULT_SHARE = 0.75
_STATM = Path("/proc/self/statm")

reading: str | None = None  # the input file being read, set by the stages that read


def parse_size(text: str | None) -> int | None:
    """`8G`, `500M`, `2048` (megabytes) -> bytes; None -> None."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*", str(text).upper())
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"--max-memory {text!r}: give a size such as 8G, 500M or a number of megabytes")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "": 1 << 20}[match.group(2)]
    return int(float(match.group(1)) * scale)


def default_limit() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * DEFAULT_SHARE)
    except (ValueError, OSError, AttributeError):
        return None


def resident_bytes() -> int | None:
    try:
        return int(_STATM.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _exceeded(limit: int) -> None:
    from audit.load import remove_temporary  # the copies made so far: os._exit skips atexit

    remove_temporary()
    what = f"{reading}: reading it needs" if reading else "the run needs"
    sys.stderr.write(f"nice-audit: error: {what} more memory than the limit "
                     f"({limit / (1 << 20):,.0f} MB; see --max-memory)\n")
    sys.stderr.flush()
    os._exit(EXIT_USER_ERROR)


@contextmanager
def ceiling(limit: int | None):
    """Enforce `limit` bytes of resident memory (None: the default) while the block runs."""
    limit = limit or default_limit()
    if limit is None or resident_bytes() is None:
        yield
        return
    stop = threading.Event()

    def watch():
        while not stop.wait(POLL_SECONDS):
            rss = resident_bytes()
            if rss is not None and rss > limit:
                _exceeded(limit)

    thread = threading.Thread(target=watch, name="memory-ceiling", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
