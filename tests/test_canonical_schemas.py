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


@pytest.mark.parametrize("schema, frame, valid", [
    (PROCEDURES, procedures(("A", 1), ("A", 2), ("B", 1), ("B10", 1), ("B2", 3)), True),
    (PROCEDURES, procedures(), True),
    (PROCEDURES, procedures(("A", 1), ("A", 1)), False),  # a position twice
    (PROCEDURES, procedures(("A", 2), ("A", 1)), False),  # positions out of order
    (PROCEDURES, procedures(("B", 1), ("A", 1)), False),  # episodes out of order
    (PROCEDURES, procedures(("A", 1), ("B", 1), ("A", 2)), False),  # an episode's rows apart
    (EPISODES, episodes("A", "B", "B1", "C"), True),
    (EPISODES, episodes("A", "A"), False),
    (EPISODES, episodes("B", "A"), False),
], ids=lambda value: value.name if isinstance(value, pa.DataFrameSchema) else None)
def test_in_order_and_each_once(schema, frame, valid):
    if valid:
        assert schema.validate(frame).equals(frame)
    else:
        with pytest.raises(pa.errors.SchemaError, match="in-episode-order|in-id-order"):
            schema.validate(frame)
