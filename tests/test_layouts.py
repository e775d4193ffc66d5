"""Each input layout reaches the same canonical procedures frame."""

import gzip
from datetime import date

import polars as pl
import pytest

from audit.canonical import build
from audit.layouts import detect_layout, load_mapping
from audit.load import read_exports
from schemas.inputs import REJECTION_REASONS
from tests.conftest import write_csv

HES = """\
EPIKEY,ADMIDATE,EPISTART,EPIEND,PROCODE3,TRETSPEF,OPERTN_01,OPDATE_01,OPERTN_02,OPDATE_02,OPERTN_03,OPDATE_03
100000000001,2012-03-01,2012-03-02,2012-03-05,RTH,108,v52.2,2012-03-03,V55. 1,,Y102 ,03/03/2012
100000000002,01/04/2012,,,RTH,108,-   ,,,,,
"""
EXPECTED = [
    ("100000000001", 1, "V522", "v52.2", "procedure", date(2012, 3, 3)),
    ("100000000001", 2, "V551", "V55. 1", "procedure", None),
    ("100000000001", 3, "Y102", "Y102 ", "procedure", date(2012, 3, 3)),
    ("100000000002", 1, None, "-   ", "no-operation", None),
]


def canonical(paths, **kwargs):
    return build(read_exports(paths, **kwargs))


def key_columns(frame: pl.DataFrame):
    return frame.select("episode_id", "position", "code", "code_raw", pl.col("code_kind").cast(pl.String),
                        "procedure_date").rows()


def test_hes_wide(tmp_path):
    data = canonical([write_csv(tmp_path, "hes.csv", HES)])
    assert key_columns(data.procedures) == EXPECTED
    first = data.procedures.row(0, named=True)
    assert (first["admission_date"], first["episode_start"], first["episode_end"], first["provider"],
            first["specialty"], first["consultant"]) == (date(2012, 3, 1), date(2012, 3, 2), date(2012, 3, 5),
                                                         "RTH", "108", None)
    assert data.episodes["admission_date"].to_list() == [date(2012, 3, 1), date(2012, 4, 1)]


def test_hes_derived_columns_have_no_dates(tmp_path):
    text = "EPIKEY,OPERTN_3_01,OPERTN_4_01,OPERTN_4_02,OPERTN_4_CONCAT\n1,V52,V522,V551,\"V522,V551\"\n"
    data = canonical([write_csv(tmp_path, "derived.csv", text)])
    assert data.files[0].layout == "hes-derived"
    assert data.procedures.select("position", "code", "procedure_date").rows() == [(1, "V522", None), (2, "V551", None)]


def test_long(tmp_path):
    text = """\
    episode_id,position,code,procedure_date,admission_date,episode_start,episode_end,provider,note
    100000000001,2,V55. 1,,2012-03-01,2012-03-02,2012-03-05,RTH,x
    100000000001,1,v52.2,2012-03-03,2012-03-01,2012-03-02,2012-03-05,RTH,y
    100000000001,3.0,Y102 ,03/03/2012,2012-03-01,2012-03-02,2012-03-05,RTH,z
    100000000002,1,-   ,,01/04/2012,,,RTH,
    """
    data = canonical([write_csv(tmp_path, "long.csv", text)])
    assert key_columns(data.procedures) == EXPECTED


def test_mapped(tmp_path):
    text = """\
    Episode,Admitted,Primary_Procedure_Code,Primary_Procedure_Date,Secondary_Procedure_Code_1,Secondary_Procedure_Date_1,Secondary_Procedure_Code_2,Secondary_Procedure_Date_2
    100000000001,2012-03-01,v52.2,2012-03-03,V55. 1,,Y102 ,03/03/2012
    100000000002,01/04/2012,-   ,,,,,
    """
    mapping = write_csv(tmp_path, "map.toml", """\
    episode_id = "Episode"
    admission_date = "Admitted"
    procedure_codes = ["Primary_Procedure_Code", "Secondary_Procedure_Code_*"]
    procedure_dates = ["Primary_Procedure_Date", "Secondary_Procedure_Date_*"]
    """)
    data = canonical([write_csv(tmp_path, "warehouse.csv", text)], mapping=load_mapping(mapping))
    assert key_columns(data.procedures) == EXPECTED
    assert data.files[0].layout == "mapped"


def test_parquet_with_typed_columns(tmp_path):
    path = tmp_path / "episodes.parquet"
    pl.DataFrame({
        "EPIKEY": [100000000001, 100000000002],  # an integer id: read as text
        "ADMIDATE": [date(2012, 3, 1), date(2012, 4, 1)],
        "OPERTN_01": ["V522", "-"],
        "OPDATE_01": [date(2012, 3, 3), None],
    }).write_parquet(path)
    data = canonical([path])
    assert data.procedures.select("episode_id", "code", "procedure_date").rows() == [
        ("100000000001", "V522", date(2012, 3, 3)), ("100000000002", None, None)]


