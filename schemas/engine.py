"""pandera's polars API, for every schema and check in nice-audit: `from schemas.engine import pa`.

pandera's top-level package imports pandas, and its own pandas engine, whenever pandas is
installed (pandera/__init__.py), although a polars schema uses neither: 0.7-0.8 s of every run
on a machine with pandas (any install with the spark or bench extra), a tenth of a million-episode
audit. Likewise its first validation registers the polars checks, which imports its data-synthesis
strategies, which import hypothesis whenever it is installed (any install with the test or bench
extra, and many analysts' environments): 0.1-0.25 s of every run, for a feature nice-audit never
uses. pandera supports installs without either (it catches exactly that ImportError), so while
pandera is first imported, and while it loads those strategies, both are made to look absent.
Only that is affected: pandas and hypothesis themselves import normally afterwards (pyspark needs
pandas, the property tests hypothesis), and a package that was imported already is left as it is.
(pandera could then no longer validate a pandas frame, or synthesise data, in this process;
nice-audit never asks it to.)
"""

from __future__ import annotations

import importlib.abc
import sys

_HIDDEN = ("pandas", "hypothesis")  # optional for pandera, and dear to import


class _Absent(importlib.abc.MetaPathFinder):
    def __init__(self, names: tuple[str, ...]):
        self.names = names

    def find_spec(self, name, path, target=None):
        top = name.partition(".")[0]
        if top in self.names:
            # pandera ignores exactly this error (and no other ImportError).
            raise ModuleNotFoundError(f"No module named {top!r}", name=top)
        return None


def _import_polars_api():
    if "pandera" in sys.modules:
        import pandera.polars

        return pandera.polars
    absent = _Absent(tuple(name for name in _HIDDEN if name not in sys.modules))
    sys.meta_path.insert(0, absent)
    try:
        import pandera.polars

        # pandera's first validation looks once for its pandas check backends (and caches what it
        # found): looked for now, they are found absent, and no validation imports pandas later.
        from pandera.backends import register_checks

        getattr(register_checks, "_load_get_backend_types_from_mro", lambda: None)()
        # Its first validation imports the strategies module (registering the built-in checks):
        # imported now, it finds hypothesis absent, and no validation imports hypothesis later.
        import pandera.strategies.base_strategies  # noqa: F401
    finally:
        sys.meta_path.remove(absent)
    return pandera.polars


pa = _import_polars_api()
