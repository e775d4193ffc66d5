"""Display text: how numbers, percentages and dates read on the page."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

try:  # coding teams read times in UK local time (GMT in winter, BST in summer)
    UK = ZoneInfo("Europe/London")
except ZoneInfoNotFoundError:  # no time-zone database on this machine: times stay as recorded
    UK = None


def number(n: int) -> str:
    return f"{n:,}"


def percent(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "–"


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{number(n)} {one if n == 1 else (many or one + 's')}"


def long_date(value: date) -> str:
    return f"{value.day} {value.strftime('%B %Y')}"


def short_date(value: date) -> str:
    return f"{value.day} {value.strftime('%b %Y')}"


def long_datetime(value: datetime) -> str:
    """"21 November 2026, 02:00 GMT": UK local time with its zone, when the time carries an offset."""
    if value.utcoffset() is not None and UK is not None:
        value = value.astimezone(UK)
        return f"{long_date(value)}, {value.strftime('%H:%M')} {value.strftime('%Z')}"
    offset = value.utcoffset()
    zone = "UTC" if offset is not None and not offset else value.strftime("%z") or "local time"
    return f"{long_date(value)}, {value.strftime('%H:%M')} {zone}"


def parse_datetime(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None


def parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        return None
