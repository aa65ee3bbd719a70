"""Every random number generator's state as JSON (no pickles), to resume exactly (SPEC §5)."""

from __future__ import annotations

import base64
import random
from typing import Any

import numpy as np
import torch


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _tensor(text: str) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(text), dtype=np.uint8).copy())


def capture() -> dict[str, Any]:
    version, state, gauss = random.getstate()
    return {
        "torch": _b64(torch.get_rng_state()),
        "cuda": [_b64(s) for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
        "numpy": _jsonable(np.random.get_state(legacy=False)),  # bit_generator.state
        "python": {"version": version, "state": list(state), "gauss": gauss},
    }


def restore(saved: dict[str, Any]) -> None:
    torch.set_rng_state(_tensor(saved["torch"]))
    if saved.get("cuda") and torch.cuda.is_available() and len(saved["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([_tensor(s) for s in saved["cuda"]])
    np.random.set_state(saved["numpy"])
    py = saved["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    return value
