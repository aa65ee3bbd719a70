import json

import pytest
from typer.testing import CliRunner

from cxrtool.cli.app import app
from cxrtool.errors import InputError
from cxrtool.info import describe

runner = CliRunner()


def test_info_on_each_artifact(tmp_path, synth_small):
    from tests_support import autoencoder_options, splits_for, train

    from cxrtool.data.prepare import prepare_cache

    splits = splits_for(synth_small, tmp_path)
    run = tmp_path / "ae"
    train("autoencoder", autoencoder_options(splits, synth_small, epochs=1, limit_train=4, limit_val=2), run)
    summary = describe(run)
    assert summary["artifact"] == "run" and summary["kind"] == "autoencoder" and summary["epochs_done"] == 1
    ckpt = describe(run / "model.safetensors")
    assert ckpt["kind"] == "autoencoder" and ckpt["tensor_values"] == 1025 and len(ckpt["encoder_sha256"]) == 64
    prepare_cache(["00000001_000.png"], synth_small, tmp_path / "cache", size=16, workers=1)
    assert describe(tmp_path / "cache")["size"] == 16
    result = runner.invoke(app, ["info", str(run), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["kind"] == "autoencoder"
    table = runner.invoke(app, ["info", str(run / "model.safetensors")])
    assert "| kind" in table.stdout and "autoencoder" in table.stdout


def test_info_on_an_evaluation_and_junk(tmp_path):
    import numpy as np

    from cxrtool.evaluation.eval_dir import write_evaluation
    from cxrtool.evaluation.evaluate import metrics_table

    rng = np.random.default_rng(0)
    targets = (rng.random((50, 2)) < 0.3).astype(np.int8)
    probs = rng.random((50, 2))
    metrics = metrics_table(("A", "B"), targets, probs, n_boot=20, seed=0)
    write_evaluation(
        tmp_path / "ev",
        images=np.array([f"{i}.png" for i in range(50)]),
        labels=("A", "B"),
        probs=probs,
        targets=targets,
        metrics=metrics,
        config={"split": "test", "kind": "classifier"},
    )
    summary = describe(tmp_path / "ev")
    assert summary["artifact"] == "evaluation" and summary["n_labels"] == 2
    assert summary["mean_auc"] == pytest.approx(float(metrics["auc"].iloc[-1]))
    (tmp_path / "junk.txt").write_text("x")
    with pytest.raises(InputError, match="not a cxrtool artifact"):
        describe(tmp_path / "junk.txt")
    assert runner.invoke(app, ["info", str(tmp_path / "nothing")]).exit_code == 2


def test_info_on_a_latent_store(tmp_path, synth_small):
    from cxrtool.compression.compress import CompressOptions, compress_folder
    from cxrtool.data.labels import LABELS
    from cxrtool.models.autoencoder import AutoEncoder
    from cxrtool.models.checkpoints import save_model

    ckpt = tmp_path / "ae.safetensors"
    save_model(ckpt, AutoEncoder(), kind="autoencoder", labels=LABELS, input_spec={}, config={})
    compress_folder(synth_small / "images", tmp_path / "store", CompressOptions(ckpt, shard_size=64))
    summary = describe(tmp_path / "store")
    assert summary["artifact"] == "latent store" and summary["shards"] == 3
    assert len(summary["encoder_sha256"]) == 64 and summary["bits_per_pixel"] > 0
