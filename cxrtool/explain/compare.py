"""Localization evaluations side by side: pointing per label with its interval, and each evaluation tested against
the first on the same boxes (exact McNemar), Holm-adjusted as the AUC comparison is.

    LOC_A (baseline) ─┐ localization.csv ─► <name>_pointing, <name>_ci_low, <name>_ci_high  (as `localize` wrote them)
    LOC_B ... ────────┘ boxes.csv        ─► boxes hit by one and missed by the other, paired by (image, label, x, y,
                                            w, h) ─► p_<B>_vs_<A>, p_holm_<B>_vs_<A>

McNemar's test uses only the discordant boxes: under "no difference" each of the n = b + c of them is as likely to
favour either model, so min(b, c) is Binomial(n, ½). cxrtool computes that binomial tail exactly (two-sided: twice
the smaller tail, capped at 1) rather than the χ² approximation, which is poor at the small discordant counts of a
label with a few dozen boxes; with no discordant box p = 1. The Mean row tests all boxes pooled: the same null (no
paired difference on any box), with power aimed at the box-weighted difference rather than the Mean row's
unweighted mean over labels. Holm: over the label tests within each pair; the Mean row's over the pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cxrtool.errors import InputError
from cxrtool.evaluation.compare import _best, _members, format_p
from cxrtool.evaluation.eval_dir import MEAN
from cxrtool.explain.loc_dir import KEY, Localization
from cxrtool.stats.metrics import holm


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b and c (a binomial test of min(b, c))."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)  # Python's int / int is correctly rounded even for huge n


@dataclass
class LocalizationComparison:
    table: pd.DataFrame
    names: list[str]
    method: str
    notes: list[str] = field(default_factory=list)


def compare_localizations(locs: list[Localization], names: list[str] | None = None) -> LocalizationComparison:
    """Pointing of every localization, each tested against the first on the boxes they share."""
    _, names, _ = _members(locs, names, {})  # type: ignore[arg-type]  # the same naming rules (it reads .path)
    labels = locs[0].labels
    for loc, name in zip(locs[1:], names[1:]):
        if set(loc.labels) != set(labels):
            raise InputError(f"localization {name} ({loc.path}) has other labels than {names[0]} ({locs[0].path})")
    rows = [*labels, MEAN]
    table = pd.DataFrame({"label": rows})
    pointing = {}
    for loc, name in zip(locs, names):
        values = loc.table.assign(label=loc.table["label"].astype(str)).set_index("label").loc[rows]
        table[f"{name}_n_boxes"] = values["n_boxes"].to_numpy(int)
        for column in ("pointing", "pointing_ci_low", "pointing_ci_high"):
            table[f"{name}_{column.removeprefix('pointing_')}"] = values[column].to_numpy(float)
        pointing[name] = values["pointing"].to_numpy(float)
    notes: list[str] = []
    raw = {}
    for loc, name in zip(locs[1:], names[1:]):
        tested = _paired(locs[0], names[0], loc, name, labels, notes)
        if tested is not None:
            only_other, only_base, p = tested
            table[f"only_{name}_vs_{names[0]}"] = only_other
            table[f"only_{names[0]}_vs_{name}"] = only_base
            raw[name] = p
    mean_holm = holm([float(p[-1]) for p in raw.values()]) if raw else np.array([])
    for (name, p), p_mean in zip(raw.items(), mean_holm):
        table[f"p_{name}_vs_{names[0]}"] = p
        table[f"p_holm_{name}_vs_{names[0]}"] = [*holm(p[:-1].tolist()), p_mean]
    table["best"] = [_best({n: v[i] for n, v in pointing.items()}) for i in range(len(rows))]
    n_tested = int(np.sum(~np.isnan(next(iter(raw.values()))[:-1]))) if raw else 0  # labels with boxes
    return LocalizationComparison(table=table, names=names, method=_method(names, len(raw), n_tested), notes=notes)


def _paired(
    base: Localization, base_name: str, other: Localization, name: str, labels: list[str], notes: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Per label then pooled: (boxes only `other` hits, boxes only `base` hits, exact McNemar p); None if unpaired."""
    key = list(KEY)
    merged = base.boxes[[*key, "pointing_hit"]].merge(
        other.boxes[[*key, "pointing_hit"]], on=key, how="outer", suffixes=("_base", "_other"), indicator=True
    )
    unpaired = int((merged["_merge"] != "both").sum())
    if unpaired:
        notes.append(
            f"p-values of {name} vs {base_name} left out: they scored different boxes ({len(base.boxes)} and "
            f"{len(other.boxes)}, {len(merged) - unpaired} in common); a paired test needs the same boxes"
        )
        return None
    gain = (merged["pointing_hit_other"] == 1) & (merged["pointing_hit_base"] == 0)
    loss = (merged["pointing_hit_other"] == 0) & (merged["pointing_hit_base"] == 1)
    groups = [merged["label"] == label for label in labels] + [pd.Series(True, index=merged.index)]
    b = np.array([int((gain & g).sum()) for g in groups])
    c = np.array([int((loss & g).sum()) for g in groups])
    n = np.array([int(g.sum()) for g in groups])
    p = np.array([mcnemar_exact(int(x), int(y)) if k else math.nan for x, y, k in zip(b, c, n)])
    return b, c, p


def _method(names: list[str], paired: int, n_labels: int) -> str:
    text = "Pointing and its interval as each localization.csv holds them (its bootstrap); * marks the best."
    if len(names) < 2:
        return f"{text} No tests: a single localization."
    if not paired:
        return f"{text} No p-values: no other localization scored the same boxes as {names[0]}."
    return (
        f"{text} p: two-sided exact McNemar test (binomial on the discordant boxes) of each localization against "
        f"{names[0]} on the same boxes; the Mean row pools all boxes. p_holm: Holm (1979) over the {n_labels} label "
        f"test(s) of each pair (labels with boxes); for the Mean row, over the {paired} pooled test(s)."
    )


def display_rows(result: LocalizationComparison) -> tuple[list[str], list[list[str]]]:
    """`pointing [low, high]` per localization, the discordant counts and p-values per pair, best."""
    t, first = result.table, result.names[0]
    pairs = [name for name in result.names[1:] if f"p_{name}_vs_{first}" in t]
    header = ["label", "n_boxes", *result.names]
    for name in pairs:
        header += [f"{name}+ {first}-", f"{first}+ {name}-", f"p_{name}_vs_{first}", f"p_holm_{name}_vs_{first}"]
    header.append("best")
    rows = []
    for i, label in enumerate(t["label"]):
        best = set(t["best"][i].split("/"))
        row = [label, str(t[f"{first}_n_boxes"][i])]
        for name in result.names:
            value, low, high = t[f"{name}_pointing"][i], t[f"{name}_ci_low"][i], t[f"{name}_ci_high"][i]
            text = "" if math.isnan(value) else f"{value:.3f} [{low:.3f}, {high:.3f}]"
            row.append(text + ("*" if text and name in best else ""))
        for name in pairs:
            row += [str(t[f"only_{name}_vs_{first}"][i]), str(t[f"only_{first}_vs_{name}"][i])]
            row += [format_p(t[f"p_{name}_vs_{first}"][i]), format_p(t[f"p_holm_{name}_vs_{first}"][i])]
        row.append(t["best"][i])
        rows.append(row)
    return header, rows
