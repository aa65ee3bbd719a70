from pathlib import Path

import pytest

from cxrtool.data.splits import SplitRequest, split_dataset


@pytest.fixture(scope="session")
def synth_splits(synth_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("splits") / "s.csv"
    split_dataset(synth_small, SplitRequest(seed=0), images=synth_small).frame.to_csv(out, index=False)
    return out
