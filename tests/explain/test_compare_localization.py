"""Pointing compared on the same boxes: exact McNemar p-values against scipy's binomial test, Holm by hand."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest
from tests_support import make_localization

from cxrtool.explain.compare import compare_localizations, display_rows, mcnemar_exact
from cxrtool.explain.loc_dir import read_localization


@pytest.mark.parametrize(("b", "c"), [(0, 0), (7, 1), (1, 7), (3, 3), (40, 22), (0, 12), (300, 250)])
def test_exact_mcnemar_equals_the_binomial_test(b, c):
    expected = 1.0 if b + c == 0 else binomtest(min(b, c), b + c, 0.5).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)


def test_discordant_counts_p_values_and_holm(tmp_path):
    base = {"Mass": [1] * 3 + [0] * 7 + [1, 0], "Nodule": [1, 0, 1, 1]}
    other = {"Mass": [1] * 3 + [1] * 7 + [0, 0], "Nodule": [1, 0, 1, 1]}  # Mass: 7 gained, 1 lost
    third = {"Mass": [0] * 12, "Nodule": [0, 0, 0, 0]}  # loses 4 Mass and 3 Nodule hits, gains none
    dirs = [make_localization(tmp_path / n, h) for n, h in (("a", base), ("b", other), ("c", third))]
    result = compare_localizations([read_localization(d) for d in dirs], ["a", "b", "c"])
    t = result.table.set_index("label")
    assert list(t.index) == ["Mass", "Nodule", "Mean"]
    assert t["only_b_vs_a"].tolist() == [7, 0, 7] and t["only_a_vs_b"].tolist() == [1, 0, 1]
    p_mass = binomtest(1, 8, 0.5).pvalue  # 18/256
    assert t["p_b_vs_a"].tolist() == pytest.approx([p_mass, 1.0, p_mass])
    assert t["p_holm_b_vs_a"]["Mass"] == pytest.approx(min(1.0, 2 * p_mass))  # 2 label tests
    assert t["p_holm_b_vs_a"]["Nodule"] == 1.0
    p_c = [binomtest(0, 4, 0.5).pvalue, binomtest(0, 3, 0.5).pvalue, binomtest(0, 7, 0.5).pvalue]
    assert t["p_c_vs_a"].tolist() == pytest.approx(p_c)
    # Holm over the pairs' pooled tests: the smaller p times 2, the larger max(itself, that).
    small, large = sorted([p_mass, p_c[2]])
    holm = {p_mass: None, p_c[2]: None}
    holm[small], holm[large] = 2 * small, max(large, 2 * small)
    assert t["p_holm_b_vs_a"]["Mean"] == pytest.approx(holm[p_mass])
    assert t["p_holm_c_vs_a"]["Mean"] == pytest.approx(holm[p_c[2]])
    assert t["a_pointing"]["Mean"] == pytest.approx((4 / 12 + 3 / 4) / 2) and t["best"]["Mass"] == "b"
    header, rows = display_rows(result)
    assert header[:5] == ["label", "n_boxes", "a", "b", "c"] and rows[0][0] == "Mass" and rows[0][1] == "12"
    assert "exact McNemar" in result.method and "2 label test(s)" in result.method


def test_different_boxes_are_not_paired(tmp_path):
    a = make_localization(tmp_path / "a", {"Mass": [1, 0, 1]})
    b = make_localization(tmp_path / "b", {"Mass": [1, 1, 1]}, first_image=1)
    result = compare_localizations([read_localization(a), read_localization(b)], None)
    assert "p_b_vs_a" not in result.table and "different boxes" in result.notes[0]
    assert result.table["b_pointing"].iloc[0] == 1.0
