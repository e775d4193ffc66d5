"""schemas.canonical: the frames' order, which the stages after loading rely on, is checked, and
with it that each episode (and each of its positions) is listed once."""

from datetime import date

import polars as pl
import pytest

from schemas import polars_schema
from schemas.canonical import EPISODES, PROCEDURES
from schemas.engine import pa


def procedures(*keys: tuple[str, int]) -> pl.DataFrame:
    schema = polars_schema(PROCEDURES)
    rows = [{"episode_id": e, "position": p, "code": "W371", "code_raw": "W371", "code_kind": "procedure",
             "procedure_date": date(2024, 1, 1), "source_file": "a.csv", "source_row": n}
            for n, (e, p) in enumerate(keys, 1)]
    return pl.DataFrame(rows, schema=schema)


def episodes(*ids: str) -> pl.DataFrame:
    rows = [{"episode_id": e, "source_file": "a.csv", "source_row": n} for n, e in enumerate(ids, 1)]
    return pl.DataFrame(rows, schema=polars_schema(EPISODES))


@pytest.mark.parametrize("keys, valid", [
    ([("A", 1), ("A", 2), ("B", 1), ("B10", 1), ("B2", 3)], True),
    ([], True),
    ([("A", 1), ("A", 1)], False),  # a position twice
    ([("A", 2), ("A", 1)], False),  # positions out of order
    ([("B", 1), ("A", 1)], False),  # episodes out of order
    ([("A", 1), ("B", 1), ("A", 2)], False),  # an episode's rows apart
])
def test_procedures_in_episode_order_each_position_once(keys, valid):
    frame = procedures(*keys)
    if valid:
        assert PROCEDURES.validate(frame).equals(frame)
    else:
        with pytest.raises(pa.errors.SchemaError, match="in-episode-order"):
            PROCEDURES.validate(frame)


@pytest.mark.parametrize("ids, valid", [
    (["A", "B", "B1", "C"], True),
    (["A", "A"], False),
    (["B", "A"], False),
])
def test_episodes_in_id_order_each_once(ids, valid):
    frame = episodes(*ids)
    if valid:
        assert EPISODES.validate(frame).equals(frame)
    else:
        with pytest.raises(pa.errors.SchemaError, match="in-id-order"):
            EPISODES.validate(frame)
