"""The artifact file names are a public contract (SPEC §5): written here as literals, so a rename fails."""

from cxrtool.layouts import EvaluationDir, ExplanationDir, LatentStore, LocalizationDir, PrepareCache, RunDir


def test_file_names_are_the_documented_ones():
    assert RunDir.FILES == (
        "model.safetensors",
        "last.safetensors",
        "resume.safetensors",
        "resume.json",
        "config.json",
        "history.csv",
    )
    assert (EvaluationDir.PREDICTIONS, EvaluationDir.TARGETS, EvaluationDir.METRICS, EvaluationDir.ROC) == (
        "predictions.csv",
        "targets.csv",
        "metrics.csv",
        "roc.png",
    )
    assert (LocalizationDir.BOXES, LocalizationDir.LOCALIZATION, LocalizationDir.EXAMPLES) == (
        "boxes.csv",
        "localization.csv",
        "examples.png",
    )
    assert (ExplanationDir.TABLE, ExplanationDir.HEATMAPS) == ("explain.csv", "heatmaps.safetensors")
    assert (LatentStore.SUMMARY, LatentStore.MANIFEST, LatentStore.ERRORS) == (
        "summary.json",
        "manifest.csv",
        "errors.csv",
    )
    assert EvaluationDir.CONFIG == LocalizationDir.CONFIG == ExplanationDir.CONFIG == "config.json"
    assert PrepareCache.MARKER == "cxrtool-cache.json"


def test_shard_names_round_trip_and_other_files_are_not_shards():
    assert [LatentStore.shard(k) for k in (0, 1, 12345)] == [
        "latents-00000.safetensors",
        "latents-00001.safetensors",
        "latents-12345.safetensors",
    ]
    assert LatentStore.shard_index("latents-00042.safetensors") == 42
    for other in (
        "manifest.csv",
        "latents-.safetensors",
        "latents-0x1.safetensors",
        "latents-00001.json",
        "model.safetensors",
    ):
        assert LatentStore.shard_index(other) is None
