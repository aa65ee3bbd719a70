"""Failing well (SPEC §5): any failure exits within seconds with its code and one line naming the file or flag and
the fix, no traceback; old output stays intact byte for byte; a resume never continues onto other data.

Faults are provoked for real where that needs no privilege (symbolic-link loops, truncated files, changed rows,
signals, a failure while DataLoader workers run); disk full, permission denied and read-only file systems are
simulated by making the file system call raise the errno the kernel would (the tests may run as root, whom
permissions do not stop, and cannot mount a tiny file system).
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from tests_support import autoencoder_options, classifier_options

from cxrtool.data.labels import LABELS
from cxrtool.models.autoencoder import AutoEncoder
from cxrtool.models.checkpoints import save_model
from cxrtool.models.classifier import Classifier

pytestmark = pytest.mark.slow  # each test runs the CLI in a fresh process

MAIN = "\nimport sys\nfrom cxrtool.cli.app import main\nsys.argv = ['cxrtool', *sys.argv[1:]]\nmain()\n"


def run_cli(args: list[str], *, patch: str = "", timeout: float = 240, env: dict | None = None):
    """The CLI in a fresh process, after `patch` (Python run first, e.g. to make a write fail with ENOSPC)."""
    code = (
        textwrap.dedent(patch)
        + "\nimport sys\nfrom cxrtool.cli.app import main\nsys.argv = ['cxrtool', *sys.argv[1:]]\nmain()\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )  # fmt: skip
    done.seconds = time.monotonic() - started
    return done


def one_line(stderr: str) -> str:
    """The failure line: the last one, alone of its kind, with no traceback anywhere."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith(("error:", "warning:", "interrupted"))]
    assert lines, stderr
    return lines[-1]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _train_args(splits, images, out, *extra) -> list:
    return [
        "train-classifier", "--splits", splits, "--images", images, "--out", out, "--no-pretrained",
        "--resize", "36", "--crop", "32", "--batch-size", "4", "--limit-train", "8", "--limit-val", "4",
        "--device", "cpu", *extra,
    ]  # fmt: skip


ENOSPC_ON_SAVE = """
import errno
import cxrtool.training.loop as loop
def full(path, *args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", str(path))
loop.save_model = full
"""


def test_disk_full_while_workers_run_exits_1_at_once(synth_small, synth_splits, tmp_path):
    """The epoch-end save fails while persistent DataLoader workers (which ignore SIGTERM) are alive: the command
    must still exit, with one line, not hang in Python's exit-time join."""
    run = tmp_path / "run"
    done = run_cli(_train_args(synth_splits, synth_small, run, "--workers", "2", "--epochs", "3"), patch=ENOSPC_ON_SAVE)
    assert done.returncode == 1, done.stderr
    line = one_line(done.stderr)
    assert "last.safetensors: no space left on the device" in line and "free space" in line
    assert done.seconds < 120


def test_an_unexpected_error_is_one_line_and_cxrtool_debug_shows_the_traceback(synth_small, synth_splits, tmp_path):
    patch = """
    import cxrtool.training.loop as loop
    def broken(*args, **kwargs):
        raise ZeroDivisionError("simulated bug")
    loop.save_model = broken
    """
    args = _train_args(synth_splits, synth_small, tmp_path / "a", "--workers", "1", "--epochs", "1")
    done = run_cli(args, patch=patch)
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "ZeroDivisionError: simulated bug" in line and "CXRTOOL_DEBUG=1" in line
    debug = run_cli([*args[:-6], "--out", tmp_path / "b", *args[-4:]], patch=patch, env={"CXRTOOL_DEBUG": "1"})
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "simulated bug" in debug.stderr


