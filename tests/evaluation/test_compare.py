import math
from pathlib import Path

import numpy as np
import pytest
import tests_support

from cxrtool.data.labels import LABELS
from cxrtool.errors import InputError
from cxrtool.evaluation.compare import compare_evaluations, display_rows, format_p
from cxrtool.evaluation.eval_dir import MEAN, Evaluation, read_evaluation, write_evaluation
from cxrtool.evaluation.reference import REFERENCE_SETS, read_reference, reference_columns

N = 200


def make_eval(path: Path, **kwargs) -> Evaluation:
    return read_evaluation(tests_support.make_eval(path, **kwargs))


@pytest.fixture(scope="module")
def evals(tmp_path_factory) -> dict[str, Evaluation]:
    root = tmp_path_factory.mktemp("evals")
    return {
        "weak": make_eval(root / "weak", signal=0.3, seed=1),
        "strong": make_eval(root / "strong", signal=2.0, seed=2),
        "mid": make_eval(root / "mid", signal=1.0, seed=3),
        "mid2": make_eval(root / "mid2", signal=1.0, seed=4),
    }


def test_columns_values_from_metrics_and_p_values(evals):
    a, b = evals["weak"], evals["mid"]
    result = compare_evaluations([a, b], ["a", "b"])
    t = result.table
    columns = ["label", "a_auc", "a_ci_low", "a_ci_high", "b_auc", "b_ci_low", "b_ci_high", "p_b_vs_a", "p_holm_b_vs_a"]
    assert list(t.columns) == [*columns, "best"]
    assert list(t["label"]) == [*LABELS, MEAN]
    metrics = a.metrics.set_index("label")
    np.testing.assert_array_equal(t["a_auc"], metrics.loc[[*LABELS, MEAN], "auc"])
    np.testing.assert_array_equal(t["a_ci_high"], metrics.loc[[*LABELS, MEAN], "auc_ci_high"])
    raw, adjusted = t["p_b_vs_a"].to_numpy(), t["p_holm_b_vs_a"].to_numpy()
    assert np.isfinite(raw).all() and np.isfinite(adjusted).all()
    labels_raw, labels_adj = raw[:-1], adjusted[:-1]
    assert (labels_adj >= labels_raw - 1e-15).all() and (labels_adj <= 1).all()
    order = np.argsort(labels_raw)
    assert (np.diff(labels_adj[order]) >= -1e-15).all()  # Holm keeps the order of the raw p-values
    # One pair: the Mean's family has one test, so Holm leaves it unchanged.
    assert adjusted[-1] == pytest.approx(raw[-1])
    assert "DeLong" in result.method and "Holm" in result.method and result.notes == []


def test_clearly_better_model_gets_small_p_and_is_best(evals):
    result = compare_evaluations([evals["weak"], evals["strong"]], ["weak", "strong"])
    t = result.table.set_index("label")
    assert t.loc[MEAN, "p_strong_vs_weak"] < 1e-6
    assert (t["p_holm_strong_vs_weak"].iloc[:-1] < 0.01).mean() > 0.8
    assert (t["best"] == "strong").all()


def test_holm_for_the_mean_spans_the_pairs(evals):
    result = compare_evaluations([evals["weak"], evals["mid"], evals["strong"]], ["w", "m", "s"])
    mean = result.table.set_index("label").loc[MEAN]
    raw = np.array([mean["p_m_vs_w"], mean["p_s_vs_w"]])
    expected = np.minimum(1, np.maximum.accumulate(np.array([2, 1]) * np.sort(raw)))
    np.testing.assert_allclose(np.sort([mean["p_holm_m_vs_w"], mean["p_holm_s_vs_w"]]), expected)
    assert "2 Mean test(s)" in result.method and "14 label tests" in result.method


def test_identical_evaluations_tie_and_p_is_one(evals):
    result = compare_evaluations([evals["mid"], evals["mid"]], None)
    assert result.names == ["mid", "mid-2"]
    t = result.table
    assert (t["best"] == "mid/mid-2").all()
    assert (t["p_mid-2_vs_mid"] == 1.0).all()


def test_different_images_leave_p_blank_with_a_note(evals, tmp_path):
    shifted = make_eval(tmp_path / "shifted", signal=1.0, seed=5, first_image=50)
    result = compare_evaluations([evals["weak"], shifted], ["a", "b"])
    assert result.table["p_b_vs_a"].isna().all() and result.table["p_holm_b_vs_a"].isna().all()
    assert result.table["b_auc"].notna().all()
    assert any("different images" in note and "150 in common" in note for note in result.notes)


def test_different_targets_leave_p_blank(evals, tmp_path):
    other = make_eval(tmp_path / "other_truth", truth_seed=7)
    result = compare_evaluations([evals["weak"], other], ["a", "b"])
    assert result.table["p_b_vs_a"].isna().all()
    assert any("different targets" in note for note in result.notes)


