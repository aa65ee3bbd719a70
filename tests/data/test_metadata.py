import gzip
from pathlib import Path

import numpy as np
import pytest

from cxrtool.data.labels import LABELS
from cxrtool.data.metadata import check_listed, locate, read_list, read_metadata
from cxrtool.errors import InputError

HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)
ROWS = [
    ("00000001_000.png", "Cardiomegaly", 0, 1, 58, "M", "PA"),
    ("00000001_001.png", "Cardiomegaly|Emphysema", 1, 1, 58, "M", "PA"),
    ("00000002_000.png", "No Finding", 0, 2, 81, "F", "AP"),
    ("00000003_000.png", "Hernia|Pleural_Thickening|Pneumothorax", 0, 3, 5, "F", "PA"),
]


def _row(r, age: str, tail: str) -> str:
    return f"{r[0]},{r[1]},{r[2]},{r[3]},{age},{r[5]},{r[6]},2682,2749,0.143,0.143{tail}"


def write_v2020(path: Path) -> Path:
    """The 2020 release as torchxrayvision ships it: 9 header names, 11 fields per row, LF."""
    path.write_text("\n".join([HEADER, *(_row(r, str(r[4]), "") for r in ROWS)]) + "\n")
    return path


def write_nih_2017(path: Path) -> Path:
    """NIH's 2017 file: a trailing comma on every line, ages such as 058Y, CRLF line endings."""
    ages = ["058Y", "058Y", "081Y", "060M"]
    lines = [HEADER + ",", *(_row(r, a, ",") for r, a in zip(ROWS, ages))]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return path


def write_kaggle_2017(path: Path) -> Path:
    """A re-export: quoted bracketed names, one quoted field each, `Patient Sex`, a BOM, no final newline."""
    header = HEADER.replace("Patient Gender", "Patient Sex")
    header = header.replace("OriginalImage[Width,Height]", '"OriginalImage[Width,Height]"')
    header = header.replace("OriginalImagePixelSpacing[x,y]", '"OriginalImagePixelSpacing[x,y]"')
    rows = [f'{r[0]},{r[1]},{r[2]},{r[3]},{r[4]},{r[5]},{r[6]},"2682,2749","0.143,0.143"' for r in ROWS]
    path.write_bytes(("\ufeff" + "\n".join([header, *rows])).encode("utf-8"))
    return path


EXPECTED_AGES = [58, 58, 81, 5]


@pytest.mark.parametrize("writer", [write_v2020, write_nih_2017, write_kaggle_2017])
@pytest.mark.parametrize("gz", [False, True])
def test_every_format_reads_the_same(tmp_path, writer, gz):
    path = writer(tmp_path / "Data_Entry_2017.csv")
    if gz:
        gz_path = tmp_path / "Data_Entry_2017.csv.gz"
        gz_path.write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
        path = gz_path
    frame = read_metadata(path)
    assert list(frame["image"]) == [r[0] for r in ROWS]
    assert list(frame["patient_id"]) == [1, 1, 2, 3]
    assert list(frame["sex"]) == ["M", "M", "F", "F"]
    assert list(frame["view"]) == ["PA", "PA", "AP", "PA"]
    ages = list(frame["age"])
    assert ages == (EXPECTED_AGES if writer is not write_nih_2017 else [58, 58, 81, 5])
    assert list(frame.columns[5:]) == list(LABELS)
    matrix = frame[list(LABELS)].to_numpy()
    assert matrix[2].sum() == 0  # No Finding is the all-zero vector
    assert matrix[0, LABELS.index("Cardiomegaly")] == 1
    assert matrix[3, [LABELS.index(x) for x in ("Hernia", "Pleural_Thickening", "Pneumothorax")]].tolist() == [1, 1, 1]
    assert matrix.sum() == 6


@pytest.mark.parametrize(("age", "years"), [("58", 58), ("058Y", 58), ("006M", 0), ("030M", 2), ("400D", 1)])
def test_ages_in_months_and_days_become_years(tmp_path, age, years):
    path = tmp_path / "m.csv"
    path.write_text(f"{HEADER}\n{_row(ROWS[0], age, '')}\n")
    assert read_metadata(path)["age"].tolist() == [years]


def _expect_error(path: Path, *fragments: str) -> None:
    with pytest.raises(InputError) as info:
        read_metadata(path)
    for fragment in (str(path), *fragments):
        assert fragment in str(info.value)


def test_unknown_finding_names_it_and_its_line(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("\n".join([HEADER, _row(ROWS[0], "5", ""), _row(("x.png", "Covid", 0, 9, 1, "M", "PA"), "5", "")]))
    _expect_error(path, "'Covid'", "line 3")


def test_missing_column(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(HEADER.replace("View Position,", "") + "\n" + "a.png,No Finding,0,1,5,M,1,1,0.1,0.1\n")
    _expect_error(path, "View Position")


def test_duplicate_rows(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("\n".join([HEADER, _row(ROWS[0], "5", ""), _row(ROWS[0], "5", "")]))
    _expect_error(path, "00000001_000.png", "lines 2, 3")


@pytest.mark.parametrize("text", ["", HEADER + "\n"])
def test_empty_file(tmp_path, text):
    path = tmp_path / "m.csv"
    path.write_text(text)
    _expect_error(path)


def test_lists(tmp_path):
    good = tmp_path / "test_list.txt"
    good.write_text("00000001_000.png\n00000002_000.png")  # no final newline, as NIH's
    assert read_list(good, flag="--test-list") == ["00000001_000.png", "00000002_000.png"]
    twice = tmp_path / "twice.txt"
    twice.write_text("a.png\na.png\n")
    with pytest.raises(InputError, match="line 2"):
        read_list(twice, flag="--test-list")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(InputError, match="empty"):
        read_list(empty, flag="--test-list")
    import pandas as pd

    with pytest.raises(InputError, match=r"metadata lacks, first nope.png on line 2"):
        check_listed(good, ["00000001_000.png", "nope.png"], pd.Index(["00000001_000.png"]), flag="--test-list")


def test_locate_prefers_v2020_and_says_so(tmp_path):
    (tmp_path / "metadata").mkdir()
    write_v2020(tmp_path / "metadata" / "Data_Entry_2017_v2020.csv")
    write_nih_2017(tmp_path / "Data_Entry_2017.csv")
    (tmp_path / "metadata" / "test_list.txt").write_text("x")
    files = locate(tmp_path)
    assert files.metadata.name == "Data_Entry_2017_v2020.csv"
    assert files.note and "v2020" in files.note
    assert files.test_list == tmp_path / "metadata" / "test_list.txt"
    assert files.train_val_list is None
    with pytest.raises(InputError, match="--metadata"):
        locate(tmp_path / "metadata" / "..", metadata=tmp_path / "nope.csv")


def test_real_metadata(real_data):
    frame = read_metadata(real_data / "metadata" / "Data_Entry_2017_v2020.csv.gz")
    assert len(frame) == 112_120
    assert frame["patient_id"].nunique() == 30_805
    counts = frame[list(LABELS)].sum().to_dict()
    assert counts["Infiltration"] == 19_894 and counts["Hernia"] == 227 and counts["Effusion"] == 13_317
    assert int((frame[list(LABELS)].sum(axis=1) == 0).sum()) == 60_361
    assert np.array_equal(frame["view"].value_counts().sort_index().to_numpy(), [44_810, 67_310])
