"""The example scripts: the reproduction script's dry run prints valid commands in the paper's order."""

import shlex
import subprocess
from pathlib import Path

import typer

from cxrtool.cli.app import app

SCRIPTS = Path(__file__).resolve().parents[2] / "examples"


def _dry_run(*extra: str) -> list[list[str]]:
    result = subprocess.run(
        ["bash", str(SCRIPTS / "reproduce_table1.sh"), "/data/cxr14", "--dry-run", "--out", "out", *extra],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [shlex.split(line) for line in result.stdout.splitlines() if line.strip()]


def _options_of(command: str) -> set[str]:
    params = typer.main.get_command(app).commands[command].params
    return {opt for p in params for opt in (*p.opts, *getattr(p, "secondary_opts", []))}


def test_reproduction_dry_run_prints_valid_commands_in_order():
    lines = _dry_run()
    commands = [line[line.index("cxrtool") + 1] for line in lines]
    assert commands == [
        "split", "check", "prepare", "train-classifier", "train-classifier", "train-ae", "train-joint",
        "evaluate", "evaluate", "evaluate", "compare", "localize", "localize", "compare",
    ]  # fmt: skip
    for line in lines:
        args = line[line.index("cxrtool") + 1 :]
        known = _options_of(args[0])
        for word in args[1:]:
            if word.startswith("--"):
                assert word in known, f"{args[0]} has no option {word}"
    joint = next(line for line in lines if "train-joint" in line)
    assert joint[joint.index("--crop") + 1] == "896" and joint[joint.index("--lam") + 1] == "0.9"
    stage1 = next(line for line in lines if "train-classifier" in line)
    assert stage1[stage1.index("--resize") + 1] == "256" and stage1[stage1.index("--crop") + 1] == "224"
    table1 = next(line for line in lines if "compare" in line and "--reference" in line)
    assert table1[table1.index("--reference") + 1] == "all"
    localize = [line for line in lines if "localize" in line]
    assert [line[line.index("--ckpt") + 1] for line in localize] == ["out/runs/seed0/d121", "out/runs/seed0/aecnn"]
    assert all(
        line[line.index("--images") + 1] == "/data/cxr14" for line in localize
    )  # originals: boxes are in their pixels
    loc_dirs = [line[line.index("--out") + 1] for line in localize]
    assert lines[-1][lines[-1].index("compare") + 1 :][:2] == loc_dirs  # the two localizations, compared


def test_reproduction_over_seeds_groups_the_runs():
    lines = _dry_run("--seeds", "0 1 2")
    assert sum("train-joint" in line for line in lines) == 3
    compare = next(line for line in lines if "--group" in line)
    groups = [compare[i + 1] for i, word in enumerate(compare) if word == "--group"]
    assert [g.split("=")[0] for g in groups] == ["D121", "AECNN", "FMix"]
    assert all(len(g.split("=")[1].split(",")) == 3 for g in groups)
