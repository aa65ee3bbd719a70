from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrtool.data.labels import LABELS
from cxrtool.data.splits import (
    PAPER_VAL_FRACTION,
    SplitRequest,
    assign_splits,
    leaked_patients,
    parse_size,
    split_dataset,
)
from cxrtool.errors import InputError

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "split_seed0.csv"


def toy_metadata(n_patients: int = 300) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Patient p has 1-6 images; every fourth patient is in the test list."""
    rows = []
    for p in range(1, n_patients + 1):
        for k in range((p * 7) % 6 + 1):
            rows.append({"image": f"{p:08d}_{k:03d}.png", "patient_id": p, "view": "PA", "age": 40, "sex": "M"})
    frame = pd.DataFrame(rows)
    for j, label in enumerate(LABELS):
        frame[label] = ((frame["patient_id"] + j) % 5 == 0).astype(np.int8)
    test = [r.image for r in frame.itertuples() if r.patient_id % 4 == 0]
    train_val = [r.image for r in frame.itertuples() if r.patient_id % 4 != 0]
    return frame, train_val, test


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("val_size", [None, 0.25, 100.0])
def test_split_invariants(seed, val_size):
    meta, train_val, test = toy_metadata()
    out = assign_splits(meta, SplitRequest(val_size=val_size, seed=seed), train_val=train_val, test=test)
    assert sorted(out["image"]) == sorted(meta["image"]) and out["image"].is_unique  # every row exactly once
    assert list(out["image"]) == sorted(out["image"])
    assert set(out.loc[out["split"] == "test", "image"]) == set(test)  # the official test list is test
    assert not leaked_patients(out)  # no patient in two splits
    pool = len(train_val)
    target = {None: PAPER_VAL_FRACTION * pool, 0.25: 0.25 * pool, 100.0: 100}[val_size]
    assert abs((out["split"] == "val").sum() - target) <= 3  # closest prefix: off by at most half a patient
    again = assign_splits(meta, SplitRequest(val_size=val_size, seed=seed), train_val=train_val, test=test)
    pd.testing.assert_frame_equal(out, again)  # deterministic


def test_seed_changes_the_split_and_other_patients_do_not():
    meta, train_val, test = toy_metadata()
    a = assign_splits(meta, SplitRequest(val_size=0.3, seed=0), train_val=train_val, test=test)
    b = assign_splits(meta, SplitRequest(val_size=0.3, seed=1), train_val=train_val, test=test)
    assert not a["split"].equals(b["split"])


def test_golden_split_is_stable():
    """Pins seed 0's split so that a change of hash, order or rounding cannot pass unnoticed."""
    meta, train_val, test = toy_metadata()
    out = assign_splits(meta, SplitRequest(seed=0), train_val=train_val, test=test)
    got = out.groupby("patient_id")["split"].first().reset_index()
    golden = pd.read_csv(GOLDEN)
    pd.testing.assert_frame_equal(got, golden)


def test_image_mode_samples_images():
    meta, train_val, test = toy_metadata()
    out = assign_splits(meta, SplitRequest(val_size=200.0, val_mode="image"), train_val=train_val, test=test)
    assert (out["split"] == "val").sum() == 200
    assert leaked_patients(out)  # the leak the notebooks had


def test_test_fraction_without_lists():
    meta, _, _ = toy_metadata()
    out = assign_splits(meta, SplitRequest(test_fraction=0.2, seed=3), train_val=None, test=None)
    assert set(out["split"]) == {"train", "val", "test"}
    assert abs((out["split"] == "test").mean() - 0.2) < 0.02
    assert not leaked_patients(out)
    with pytest.raises(InputError, match="--test-fraction"):
        assign_splits(meta, SplitRequest(), train_val=None, test=None)


def test_empty_train_or_val_is_an_error():
    meta, train_val, test = toy_metadata(4)
    with pytest.raises(InputError, match="empty"):
        assign_splits(meta, SplitRequest(val_size=10_000.0), train_val=train_val, test=test)


@pytest.mark.parametrize(("text", "value"), [("10000", 10000.0), ("0.12", 0.12)])
def test_parse_size(text, value):
    assert parse_size(text, flag="--val-size") == value


@pytest.mark.parametrize("text", ["0", "-3", "1.5", "ten", "2.0", "1e4", "0.0"])
def test_parse_size_rejects(text):
    with pytest.raises(InputError, match="--val-size"):
        parse_size(text, flag="--val-size")


def test_only_present_drops_after_splitting(synth_small, tmp_path):
    """An image's split must not depend on which other images are on disk."""
    full = split_dataset(synth_small, SplitRequest(seed=0), images=synth_small).frame
    images = tmp_path / "some"
    images.mkdir()
    keep = full["image"].iloc[::3]
    for name in keep:
        (images / name).write_bytes((synth_small / "images" / name).read_bytes())
    part = split_dataset(synth_small, SplitRequest(seed=0), images=images, only_present=True)
    assert list(part.frame["image"]) == list(keep)
    merged = part.frame.merge(full, on="image", suffixes=("", "_full"))
    assert (merged["split"] == merged["split_full"]).all()
    assert any("dropped" in m for m in part.messages)


def test_real_split_counts(real_data):
    out = split_dataset(real_data, SplitRequest(seed=0)).frame
    counts = out["split"].value_counts()
    assert counts["test"] == 25_596
    assert counts["train"] + counts["val"] == 86_524
    assert abs(counts["val"] - 10_000) <= 100
    assert not leaked_patients(out)
    from cxrtool.data.metadata import read_metadata

    meta = read_metadata(real_data / "metadata" / "Data_Entry_2017_v2020.csv.gz").set_index("image")
    assert (out.set_index("image")[list(LABELS)] == meta.loc[out["image"], list(LABELS)]).all().all()
