"""pandera's polars API, for every schema and check in nice-audit: `from schemas.engine import pa`.

pandera's top-level package imports pandas, and its own pandas engine, whenever pandas is
installed (pandera/__init__.py), although a polars schema uses neither: 0.7-0.8 s of every run
on a machine with pandas (any install with the spark or bench extra), a tenth of a million-episode
audit. pandera supports installs without pandas (it catches exactly that ImportError), so while
pandera is first imported, and looks for its pandas check backends, pandas is made to look
absent. Only that is affected: pandas itself imports normally afterwards (pyspark needs it), and
if it was imported already, pandera is imported as it is. (pandera could then no longer validate
a pandas frame in this process; nice-audit never asks it to.)
"""

from __future__ import annotations

import importlib.abc
import sys


class _PandasAbsent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "pandas" or name.startswith("pandas."):
            # pandera ignores exactly this message (and no other ImportError).
            raise ModuleNotFoundError("No module named 'pandas'", name="pandas")
        return None


def _import_polars_api():
    if "pandera" in sys.modules or "pandas" in sys.modules:
        import pandera.polars

        return pandera.polars
    absent = _PandasAbsent()
    sys.meta_path.insert(0, absent)
    try:
        import pandera.polars

        # pandera's first validation looks once for its pandas check backends (and caches what it
        # found): looked for now, they are found absent, and no validation imports pandas later.
        from pandera.backends import register_checks

        getattr(register_checks, "_load_get_backend_types_from_mro", lambda: None)()
    finally:
        sys.meta_path.remove(absent)
    return pandera.polars


pa = _import_polars_api()
