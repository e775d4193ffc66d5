"""Stage 8: put a finished run in place of --out, touching nothing the tool did not write.

Beside `--out DIR`, in DIR's parent folder, a run uses only these names:

    DIR                    the published outputs: a real folder holding MARKER (its run id)
    .DIR.lock              serialises the runs that publish into DIR
    .DIR.staging-RUN       a run's outputs while it writes them; the run holds MARKER locked
    .DIR.old-RUN           the previous outputs, kept only while RUN publishes
    .DIR.discard-RUN       a folder being deleted

Publishing, under the lock, is four steps (`STEPS`): rename DIR to .DIR.old-RUN ("retired"),
rename the staging folder to DIR ("swapped"), record the run in the history in one SQLite
transaction ("recorded"), delete .DIR.old-RUN ("cleaned"). A run killed between any two of them
is repaired by the next run before it audits anything (`recover`, under the same lock), so DIR
always ends up holding the newest run the history records, and no staging or old folder, with
its episode-level data, outlives the next start.

Only a folder that is empty or holds MARKER is ever replaced; `check_out` refuses everything
else before the audit starts.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable
from contextlib import closing, contextmanager
from pathlib import Path

from audit.errors import UserError

MARKER = ".nice-audit-run"
STEPS = ("staged", "locked", "retired", "swapped", "recorded", "cleaned")


def checkpoint(step: str) -> None:
    """Called after each publish step; tests replace it to kill the process at a named step."""


def absolute(out: Path) -> Path:
    """`out` made absolute without following a symlink at its last component."""
    return Path(os.path.abspath(out))


def _sibling(out: Path, kind: str, run_id: str = "") -> Path:
    return out.with_name(f".{out.name}.{kind}{'-' + run_id if run_id else ''}")


def _marker(folder: Path) -> dict | None:
    """The run a folder was written by, or None when the tool did not write it."""
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_out(out: Path, protected: Iterable[tuple[str, Path]], run_id: str) -> Path:
    """Refuse an --out that is not safe to replace; returns it absolute.

    `protected`: (what, path) pairs — inputs, config, mapping, catalogues, history — that must not
    be inside --out, since publishing replaces --out whole."""
    given = Path(out)
    if given.name in ("", ".", "..") or str(given) in (".", "..", "/"):
        raise UserError(f"--out {given}: give a folder of its own for the outputs, not '{given}'")
    out = absolute(given)
    real = out.resolve()
    cwd = Path.cwd().resolve()
    if _inside(cwd, real):
        raise UserError(f"--out {out}: is the working folder or one of its parents; give a folder of its own")
    for what, path in protected:
        if _inside(Path(path).resolve(), real):
            raise UserError(f"--out {out}: contains the {what} {path}; the outputs replace --out whole")
    parent = out.parent
    if not parent.exists():
        raise UserError(f"--out {out}: the folder {parent} does not exist (create it first)")
    if not parent.is_dir():
        raise UserError(f"--out {out}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        problem = "is on a read-only file system" if _read_only(parent) else "is not writable"
        raise UserError(f"--out {out}: the folder {parent} {problem}")
    longest = len(os.fsencode(_sibling(out, "discard", run_id).name))
    if longest > _name_max(parent):
        raise UserError(f"--out {out}: the name is too long for the file system (the tool needs "
                        f"{longest - len(os.fsencode(out.name))} more characters for its work folders)")
    if out.is_symlink():
        raise UserError(f"--out {out}: is a symbolic link; give the folder itself")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file, not a folder")
    if out.is_dir() and _marker(out) is None and any(out.iterdir()):
        raise UserError(f"--out {out}: holds files nice-audit did not write; give an empty or new folder "
                        f"(a folder is replaced only when it is empty or holds the outputs of an earlier run)")
    return out


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


@contextmanager
def lock(out: Path):
    """Serialise the runs that publish into one folder (POSIX advisory lock)."""
    try:
        import fcntl
    except ImportError:  # Windows: runs into one folder must not overlap
        yield
        return
    with open(_sibling(out, "lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _alive(staging: Path) -> bool:
    """Whether the run that owns a staging folder still runs (it holds its marker locked)."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        with open(staging / MARKER, "rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