def test_gzip_csv_and_directories(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "a.csv.gz").write_bytes(gzip.compress(HES.encode()))
    (folder / "notes.txt.bak").write_text("ignored")
    data = canonical([folder])
    assert key_columns(data.procedures) == EXPECTED


@pytest.mark.parametrize(
    "header, layout",
    [
        (["EPIKEY", "OPERTN_01", "OPDATE_01"], "hes"),
        (["epikey", "opertn_01"], "hes"),
        (["EPIKEY", "OPERTN_4_01"], "hes-derived"),
        (["episode_id", "position", "code"], "long"),
        ([" Episode_ID ", "POSITION", "Code"], "long"),
        (["Primary_Procedure_Code"], None),
    ],
)
def test_detect_layout(header, layout):
    assert detect_layout(header) == layout


@pytest.mark.parametrize(
    "text, problem",
    [
        ('shape = "wide"\n', "mapping needs 'episode_id'"),
        ('episode_id = "E"\n', "a wide mapping needs 'procedure_codes'"),
        ('episode_id = "E"\nshape = "tall"\n', "'shape' must be"),
        ('episode_id = "E"\nprocedure_codes = ["A"]\ncolour = "red"\n', "unknown mapping key(s): colour"),
        ('episode_id = [\n', "not a valid TOML mapping file"),
    ],
)
def test_bad_mapping_files(tmp_path, text, problem):
    from audit.errors import UserError

    with pytest.raises(UserError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        load_mapping(write_csv(tmp_path, "map.toml", text))


def test_long_rows_that_cannot_be_audited_are_rejected(tmp_path):
    text = """\
    episode_id,position,code
    E1,1,V522
    E1,x,V551
    ,1,W371
    E2,1,
    E3,1,W371
    E3,1,Z943
    E4,0,W371
    """
    data = canonical([write_csv(tmp_path, "long.csv", text)])
    assert data.rejected.select("source_row", "reason").rows() == [
        (2, "position is not a whole number from 1 to 999"),
        (3, "no episode id"),
        (4, "no procedure code in a long-format row"),
        (5, "episode lists the same position twice; all its rows are rejected"),
        (6, "episode lists the same position twice; all its rows are rejected"),
        (7, "position is not a whole number from 1 to 999"),
    ]
    assert data.procedures["episode_id"].to_list() == ["E1"]


@pytest.mark.parametrize("batch_rows", [None, 2])
def test_a_repeated_position_is_found_however_the_file_spreads_the_episode(tmp_path, monkeypatch, batch_rows):
    """Positions are checked batch by batch (a batch holds whole episodes); an episode whose rows
    the file scatters over batches is checked over all of them. E1's rows are far apart."""
    import audit.load

    monkeypatch.setattr(audit.load, "BATCH_ROWS", batch_rows)
    text = "episode_id,position,code\nE1,1,W371\nE2,1,W371\nE3,1,W371\nE4,1,W371\nE1,1.0,Z943\nE5,1,W371\n"
    data = canonical([write_csv(tmp_path, "long.csv", text)])
    assert data.rejected.select("source_row", "reason").rows() == [
        (1, "episode lists the same position twice; all its rows are rejected"),
        (5, "episode lists the same position twice; all its rows are rejected"),
    ]
    assert data.episodes["episode_id"].to_list() == ["E2", "E3", "E4", "E5"]


def test_an_episode_in_two_files_is_said_so_before_its_repeated_positions(tmp_path):
    one = write_csv(tmp_path, "one.csv", "episode_id,position,code\nE1,1,W371\nE1,1,W381\nE2,1,W371\n")
    two = write_csv(tmp_path, "two.csv", "EPIKEY,OPERTN_01\nE1,W372\n")
    data = canonical([one, two])
    assert sorted(data.rejected.select("source_file", "source_row", "reason").rows()) == [
        (str(one), 1, REJECTION_REASONS["episode-in-several-files"]),
        (str(one), 2, REJECTION_REASONS["episode-in-several-files"]),
        (str(two), 1, REJECTION_REASONS["episode-in-several-files"]),
    ]


def test_episode_in_two_files_is_rejected_everywhere(tmp_path):
    one = write_csv(tmp_path, "one.csv", "episode_id,position,code\nE1,1,W371\nE2,1,W371\n")
    two = write_csv(tmp_path, "two.csv", "EPIKEY,OPERTN_01\nE1,W372\n")
    data = canonical([one, two])
    assert sorted(data.rejected.select("source_file", "source_row").rows()) == [(str(one), 1), (str(two), 1)]
    assert data.episodes["episode_id"].to_list() == ["E2"]
