from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = (REPO / ".." / "shared" / "nih-cxr14").resolve()


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real ChestX-ray14 sample beside the repository (in CI and on the dev machine)."""
    if not (REAL_DATA / "metadata" / "Data_Entry_2017_v2020.csv.gz").is_file():
        pytest.skip(f"real ChestX-ray14 sample not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset shared by the tests that only read it."""
    from cxrtool.data.synth import SynthConfig, write_synthetic

    out = tmp_path_factory.mktemp("synth") / "data"
    write_synthetic(out, SynthConfig(n=160, size=64, seed=1))
    return out


@pytest.fixture(scope="session")
def synth_splits(synth_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The splits.csv of `synth_small` (seed 0, with paths)."""
    from cxrtool.data.splits import SplitRequest, split_dataset

    out = tmp_path_factory.mktemp("splits") / "s.csv"
    split_dataset(synth_small, SplitRequest(seed=0), images=synth_small).frame.to_csv(out, index=False)
    return out
