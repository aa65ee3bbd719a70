import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from cxrtool.errors import InputError
from cxrtool.stats import metrics
from cxrtool.stats.metrics import (
    average_precision,
    bootstrap_auc,
    delong_test,
    holm,
    roc_auc,
    weighted_auc,
    youden,
)

PREVALENCE = (0.3, 0.1, 0.5, 0.8, 0.04)


def tied_data(n: int = 400, seed: int = 0, decimals: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Labels at several prevalences and informative scores rounded so that many are tied."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(PREVALENCE))) < PREVALENCE).astype(np.int8)
    s = np.round(rng.random(y.shape) * 0.6 + 0.3 * y, decimals)
    return y, s


def sk_columns(fn, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    return np.array([fn(y[:, j], s[:, j]) for j in range(y.shape[1])])


# ROC-AUC, AP, Youden against sklearn


@pytest.mark.parametrize("decimals", [1, 2])
def test_roc_auc_matches_sklearn_with_ties(decimals):
    y, s = tied_data(decimals=decimals)
    np.testing.assert_allclose(roc_auc(y, s), sk_columns(roc_auc_score, y, s), rtol=0, atol=1e-12)
    assert roc_auc(y[:, 0], s[:, 0]).shape == ()  # 1-D: one label, a 0-d result
    assert float(roc_auc(y[:, 0], s[:, 0])) == pytest.approx(roc_auc_score(y[:, 0], s[:, 0]), abs=1e-12)


def test_roc_auc_single_class_column_is_nan():
    y, s = tied_data()
    y[:, 1] = 0
    y[:, 2] = 1
    auc = roc_auc(y, s)
    assert np.isnan(auc[1]) and np.isnan(auc[2]) and np.isfinite(auc[[0, 3, 4]]).all()


def test_bad_inputs_are_input_errors():
    y, s = tied_data(n=20)
    with pytest.raises(InputError, match="same shape"):
        roc_auc(y, s[:, :2])
    with pytest.raises(InputError, match="0 or 1"):
        roc_auc(y * 2, s)
    with pytest.raises(InputError, match="finite"):
        roc_auc(y, np.where(y, np.nan, s))
    with pytest.raises(InputError, match="n_boot"):
        bootstrap_auc(y, s, n_boot=0)


def test_one_label_gives_0d_results():
    y, s = tied_data(n=60)
    boot = bootstrap_auc(y[:, 0], s[:, 0], n_boot=20)
    assert boot["auc"].shape == () and boot["ci_low"].shape == () and boot["replicates"].shape == (20,)
    assert boot["mean_auc"] == pytest.approx(float(boot["auc"]))
    test = delong_test(y[:, 0], s[:, 0], s[:, 1])
    assert test["z"].shape == () and test["mean_z"] == pytest.approx(float(test["z"]))
    assert test["auc_a"].shape == test["auc_b"].shape == test["p"].shape == ()
    assert youden(y[:, 0], s[:, 0])["threshold"].shape == () and average_precision(y[:, 0], s[:, 0]).shape == ()


def test_average_precision_matches_sklearn():
    y, s = tied_data(decimals=1)
    np.testing.assert_allclose(average_precision(y, s), sk_columns(average_precision_score, y, s), rtol=0, atol=1e-12)
    y[:, 1], y[:, 2] = 0, 1
    ap = average_precision(y, s)
    assert np.isnan(ap[1]) and ap[2] == 1.0  # no positives: undefined; no negatives: every precision is 1


def sk_youden(y: np.ndarray, s: np.ndarray) -> tuple[float, float, float]:
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    k = int(np.argmax(tpr - fpr))
    return thresholds[k], tpr[k], 1.0 - fpr[k]


@pytest.mark.parametrize("decimals", [1, 3])
def test_youden_matches_sklearn_roc_curve(decimals):
    y, s = tied_data(decimals=decimals, seed=3)
    s[:, 4] = -s[:, 4]  # worse than chance: no threshold beats predicting nothing positive
    got = youden(y, s)
    want = np.array([sk_youden(y[:, j], s[:, j]) for j in range(y.shape[1])])
    np.testing.assert_array_equal(got["threshold"], want[:, 0])
    np.testing.assert_allclose(got["sensitivity"], want[:, 1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got["specificity"], want[:, 2], rtol=0, atol=1e-12)
    assert got["threshold"][4] == np.inf and got["j"][4] == 0.0
    for j in range(4):  # the documented rule: positive when score >= threshold
        pred = s[:, j] >= got["threshold"][j]
        assert got["sensitivity"][j] == pytest.approx(pred[y[:, j] == 1].mean(), abs=1e-12)
        assert got["specificity"][j] == pytest.approx((~pred)[y[:, j] == 0].mean(), abs=1e-12)


# Bootstrap


def test_weighted_auc_is_auc_of_the_resampled_data():
    y, s = tied_data(decimals=1, seed=5)
    rng = np.random.default_rng(1)
    draws = [rng.integers(0, len(y), size=len(y)) for _ in range(4)]
    counts = np.stack([np.bincount(d, minlength=len(y)) for d in draws])
    got = weighted_auc(y, s, counts)
    want = np.stack([roc_auc(y[d], s[d]) for d in draws])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    # Non-integer weights take the float path; sklearn's sample_weight is the reference.
    w = rng.random(len(y)) * 3
    want = [roc_auc_score(y[:, j], s[:, j], sample_weight=w) for j in range(y.shape[1])]
    np.testing.assert_allclose(weighted_auc(y, s, w[None])[0], want, rtol=0, atol=1e-12)


def test_bootstrap_replicates_are_the_documented_resamples(monkeypatch):
    y, s = tied_data(n=300, decimals=2, seed=2)
    result = bootstrap_auc(y, s, n_boot=7, seed=11)
    rng = np.random.default_rng(11)
    for b in range(7):
        idx = rng.integers(0, len(y), size=len(y))
        np.testing.assert_allclose(result["replicates"][b], roc_auc(y[idx], s[idx]), rtol=0, atol=1e-12)
    monkeypatch.setattr(metrics, "_CHUNK", 3)  # chunk boundaries must not change the resamples
    np.testing.assert_array_equal(bootstrap_auc(y, s, n_boot=7, seed=11)["replicates"], result["replicates"])


def test_bootstrap_reproducible_and_intervals_sane():
    y, s = tied_data(n=500, seed=4)
    y[:, 1] = 0  # a label without positives: NaN, left out of the mean
    first = bootstrap_auc(y, s, n_boot=300, seed=0)
    again = bootstrap_auc(y, s, n_boot=300, seed=0)
    other = bootstrap_auc(y, s, n_boot=300, seed=1)
    np.testing.assert_array_equal(first["replicates"], again["replicates"])
    assert first["mean_ci_low"] == again["mean_ci_low"] and first["mean_ci_high"] == again["mean_ci_high"]
    assert not np.array_equal(first["replicates"], other["replicates"], equal_nan=True)
    used = [0, 2, 3, 4]
    assert np.isnan(first["auc"][1]) and np.isnan(first["ci_low"][1]) and np.isnan(first["ci_high"][1])
    assert (first["ci_low"][used] < first["auc"][used]).all() and (first["auc"][used] < first["ci_high"][used]).all()
    assert first["n_labels"] == 4
    assert first["mean_auc"] == pytest.approx(roc_auc(y, s)[used].mean())
    assert isinstance(first["mean_ci_low"], float) and isinstance(first["mean_ci_high"], float)
    assert first["mean_ci_low"] < first["mean_auc"] < first["mean_ci_high"]
    # Averaging over labels shrinks the interval below the widest per-label one.
    assert first["mean_ci_high"] - first["mean_ci_low"] < np.max(first["ci_high"][used] - first["ci_low"][used])
    assert first["replicates"].shape == (300, 5)


def test_bootstrap_rare_label_skips_resamples_without_positives():
    y, s = tied_data(n=200, seed=6)
    y[:, 0] = 0
    y[:3, 0] = 1  # 3 positives: about 5% of resamples draw none
    result = bootstrap_auc(y, s, n_boot=200, seed=0)
    assert np.isnan(result["replicates"][:, 0]).any()
    assert np.isfinite([result["ci_low"][0], result["ci_high"][0], result["mean_ci_low"]]).all()


# DeLong


def slow_placements(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """DeLong 1988, straight from the definition: each image's placement value (V10 if positive, V01 if negative)."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)

    def psi(x: float, z: float) -> float:
        return 1.0 if x > z else 0.5 if x == z else 0.0

    v = np.empty(len(y))
    for i in pos:
        v[i] = np.mean([psi(s[i], s[j]) for j in neg])
    for j in neg:
        v[j] = np.mean([psi(s[i], s[j]) for i in pos])
    return v


def slow_delong(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """z and two-sided p of one label: S = S10 / m + S01 / n over the two models (DeLong 1988, eq. 3-5)."""
    pos, neg = y == 1, y == 0
    va, vb = slow_placements(y, a), slow_placements(y, b)
    s10 = np.cov(np.stack([va[pos], vb[pos]]))
    s01 = np.cov(np.stack([va[neg], vb[neg]]))
    cov = s10 / pos.sum() + s01 / neg.sum()
    z = (va[pos].mean() - vb[pos].mean()) / math.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    return z, 2 * (1 - 0.5 * (1 + math.erf(abs(z) / math.sqrt(2))))


def slow_mean_delong(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """The mean-difference test from per-image placement values, covariance entry by entry."""
    n_labels = y.shape[1]
    influence = np.zeros(y.shape)
    for label in range(n_labels):
        va, vb = slow_placements(y[:, label], a[:, label]), slow_placements(y[:, label], b[:, label])
        pos = y[:, label] == 1
        auc_a, auc_b = va[pos].mean(), vb[pos].mean()
        for i in range(len(y)):
            size = pos.sum() if pos[i] else (~pos).sum()
            influence[i, label] = ((va[i] - auc_a) - (vb[i] - auc_b)) / math.sqrt(size * (size - 1))
    cov = np.array(
        [
            [sum(influence[i, k] * influence[i, m] for i in range(len(y))) for m in range(n_labels)]
            for k in range(n_labels)
        ]
    )
    diff = np.mean([roc_auc(y[:, k], a[:, k]) - roc_auc(y[:, k], b[:, k]) for k in range(n_labels)])
    z = diff / math.sqrt(cov.sum() / n_labels**2)
    return z, 2 * (1 - 0.5 * (1 + math.erf(abs(z) / math.sqrt(2))))


def two_models(n: int, seed: int, gap: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Co-occurring labels and two models whose errors are shared across an image's labels; a gets `gap` more signal."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(n, 1))  # an image-level factor behind several findings
    y = (shared + rng.normal(size=(n, 3)) > [0.5, 1.0, 0.0]).astype(np.int8)
    base = y + rng.normal(size=(n, 3))
    # Image-level noise (n, 1) moves all of a model's labels together: the AUC errors covary across labels.
    a = np.round(base + gap * y + rng.normal(size=(n, 1)) + 0.3 * rng.normal(size=(n, 3)), 1)
    b = np.round(base + rng.normal(size=(n, 1)) + 0.3 * rng.normal(size=(n, 3)), 1)
    return y, a, b


def test_delong_matches_slow_reference():
    y, a, b = two_models(n=90, seed=0, gap=0.3)
    got = delong_test(y, a, b)
    want = np.array([slow_delong(y[:, k], a[:, k], b[:, k]) for k in range(3)])
    np.testing.assert_allclose(got["z"], want[:, 0], rtol=0, atol=1e-10)
    np.testing.assert_allclose(got["p"], want[:, 1], rtol=0, atol=1e-10)
    np.testing.assert_allclose(got["auc_a"], roc_auc(y, a), rtol=0, atol=1e-12)
    mean_z, mean_p = slow_mean_delong(y, a, b)
    assert got["mean_z"] == pytest.approx(mean_z, abs=1e-10) and got["mean_p"] == pytest.approx(mean_p, abs=1e-10)
    one = delong_test(y[:, :1], a[:, :1], b[:, :1])  # with one label the mean's test is the label's test
    assert one["mean_z"] == pytest.approx(float(one["z"][0]), abs=1e-12)


def test_delong_influences_of_one_model_sum_to_its_textbook_variance():
    """Var(AUC) = S10 / m + S01 / n (DeLong 1988) from the structural components, with ties and a one-image class.

    delong_test reads only differences of two models' influences; this pins each model's own, as documented."""
    y, a, _ = two_models(n=90, seed=3, gap=0.0)
    y[1:, 2], y[0, 2] = 0, 1  # one positive: no S10 term, its V10 spread is undefined
    auc, infl = metrics._delong_influence(y.astype(bool), a)
    for k in range(3):
        v, pos = slow_placements(y[:, k], a[:, k]), y[:, k] == 1
        m, n = pos.sum(), (~pos).sum()
        s10 = np.var(v[pos], ddof=1) / m if m > 1 else 0.0
        s01 = np.var(v[~pos], ddof=1) / n
        assert auc[k] == pytest.approx(roc_auc_score(y[:, k], a[:, k]), abs=1e-12)
        assert (infl[:, k] ** 2).sum() == pytest.approx(s10 + s01, rel=1e-10)
        assert infl[pos, k].sum() == pytest.approx(0.0, abs=1e-12)  # each class's V centred on the AUC
        assert infl[~pos, k].sum() == pytest.approx(0.0, abs=1e-12)


def test_delong_null_and_clear_difference():
    y, a, b = two_models(n=600, seed=1, gap=0.0)
    assert (delong_test(y, a, b)["p"] > 0.3).all() and delong_test(y, a, b)["mean_p"] > 0.3
    y, a, b = two_models(n=600, seed=1, gap=1.5)
    better = delong_test(y, a, b)
    assert (better["p"] < 1e-6).all() and better["mean_p"] < 1e-10 and (better["z"] > 0).all()
    same = delong_test(y, a, a)
    assert (same["z"] == 0).all() and (same["p"] == 1).all() and same["mean_p"] == 1.0


def test_delong_mean_variance_is_calibrated():
    """The mean's standard error, with its cross-label covariances, matches the spread over repeated datasets."""
    diffs, ses = [], []
    for seed in range(200):
        y, a, b = two_models(n=300, seed=100 + seed, gap=0.0)
        result = delong_test(y, a, b)
        diffs.append(result["mean_auc_a"] - result["mean_auc_b"])
        ses.append(abs(diffs[-1] / result["mean_z"]))
    # 0.99 here; leaving out the cross-label covariances (summing per-label variances) would give 1.22.
    assert np.std(diffs) / np.sqrt(np.mean(np.square(ses))) == pytest.approx(1.0, abs=0.1)


def test_delong_label_without_both_classes_is_nan_and_left_out():
    y, a, b = two_models(n=120, seed=2, gap=0.5)
    y[:, 2] = 1
    got = delong_test(y, a, b)
    assert np.isnan(got["z"][2]) and np.isnan(got["p"][2]) and got["n_labels"] == 2
    assert got["mean_z"] == pytest.approx(delong_test(y[:, :2], a[:, :2], b[:, :2])["mean_z"], abs=1e-12)


# Holm


def brute_force_holm(p: list[float]) -> np.ndarray:
    """The smallest alpha at which Holm's step-down procedure, run literally, rejects each hypothesis."""
    m = len(p)
    candidates = sorted({min(1.0, (m - k) * q) for k, q in enumerate(sorted(p))} | {1.0})
    adjusted = np.ones(m)
    for alpha in reversed(candidates):
        rejected = set()
        for k, i in enumerate(sorted(range(m), key=lambda i: p[i])):
            if (m - k) * p[i] > alpha:  # alpha / (m - k), multiplied out as holm() does
                break
            rejected.add(i)
        for i in rejected:
            adjusted[i] = alpha
    return adjusted


def test_holm_hand_worked_example():
    # Sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> raised to 0.06 (monotone).
    np.testing.assert_allclose(holm([0.01, np.nan, 0.04, 0.03, 0.005]), [0.03, np.nan, 0.06, 0.06, 0.02])
    np.testing.assert_array_equal(holm([0.5, 0.6]), [1.0, 1.0])
    assert holm(np.full((2, 3), 0.01)).shape == (2, 3)
    assert holm([]).shape == (0,)


def test_holm_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(30):
        p = list(np.round(rng.random(rng.integers(1, 9)) ** 3, 2))  # ties and near-zero values
        np.testing.assert_allclose(holm(p), brute_force_holm(p), rtol=0, atol=1e-15)


# Edges: bad weights and p-values, tiny classes, no labels, and no numpy warnings on the documented NaN cases


def test_weighted_auc_refuses_bad_weights():
    y, s = tied_data(n=20)
    assert weighted_auc(y, s, np.ones((2, 20))).shape == (2, 5)
    negative = np.where(np.arange(20) == 3, -1.0, 1.0)[None]
    for bad in (np.ones(20), np.ones((2, 19)), negative, np.full((1, 20), np.inf)):
        with pytest.raises(InputError, match="weights"):
            weighted_auc(y, s, bad)


def test_holm_refuses_p_values_outside_0_1_and_computes_in_float64():
    for bad in ([0.5, 1.5], [-0.01, 0.2]):
        with pytest.raises(InputError, match=r"\[0, 1\]"):
            holm(bad)
    np.testing.assert_array_equal(holm([1.0, 0.0]), [1.0, 0.0])  # the bounds are p-values
    p32 = np.array([0.013, 0.031, 0.027], dtype=np.float32)
    np.testing.assert_array_equal(holm(p32), brute_force_holm([float(v) for v in p32]))


def test_delong_tiny_classes_and_missing_ones_warn_nothing():
    rng = np.random.default_rng(4)
    n = 30
    y = np.zeros((n, 4), dtype=np.int8)
    y[:2, 0] = 1  # two positives: the smallest class with a variance term
    y[1:, 1] = 1  # one negative: its AUC is defined, its variance term is not
    y[:, 2] = 1  # no negatives: no AUC, left out
    y[2:, 3] = 1  # two negatives
    a, b = rng.random((n, 4)), rng.random((n, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a label without both classes is NaN, not a RuntimeWarning
        got = delong_test(y, a, b)
        same = delong_test(y, a, a)
        nothing = delong_test(y[:, 2], a[:, 2], b[:, 2])
        blank = delong_test(np.array([1, 0]), np.array([0.9, 0.1]), np.array([0.1, 0.9]))
    for j in (0, 3):
        z, p = slow_delong(y[:, j], a[:, j], b[:, j])
        assert got["z"][j] == pytest.approx(z, abs=1e-10) and got["p"][j] == pytest.approx(p, abs=1e-10)
    assert (same["z"][[0, 1, 3]] == 0).all() and same["mean_p"] == 1.0
    for j in (0, 1, 3):
        assert got["auc_a"][j] == pytest.approx(roc_auc_score(y[:, j], a[:, j]), abs=1e-12)
        assert got["auc_b"][j] == pytest.approx(roc_auc_score(y[:, j], b[:, j]), abs=1e-12)
    assert np.isfinite(got["z"][1]) and np.isnan(got["z"][2]) and got["n_labels"] == 3
    assert nothing["n_labels"] == 0
    assert all(math.isnan(nothing[key]) for key in ("mean_auc_a", "mean_auc_b", "mean_z", "mean_p"))
    # AUC 1 against 0 with one image per class: no variance to test with, so no z and no p rather than 0 or inf
    assert float(blank["auc_a"]) == 1.0 and float(blank["auc_b"]) == 0.0
    assert np.isnan(blank["z"]) and np.isnan(blank["p"]) and math.isnan(blank["mean_p"])


def test_delong_with_no_labels_gives_empty_results():
    empty = np.zeros((4, 0))
    got = delong_test(empty, empty, empty)
    assert got["z"].shape == got["p"].shape == (0,) and got["n_labels"] == 0 and math.isnan(got["mean_z"])


def test_weighted_auc_large_integer_weights_do_not_overflow():
    """Counts whose products pass int32 (here 6·20000² > 2³¹) are summed in float64."""
    y, s = np.array([1, 0, 0, 0]), np.array([0.9, 0.1, 0.2, 0.3])
    assert weighted_auc(y, s, np.full((1, 4), 20_000))[0, 0] == 1.0


def test_ap_and_youden_with_one_image_classes_and_missing_classes():
    rng = np.random.default_rng(8)
    n = 40
    y = np.zeros((n, 4), dtype=np.int8)
    y[5, 0] = 1  # one positive
    y[:, 1] = 1
    y[7, 1] = 0  # one negative
    y[:, 3] = 1  # no negatives; column 2 has no positives
    s = np.round(rng.random((n, 4)), 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing class is NaN, not a RuntimeWarning
        ap, yj, auc = average_precision(y, s), youden(y, s), roc_auc(y, s)
    assert np.isnan(auc[2]) and np.isnan(auc[3])
    for j in (0, 1):
        assert auc[j] == pytest.approx(roc_auc_score(y[:, j], s[:, j]), abs=1e-12)
        assert ap[j] == pytest.approx(average_precision_score(y[:, j], s[:, j]), abs=1e-12)
        threshold, sensitivity, specificity = sk_youden(y[:, j], s[:, j])
        assert yj["threshold"][j] == threshold
        assert yj["sensitivity"][j] == pytest.approx(sensitivity, abs=1e-12)
        assert yj["specificity"][j] == pytest.approx(specificity, abs=1e-12)
        assert yj["j"][j] == pytest.approx(sensitivity + specificity - 1, abs=1e-12)
    assert np.isnan(ap[2]) and ap[3] == 1.0
    for key in ("threshold", "sensitivity", "specificity", "j"):
        assert np.isnan(yj[key][2]) and np.isnan(yj[key][3]), key


def test_bootstrap_defaults_bounds_and_no_usable_label():
    y, s = tied_data(n=40, seed=9)
    default = bootstrap_auc(y, s)  # 2000 resamples of seed 0
    np.testing.assert_array_equal(default["replicates"], bootstrap_auc(y, s, n_boot=2000, seed=0)["replicates"])
    assert bootstrap_auc(y, s, n_boot=1)["replicates"].shape == (1, 5)
    for alpha in (0.0, 1.0, 1.5):
        with pytest.raises(InputError, match="alpha"):
            bootstrap_auc(y, s, n_boot=5, alpha=alpha)
    one = bootstrap_auc(y[:, 0], s[:, 0], n_boot=5)
    assert one["ci_low"].shape == one["ci_high"].shape == one["auc"].shape == ()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        none = bootstrap_auc(np.zeros_like(y), s, n_boot=5)  # no label has both classes
    assert none["n_labels"] == 0 and none["mean_skipped"] == 5
    assert all(math.isnan(none[key]) for key in ("mean_auc", "mean_ci_low", "mean_ci_high"))


def test_input_shapes_one_image_and_boolean_scores():
    with pytest.raises(InputError, match="same shape"):
        roc_auc(np.array([], dtype=int), np.array([]))  # no images
    with pytest.raises(InputError, match="same shape"):
        roc_auc(np.ones((3, 2, 2), dtype=int), np.ones((3, 2, 2)))  # not (images[, labels])
    assert np.isnan(roc_auc(np.array([1]), np.array([0.5])))  # one image: defined input, no AUC
    y, s = tied_data(n=60, seed=10)
    hard = s > 0.5  # hard predictions are scores too
    np.testing.assert_allclose(roc_auc(y, hard), sk_columns(roc_auc_score, y, hard), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        average_precision(y, hard), sk_columns(average_precision_score, y, hard), rtol=0, atol=1e-12
    )
