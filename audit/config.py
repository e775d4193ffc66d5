"""The configuration file, `nice-audit.toml`, for unattended runs.

Found in the working directory, or given with `--config`. Command-line options override it.
Relative paths in the file are relative to the file's own folder, so a crontab can run the tool
from anywhere.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from datetime import date, datetime
from pathlib import Path

from audit.errors import UserError

CONFIG_NAME = "nice-audit.toml"
FAIL_ON = ("never", "warning", "superseded", "error")


@dataclass(frozen=True)
class Settings:
    """Every setting a run takes, with its default."""

    inputs: tuple[Path, ...] = ()
    out: Path | None = None
    layout: str | None = None
    mapping: Path | None = None
    encoding: str = "auto"
    catalogue: tuple[Path, ...] = ()
    history: Path | None = None
    opcs_codes: Path | None = None  # the TRUD OPCS-4 code list (CODE<TAB>TITLE), if the user has it
    scope: str | None = None  # which earlier runs are compared with; default: the runs into the same --out
    as_of: date | None = None
    worksheet_cap: int = 200
    trend_runs: int = 10
    history_keep: int = 400  # runs kept per scope: over a year of nightly runs
    archive: Path | None = None  # dated copies of the report (reports.archive); default: archive/ beside out
    fail_on: str = "never"
    max_drop: float = 0.2  # alert (exit 4) when episodes audited fall by more than this fraction
    min_rows: int = 0  # alert (exit 4) when the inputs hold fewer rows than this
    max_memory: str | None = None  # e.g. "8G": past it the run stops, naming the file (audit.memory)
    # --engine spark (audit.engines.spark): inputs may also be tables or a JDBC source.
    engine: str = "local"
    spark_conf: tuple[str, ...] = ()  # KEY=VALUE, for the session nice-audit builds (jdbc.* go to JDBC)
    tables: tuple[str, ...] = ()  # CATALOG.SCHEMA.NAME
    jdbc_url: str | None = None
    jdbc_table: str | None = None
    partitions: int | None = None  # default: one per 500k input rows
    runs_keep: int = 7  # run folders kept under out/_runs/ (each holds episode-level data): a week of nights

    def effective_scope(self) -> str:
        """By default the runs that publish into one --out folder are one series: a nightly job
        keeps its --out while its export lands in a new dated file or folder each night, so the
        input paths cannot name the series."""
        if self.scope:
            return self.scope
        return f"out:{os.path.abspath(self.out)}" if self.out else "inputs:" + " ".join(
            sorted(os.path.abspath(p) for p in self.inputs))


_PATHS = {"out", "mapping", "history", "opcs_codes", "archive"}
_PATH_LISTS = {"inputs", "catalogue"}


def _typed(key: str, value, base: Path, source: str):
    def bad(expected: str):
        return UserError(f"{source}: {key}: must be {expected}")

    if key in _PATH_LISTS:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a list of paths")
        return tuple(base / v for v in value)
    if key in _PATHS:
        if not isinstance(value, str):
            raise bad("a path")
        return base / value
    if key == "as_of":
        if isinstance(value, datetime):  # TOML `as_of = 2026-01-01T10:00:00`
            raise bad("a date (yyyy-mm-dd), not a date and time")
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise bad("a date (yyyy-mm-dd)") from None
    if key in ("worksheet_cap", "trend_runs", "history_keep"):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise bad("a whole number of at least 1")
        return value
    if key == "fail_on" and value not in FAIL_ON:
        raise bad(f"one of {', '.join(FAIL_ON)}")
    if key == "max_drop":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise bad("a fraction from 0 to 1 (0.2 means 20%)")
        return float(value)
    if key == "min_rows":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("a whole number of at least 0")
        return value
    if key in _SPARK_KEYS:
        return _spark_setting(key, value, bad)
    choices = _choices().get(key)
    if choices and value not in choices:
        raise bad(f"one of {', '.join(choices)}")
    if not isinstance(value, str):
        raise bad("text")
    return value


def _choices() -> dict[str, tuple[str, ...]]:
    """Settings with a fixed set of values (imported late: config is loaded before the stages)."""
    from audit.layouts import ENCODINGS, LAYOUTS

    return {"layout": LAYOUTS, "encoding": ENCODINGS}


_SPARK_KEYS = {"engine", "spark_conf", "tables", "partitions", "runs_keep"}
ENGINES = ("local", "spark")


def _spark_setting(key: str, value, bad):
    if key == "engine":
        if value not in ENGINES:
            raise bad(f"one of {', '.join(ENGINES)}")
        return value
    if key == "spark_conf":  # a TOML table: spark_conf = { "spark.executor.memory" = "8g" }
        if not isinstance(value, dict) or not all(isinstance(v, (str, int, float, bool)) for v in value.values()):
            raise bad("a table of settings (KEY = VALUE)")
        return tuple(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in value.items())
    if key == "tables":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a list of table names")
        return tuple(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:  # partitions, runs_keep
        raise bad("a whole number of at least 1")
    return value


def load_settings(config: Path | None, overrides: dict) -> tuple[Settings, Path | None]:
    """Defaults, then the config file, then the command line (None means 'not given')."""
    path = config if config is not None else (Path.cwd() / CONFIG_NAME)
    values: dict = {}
    used = None
    if config is not None or path.is_file():
        if path.is_dir():
            raise UserError(f"{path}: is a folder, not a config file")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{path}: config file not found") from None
        except OSError as error:
            raise UserError(f"{path}: cannot read the config file ({error.strerror})") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise UserError(f"{path}: not valid TOML ({error})") from None
        except RecursionError:  # tables or arrays nested thousands deep
            raise UserError(f"{path}: not valid TOML (nested too deeply)") from None
        known = {f.name for f in fields(Settings)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"{path}: unknown setting(s): {', '.join(unknown)}")
        values = {k: _typed(k, v, path.parent, str(path)) for k, v in data.items()}
        used = path
    for key, value in overrides.items():
        if value is None or value == [] or value == ():
            continue
        if key == "fail_on" and value not in FAIL_ON:
            raise UserError(f"--fail-on must be one of {', '.join(FAIL_ON)}")
        if key in ("worksheet_cap", "trend_runs", "history_keep", "partitions", "runs_keep") and value < 1:
            raise UserError(f"--{key.replace('_', '-')} must be at least 1")
        if key == "max_drop" and not 0 <= value <= 1:
            raise UserError("--max-drop must be a fraction from 0 to 1 (0.2 means 20%)")
        if key == "min_rows" and value < 0:
            raise UserError("--min-rows must be at least 0")
        if key == "engine" and value not in ENGINES:
            raise UserError(f"--engine must be one of {', '.join(ENGINES)}")
        if key == "spark_conf" and not all("=" in pair for pair in value):
            raise UserError("--spark-conf takes KEY=VALUE")
        values[key] = tuple(value) if isinstance(value, list) else value
    return Settings(**values), used


def describe(settings: Settings, source: Path | None) -> str:
    """The effective configuration, as TOML a user could paste into nice-audit.toml."""
    lines = [f"# effective configuration ({f'from {source}' if source else 'no config file'}, plus options)"]
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if value is None or value == ():
            lines.append(f"# {f.name} = (not set)")
        elif isinstance(value, tuple):
            lines.append(f"{f.name} = [{', '.join(repr(str(v)) for v in value)}]".replace("'", '"'))
        elif isinstance(value, (int, float)):
            lines.append(f"{f.name} = {value}")
        else:
            lines.append(f'{f.name} = "{value}"')
    return "\n".join(lines)