def test_images_in_another_order_are_aligned(evals, tmp_path):
    a = evals["mid"]
    order = np.random.default_rng(0).permutation(N)
    write_evaluation(
        tmp_path / "shuffled",
        images=a.images[order],
        labels=a.labels,
        probs=a.probs[order],
        targets=a.targets[order],
        metrics=a.metrics,
        config={},
    )
    result = compare_evaluations([a, read_evaluation(tmp_path / "shuffled")], ["a", "b"])
    np.testing.assert_allclose(result.table["p_b_vs_a"], 1.0)


def test_reference_all_prints_published_means(evals):
    result = compare_evaluations([evals["mid"]], ["m"], reference="all")
    t = result.table.set_index("label")
    assert result.reference == [
        "ref_d121_paper",
        "ref_d121_reproduction",
        "ref_aecnn_paper",
        "ref_aecnn_reproduction",
        "ref_fmix_reproduction",
    ]
    assert t.loc[MEAN, "ref_aecnn_paper"] == 0.8226  # as published, although its 14 values average to 0.8233
    assert round(t["ref_aecnn_paper"].iloc[:-1].mean(), 4) == 0.8233
    assert t.loc[MEAN, "ref_d121_reproduction"] == 0.8216 and t.loc[MEAN, "ref_fmix_reproduction"] == 0.8131
    assert t.loc["Pleural_Thickening", "ref_d121_paper"] == 0.7855
    assert list(t.columns)[-1] == "best" and (t["best"] == "m").all()  # references are never "best"
    assert list(reference_columns("paper").columns) == ["ref_d121_paper", "ref_aecnn_paper"]
    assert len(REFERENCE_SETS["reproduction"]) == 3 and len(read_reference()) == 15
    with pytest.raises(InputError, match="--reference"):
        compare_evaluations([evals["mid"]], ["m"], reference="papers")


def test_reference_with_fewer_labels_notes_it(tmp_path):
    few = make_eval(tmp_path / "few", labels=LABELS[:3])
    result = compare_evaluations([few], ["f"], reference="paper")
    assert result.table["ref_d121_paper"].iloc[-1] == 0.8220
    assert any("published Means" in note for note in result.notes)


def test_groups_aggregate_runs_and_compare_each(evals):
    runs = [evals["mid"], evals["mid2"], evals["strong"]]
    result = compare_evaluations([evals["weak"], evals["mid"]], ["base", "m"], groups={"g": runs})
    assert result.names == ["base", "m", "g_2", "g_3"]  # the run given as an EVAL keeps its name
    assert result.groups == ["g"]
    t = result.table
    aucs = np.stack([run.metrics["auc"].to_numpy(float) for run in runs])
    np.testing.assert_allclose(t["g_mean"], aucs.mean(axis=0))
    np.testing.assert_allclose(t["g_sd"], aucs.std(axis=0, ddof=1))
    assert {"p_g_2_vs_base", "p_holm_g_3_vs_base"} <= set(t.columns)
    assert list(t.columns).index("g_sd") < list(t.columns).index("p_m_vs_base")
    header, rows = display_rows(result)
    assert "g (mean ± sd)" in header
    assert " ± " in rows[-1][header.index("g (mean ± sd)")]


def test_group_alone_uses_its_first_run_as_baseline(evals):
    result = compare_evaluations([], None, groups={"g": [evals["mid"]]})
    assert result.names == ["g_1"] and result.table["g_sd"].isna().all()
    assert any("baseline: g_1" in note for note in result.notes)


def test_bad_input(evals, tmp_path):
    with pytest.raises(InputError, match="--names gives 1 name"):
        compare_evaluations([evals["weak"], evals["mid"]], ["a"])
    with pytest.raises(InputError, match="--names"):
        compare_evaluations([evals["weak"]], ["a b"])
    with pytest.raises(InputError, match="at least one EVAL"):
        compare_evaluations([], None)
    with pytest.raises(InputError, match="already taken"):
        compare_evaluations([evals["weak"]], ["g"], groups={"g": [evals["mid"]]})
    few = make_eval(tmp_path / "few", labels=LABELS[:3])
    with pytest.raises(InputError, match=r"evaluation few .*other labels"):
        compare_evaluations([evals["weak"], few], None)


def test_display_marks_best_and_formats_p(evals):
    result = compare_evaluations([evals["weak"], evals["strong"]], ["weak", "strong"])
    header, rows = display_rows(result)
    assert header[:3] == ["label", "weak", "strong"]
    mean = rows[-1]
    assert mean[0] == MEAN and mean[2].endswith("]*") and not mean[1].endswith("*")
    assert mean[header.index("p_strong_vs_weak")] == "<0.001"
    assert format_p(0.01234) == "0.012" and format_p(math.nan) == ""
