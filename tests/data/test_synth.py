import numpy as np
import pytest
from PIL import Image

from cxrtool.data.labels import LABELS
from cxrtool.data.metadata import locate, read_list, read_metadata
from cxrtool.data.synth import SynthConfig, render, write_synthetic
from cxrtool.errors import InputError


def test_layout_and_metadata_read_like_the_real_dataset(synth_small):
    files = locate(synth_small)
    assert files.metadata.name == "Data_Entry_2017_v2020.csv"
    meta = read_metadata(files.metadata)
    assert len(meta) == 160
    train_val = read_list(files.train_val_list, flag="--train-val-list")
    test = read_list(files.test_list, flag="--test-list")
    assert sorted(train_val + test) == sorted(meta["image"])
    per_patient = meta.groupby("patient_id").size()
    assert per_patient.between(1, 6).all()
    test_patients = meta[meta["image"].isin(test)]["patient_id"].nunique()
    assert 0.1 < test_patients / len(per_patient) < 0.4  # about 23%
    for name in meta["image"].iloc[:5]:
        with Image.open(synth_small / "images" / name) as im:
            assert im.mode == "L" and im.size == (64, 64)


def test_prevalence_in_range(tmp_path):
    out = tmp_path / "d"
    counts = write_synthetic(out, SynthConfig(n=1000, size=32, seed=0))
    for label in LABELS:
        assert 0.06 <= counts[label] / 1000 <= 0.33, label
    real = write_synthetic(tmp_path / "r", SynthConfig(n=1000, size=32, seed=0, prevalence="real"))
    assert real["Hernia"] < 10 and real["Infiltration"] > 120


def test_deterministic_and_refuses_to_overwrite(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_synthetic(a, SynthConfig(n=20, size=32, seed=5))
    write_synthetic(b, SynthConfig(n=20, size=32, seed=5))
    for f in sorted(a.rglob("*")):
        if f.is_file():
            assert f.read_bytes() == (b / f.relative_to(a)).read_bytes(), f
    with pytest.raises(InputError, match="--overwrite"):
        write_synthetic(a, SynthConfig(n=20, size=32))
    write_synthetic(a, SynthConfig(n=10, size=32), overwrite=True)
    assert len(list((a / "images").iterdir())) == 10


@pytest.mark.parametrize("label", LABELS)
def test_each_finding_is_visible(label):
    """The same random draws with and without the finding differ by a visible amount of the image."""
    clean = render((), 128, np.random.default_rng(0)).astype(float)
    sick = render((label,), 128, np.random.default_rng(0)).astype(float)
    changed = np.abs(sick - clean) > 40
    assert changed.mean() > 0.003, f"{label} changes only {changed.mean():.4f} of the pixels"