def test_an_unreadable_image_in_a_worker_is_one_line_naming_it(synth_small, synth_splits, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    frame = pd.read_csv(synth_splits)
    for name, rel in zip(frame["image"], frame["path"]):
        os.symlink(synth_small / rel, images / name)
    victim = frame[frame["split"] == "train"]["image"].iloc[0]
    (images / victim).unlink()
    (images / victim).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    args = _train_args(synth_splits, images, tmp_path / "run", "--workers", "2", "--epochs", "1")
    args[args.index("--limit-train") + 1] = "200"  # every train image, the broken one included
    done = run_cli(args)
    assert done.returncode == 2, done.stderr
    assert victim in one_line(done.stderr)


@pytest.mark.parametrize("value", ["-1", "nan", "0"])
def test_a_bad_learning_rate_is_refused_before_anything_is_written(synth_small, synth_splits, tmp_path, value):
    done = run_cli(_train_args(synth_splits, synth_small, tmp_path / "run", "--lr", value))
    assert done.returncode == 2 and "--lr" in one_line(done.stderr)
    assert not (tmp_path / "run").exists()


def test_overwrite_with_bad_inputs_keeps_the_old_run_byte_for_byte(synth_small, synth_splits, tmp_path):
    from tests_support import train

    run = tmp_path / "run"
    train("autoencoder", autoencoder_options(synth_splits, synth_small, epochs=1, limit_train=4, limit_val=2), run)
    before = snapshot(run)
    frame = pd.read_csv(synth_splits)
    no_val = tmp_path / "no_val.csv"
    frame[frame["split"] != "val"].to_csv(no_val, index=False)
    for bad in (["--splits", no_val], ["--patch-size", "30"], ["--lr", "-1"]):
        args = ["train-ae", "--splits", synth_splits, "--images", synth_small, "--out", run, "--overwrite"]
        args += ["--device", "cpu", *bad]
        done = run_cli(args)
        assert done.returncode == 2, done.stderr
        one_line(done.stderr)
        assert snapshot(run) == before


def test_a_run_that_fails_before_its_first_epoch_leaves_nothing_that_blocks_a_rerun(
    synth_small, synth_splits, tmp_path
):
    run = tmp_path / "run"
    patch = """
    import cxrtool.training.tasks as tasks
    original = tasks.ClassifierTask.train_step
    def nan_loss(self, model, batch, *, epoch, step):
        out = original(self, model, batch, epoch=epoch, step=step)
        return {**out, "loss": out["loss"] * float("nan")}
    tasks.ClassifierTask.train_step = nan_loss
    """
    done = run_cli(_train_args(synth_splits, synth_small, run, "--epochs", "1", "--workers", "0"), patch=patch)
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "epoch 1, step 1" in line and "no epoch had finished" in line and "last.safetensors" not in line
    again = run_cli(_train_args(synth_splits, synth_small, run, "--epochs", "1", "--workers", "0", "--max-steps", "1"))
    assert again.returncode == 0, again.stderr


def test_resume_refuses_other_rows_and_leaves_the_run_untouched(synth_small, synth_splits, tmp_path):
    from tests_support import train

    run = tmp_path / "run"
    options = classifier_options(synth_splits, synth_small, epochs=1, limit_train=None, limit_val=None, max_steps=1)
    train("classifier", options, run)
    before = snapshot(run)
    frame = pd.read_csv(synth_splits)
    moved = frame.copy()
    moved.loc[moved.index[moved["split"] == "test"][:3], "split"] = "train"  # test images slipped into train
    changed = tmp_path / "changed.csv"
    moved.to_csv(changed, index=False)
    os.replace(changed, synth_splits.parent / "moved.csv")
    config = json.loads((run / "config.json").read_text())
    config["options"]["splits"] = str(synth_splits.parent / "moved.csv")  # the same path, other rows
    (run / "config.json").write_text(json.dumps(config))
    before["config.json"] = (run / "config.json").read_bytes()
    done = run_cli(["train-classifier", "--resume", run, "--epochs", "2"])
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert "differ from those the run started with" in line and "train:" in line
    assert snapshot(run) == before


def test_resume_of_a_truncated_state_or_another_kind(synth_small, synth_splits, tmp_path):
    from tests_support import train

    run = tmp_path / "ae"
    train("autoencoder", autoencoder_options(synth_splits, synth_small, epochs=1, limit_train=4, limit_val=2), run)
    other = run_cli(["train-classifier", "--resume", run])
    assert other.returncode == 2 and "continue it with `cxrtool train-ae --resume" in one_line(other.stderr)
    data = (run / "resume.safetensors").read_bytes()
    (run / "resume.safetensors").write_bytes(data[: len(data) // 2])
    done = run_cli(["train-ae", "--resume", run, "--epochs", "2"])
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert "resume.safetensors" in line and "truncated" in line and "--overwrite" in line


def _checkpoints(tmp_path) -> dict[str, Path]:
    """A good autoencoder file and three broken ones: a tensor missing, one of a wrong shape, NaN weights."""
    from safetensors.torch import load_file, save_file

    good = tmp_path / "good.safetensors"
    save_model(good, AutoEncoder(), kind="autoencoder", labels=LABELS, input_spec={}, config={})
    from cxrtool.artifacts import read_safetensors_header

    meta, _ = read_safetensors_header(good)
    tensors = load_file(str(good))
    variants = {
        "missing": {k: v for k, v in tensors.items() if k != "decoder.0.bias"},
        "shape": {**tensors, "encoder.0.weight": torch.zeros(32, 1, 3, 3)},
        "nan": {**tensors, "encoder.2.weight": tensors["encoder.2.weight"] * float("nan")},
    }
    out = {"good": good}
    for name, variant in variants.items():
        save_file(variant, str(tmp_path / f"{name}.safetensors"), metadata=meta)
        out[name] = tmp_path / f"{name}.safetensors"
    return out


@pytest.mark.parametrize(("broken", "tensor"), [("missing", "decoder.0.bias"), ("shape", "encoder.0.weight"),
                                                 ("nan", "encoder.2.weight")])  # fmt: skip
def test_a_broken_checkpoint_is_bad_input_naming_the_tensor(synth_small, tmp_path, broken, tensor):
    files = _checkpoints(tmp_path)
    store = tmp_path / "store"
    done = run_cli(["compress", synth_small / "images", store, "--ckpt", files[broken], "--workers", "0"])
    assert done.returncode == 2
    assert tensor in one_line(done.stderr)
    assert not store.exists() or not any(store.iterdir())


def test_a_broken_checkpoint_does_not_wipe_an_existing_store(synth_small, tmp_path):
    files = _checkpoints(tmp_path)
    store = tmp_path / "store"
    ok = run_cli(["compress", synth_small / "images", store, "--ckpt", files["good"], "--workers", "0"])
    assert ok.returncode == 0, ok.stderr
    before = snapshot(store)
    done = run_cli(["compress", synth_small / "images", store, "--ckpt", files["nan"], "--overwrite"])
    assert done.returncode == 2 and "encoder.2.weight" in one_line(done.stderr)
    assert snapshot(store) == before


def test_permission_denied_and_read_only_outputs_are_one_line(synth_small, synth_splits, tmp_path):
    for number, words in ((13, "permission denied"), (30, "read-only file system")):
        patch = f"""
        import cxrtool.artifacts as artifacts, tempfile
        def refuse(*args, dir=None, **kwargs):
            raise OSError({number}, "denied", str(dir))
        artifacts.tempfile.mkstemp = refuse
        """
        out = tmp_path / f"s{number}.csv"
        done = run_cli(["split", synth_small, "--out", out], patch=patch)
        assert done.returncode == 2, done.stderr
        line = one_line(done.stderr)
        assert words in line and str(tmp_path) in line


def test_a_looping_symlink_is_skipped_and_a_looping_folder_not_followed(synth_small, tmp_path):
    folder = tmp_path / "xrays"
    (folder / "sub").mkdir(parents=True)
    first = sorted((synth_small / "images").glob("*.png"))[:2]
    for src in first:
        os.symlink(src, folder / "sub" / src.name)
    os.symlink("loop.png", folder / "loop.png")  # a file link to itself
    os.symlink("..", folder / "sub" / "up")  # a folder link to its parent: an endless tree
    files = _checkpoints(tmp_path)
    classifier = tmp_path / "c.safetensors"
    spec = {"resize": 32, "crop": 32, "channels": 3, "encoder_first": False}
    save_model(classifier, Classifier(), kind="classifier", labels=LABELS, input_spec=spec, config={})
    out = tmp_path / "p" / "predictions.csv"
    done = run_cli(["predict", folder, "--ckpt", classifier, "--out", out, "--workers", "0"])
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr and "a loop" in done.stderr
    assert len(pd.read_csv(out)) == 2
    errors = pd.read_csv(out.parent / "errors.csv")
    assert set(errors["image"]) == {"loop.png", "sub/up"}
    store = run_cli(["compress", folder, tmp_path / "store", "--ckpt", files["good"], "--workers", "0"])
    assert store.returncode == 3 and "Traceback" not in store.stderr
    assert list(pd.read_csv(tmp_path / "store" / "errors.csv")["rel_path"]) == ["loop.png"]


def test_sigterm_during_a_command_exits_130_not_143(synth_small, synth_splits, tmp_path):
    run = tmp_path / "run"
    args = _train_args(synth_splits, synth_small, run, "--epochs", "50", "--workers", "0")
    proc = subprocess.Popen([sys.executable, "-c", MAIN, *map(str, args)], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 200
    while not (run / "history.csv").exists():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in one_line(err)


SLOW_SHARDS = """
import time
import cxrtool.compression.store_write as write
tables = write.write_tables
def slowly(*args, **kwargs):
    tables(*args, **kwargs)
    time.sleep(0.3)
write.write_tables = slowly
"""


def test_sigterm_during_compress_exits_130_and_a_rerun_finishes_the_store(synth_small, tmp_path):
    files = _checkpoints(tmp_path)
    args = ["compress", synth_small / "images", tmp_path / "s", "--ckpt", files["good"], "--shard-size", "8"]
    code = textwrap.dedent(SLOW_SHARDS) + MAIN
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *map(str, [*args, "--workers", "0"])], stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 200
    while not (tmp_path / "s" / "latents-00001.safetensors").exists():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run the same command again" in one_line(err)
    assert not json.loads((tmp_path / "s" / "summary.json").read_text())["complete"]
    assert 2 <= len(list((tmp_path / "s").glob("latents-*.safetensors"))) < 20  # stopped part way: 160 images / 8
    assert run_cli([*args, "--workers", "2"]).returncode == 0  # byte-identical resumes: test_store.py
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["complete"] and summary["shards"] == 20 and summary["encoded"] == 160
