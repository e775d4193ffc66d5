"""The stages after the files' read run on polars' in-memory engine (audit.in_memory), the read
on its default (streaming), and neither a run nor a report leaves the setting changed."""

import polars as pl

from audit import canonical, match, outputs
from reports import render
from tests.conftest import EXAMPLES, run_cli


def _engine() -> str | None:
    """The engine `collect()` uses where none is named: None is polars' own choice."""
    return pl.Config.state()["POLARS_ENGINE_AFFINITY"]


def _noting(monkeypatch, module, name: str, seen: dict) -> None:
    real = getattr(module, name)

    def noted(*args, **kwargs):
        seen[name] = _engine()
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, noted)


def test_the_small_frame_stages_run_in_memory_and_the_setting_is_put_back(tmp_path, monkeypatch):
    seen = {}
    for module, name in ((canonical, "build"), (match, "match_guidance"), (outputs, "write"),
                         (render, "build_page")):
        _noting(monkeypatch, module, name, seen)
    result = run_cli("run", str(EXAMPLES / "hes_episodes.csv"), "--out", str(tmp_path / "out"), "--quiet")
    assert result.exit_code == 0, result.stderr
    assert seen == {"build": None, "match_guidance": "in-memory", "write": "in-memory", "build_page": "in-memory"}
    assert _engine() is None

    seen.clear()
    result = run_cli("report", str(tmp_path / "out"))
    assert result.exit_code == 0, result.stderr
    assert seen == {"build_page": "in-memory"} and _engine() is None