class Staging:
    """A run's staging folder, marked and held until it is published or dropped."""

    def __init__(self, out: Path, run_id: str, history: Path | None):
        self.out, self.run_id = out, run_id
        self.path = _sibling(out, "staging", run_id)
        self.path.mkdir()
        try:
            (self.path / MARKER).write_text(
                json.dumps({"run_id": run_id, "history": str(absolute(history)) if history else None}) + "\n",
                encoding="utf-8")
            self._handle = open(self.path / MARKER, "rb")
        except BaseException:  # e.g. a full disk: no half-made staging folder stays behind
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        try:
            import fcntl

            fcntl.flock(self._handle, fcntl.LOCK_EX)
        except ImportError:
            pass

    def drop(self) -> None:
        """A failed run: delete what it wrote (nothing of it was published)."""
        self._handle.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def publish(self, record: Callable[[], None] | None = None) -> Path:
        """Replace --out with the staging folder and record the run, as one step under the lock."""
        out = self.out
        checkpoint("staged")
        try:
            with lock(out):
                checkpoint("locked")
                recover(out)
                retired = _sibling(out, "old", self.run_id)
                if out.exists():
                    os.replace(out, retired)
                    checkpoint("retired")
                os.replace(self.path, out)
                checkpoint("swapped")
                if record is not None:
                    try:
                        record()
                    except BaseException:
                        _put_back(out, retired)
                        raise
                checkpoint("recorded")
                shutil.rmtree(retired, ignore_errors=True)
                checkpoint("cleaned")
        finally:
            self._handle.close()
        return out


def _put_back(out: Path, retired: Path) -> None:
    """Undo a swap whose run could not be recorded."""
    discard = _sibling(out, "discard", (_marker(out) or {}).get("run_id", "unknown"))
    os.replace(out, discard)
    if retired.exists():
        os.replace(retired, out)
    shutil.rmtree(discard, ignore_errors=True)


def _recorded(marker: dict) -> bool:
    """Whether the run that wrote a published folder is in the history it was meant for."""
    path = marker.get("history")
    if not path or not Path(path).is_file():
        return True  # no history to agree with (or it was removed): keep the outputs
    try:
        with closing(sqlite3.connect(path, timeout=120)) as conn:
            return conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (marker["run_id"],)).fetchone() is not None
    except sqlite3.Error:
        return True  # cannot tell: never delete outputs on a guess


def recover(out: Path) -> None:
    """Repair what a killed run left beside `out`; call under `lock(out)`."""
    out = absolute(out)
    pattern = f".{glob.escape(out.name)}.*-*"
    siblings = sorted(out.parent.glob(pattern))
    olds = [p for p in siblings if p.name.startswith(f".{out.name}.old-") and p.is_dir()]
    marker = _marker(out) if out.is_dir() else None
    if marker is not None and not _recorded(marker):
        # Killed after the swap, before the history recorded the run: it was never published.
        os.replace(out, _sibling(out, "discard", marker.get("run_id", "unknown")))
    for old in olds:
        if not out.exists():
            os.replace(old, out)  # the previous outputs come back (killed between the renames, or above)
        else:
            shutil.rmtree(old, ignore_errors=True)  # killed after recording, before cleaning up
    for path in sorted(out.parent.glob(pattern)):
        kind = path.name[len(out.name) + 2:].split("-", 1)[0]
        if kind == "discard" or (kind == "staging" and _abandoned(path)):
            shutil.rmtree(path, ignore_errors=True)


def _abandoned(staging: Path) -> bool:
    """A staging folder whose run is gone: its marker is not held, or it has none and is over a
    minute old (killed between making the folder and marking it; a live run marks it at once)."""
    if _marker(staging) is not None:
        return not _alive(staging)
    try:
        return time.time() - staging.stat().st_mtime > 60
    except OSError:
        return False


def with_errno(error: OSError, where: Path) -> OSError:
    """An OSError with its errno and a path. Polars reports a failed write as a bare OSError
    whose text ends "(os error 28)"; the error is rebuilt from that code, naming the folder that
    was being written, so the command line can say what happened (exit 2, not 3)."""
    if error.errno is not None:
        return error
    found = re.search(r"\(os error (\d+)\)", str(error))
    if not found:
        return error
    code = int(found.group(1))
    return OSError(code, os.strerror(code), str(where))
