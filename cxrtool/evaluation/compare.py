"""Evaluation directories side by side: per-label AUCs with intervals, paired tests against a baseline, seed groups.

    EVAL_A (baseline) ──┐  metrics.csv      ─► <name>_auc, <name>_ci_low, <name>_ci_high   (as `evaluate` wrote them)
    EVAL_B ... ─────────┤  predictions.csv  ─► paired DeLong B vs A per label and for the Mean
    --group G=E1,E2 ────┘  + targets.csv       ─► p_<B>_vs_<A>, p_holm_<B>_vs_<A>
                            runs' AUCs       ─► G_mean, G_sd (across runs, ddof=1)
    table1.csv (package) ─────────────────────► ref_* (published Means as published)

The AUCs and intervals are read from each metrics.csv (what `evaluate` computed with its seeded bootstrap); the
DeLong tests recompute the AUCs from predictions and targets, aligned by image name. Two evaluations over different
images, or with different targets, are not paired: their p-values stay blank and a note says why.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cxrtool.errors import InputError
from cxrtool.evaluation.eval_dir import MEAN, Evaluation
from cxrtool.evaluation.reference import label_key, reference_columns
from cxrtool.stats.metrics import delong_test, holm

# Names become parts of column names (`<name>_auc`, `p_<name>_vs_<first>`), so scripts can rely on them.
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass
class ComparisonResult:
    """`table` is the --out layout; the name lists say which columns are which, baseline first."""

    table: pd.DataFrame
    names: list[str]  # every evaluation compared, the baseline first (group runs included)
    groups: list[str]
    reference: list[str]  # the ref_* columns
    method: str
    notes: list[str] = field(default_factory=list)

    @property
    def baseline(self) -> str:
        return self.names[0]

    @property
    def pairs(self) -> list[str]:
        return self.names[1:]


def compare_evaluations(
    evals: list[Evaluation],
    names: list[str] | None = None,
    *,
    groups: dict[str, list[Evaluation]] | None = None,
    reference: str | None = None,
) -> ComparisonResult:
    """Compare evaluations against the first one (or, with none given, the first run of the first group).

    `names` name `evals` (default: their directory names, made unique). A group's runs are compared as evaluations
    too, named `<group>_<i>` (i from 1 in the group's order) unless the same directory is among `evals`.
    """
    members, member_names, runs = _members(evals, names, groups or {})
    labels = _labels(members, member_names)
    rows = [*labels, MEAN]
    table = pd.DataFrame({"label": rows})
    notes: list[str] = []
    if not evals:
        group = next(iter(runs))
        notes.append(f"baseline: {member_names[0]}, the first run of group {group} (no EVAL given)")

    aucs = {}
    for ev, name in zip(members, member_names):
        metrics = _metric_rows(ev, rows)
        aucs[name] = metrics["auc"]
        for column in ("auc", "auc_ci_low", "auc_ci_high"):
            table[f"{name}_{column.removeprefix('auc_')}"] = metrics[column]
    for group, group_names in runs.items():
        values = np.stack([aucs[name] for name in group_names])
        aucs[group] = values.mean(axis=0)
        table[f"{group}_mean"] = aucs[group]
        table[f"{group}_sd"] = values.std(axis=0, ddof=1) if len(values) > 1 else math.nan
        notes.append(f"group {group}: {len(values)} run(s) ({', '.join(group_names)}); sd across runs with ddof=1")

    paired, family = _add_tests(table, members, member_names, labels, notes)
    ref_names = _add_reference(table, reference, labels, notes, _mean_labels(members, member_names))
    table["best"] = [_best({name: values[i] for name, values in aucs.items()}) for i in range(len(rows))]
    return ComparisonResult(
        table=table,
        names=member_names,
        groups=list(runs),
        reference=ref_names,
        method=_method(member_names, family, paired),
        notes=notes,
    )


def _members(
    evals: list[Evaluation], names: list[str] | None, groups: dict[str, list[Evaluation]]
) -> tuple[list[Evaluation], list[str], dict[str, list[str]]]:
    """Every evaluation to compare with its name, and each group's run names."""
    if not evals and not groups:
        raise InputError("give at least one EVAL directory (or a --group NAME=EVAL1,EVAL2)")
    if names is None:
        names = _unique([_default_name(ev.path) for ev in evals])
    elif len(names) != len(evals):
        raise InputError(f"--names gives {len(names)} name(s) for {len(evals)} EVAL(s); give one per EVAL, in order")
    for name in names:
        _check_name(name, "--names")
    if len(set(names)) != len(names):
        raise InputError(f"--names must be unique: {','.join(names)}")
    members, member_names = list(evals), list(names)
    by_path = {_key(ev.path): name for ev, name in zip(evals, names)}
    runs: dict[str, list[str]] = {}
    for group, group_evals in groups.items():
        _check_name(group, "--group")
        if group in member_names or group in runs:
            raise InputError(f"--group {group}: the name is already taken; give each group and EVAL its own name")
        if not group_evals:
            raise InputError(f"--group {group} lists no evaluation directory")
        runs[group] = []
        for i, ev in enumerate(group_evals, start=1):
            if _key(ev.path) not in by_path:
                name = _unique([*member_names, *runs, f"{group}_{i}"])[-1]
                by_path[_key(ev.path)] = name
                members.append(ev)
                member_names.append(name)
            runs[group].append(by_path[_key(ev.path)])
    return members, member_names, runs


def _key(path: Path) -> Path:
    return Path(path).resolve()


def _default_name(path: Path) -> str:
    # A directory name with characters a column name cannot hold keeps its readable parts.
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", _key(path).name).strip("_") or "eval"


def _unique(names: list[str]) -> list[str]:
    """Suffix -2, -3, ... on a repeated name."""
    out: list[str] = []
    for name in names:
        candidate, k = name, 2
        while candidate in out:
            candidate, k = f"{name}-{k}", k + 1
        out.append(candidate)
    return out


def _check_name(name: str, flag: str) -> None:
    if not _NAME.match(name):
        raise InputError(
            f"{flag}: {name!r} cannot name columns; use letters, digits, '_', '-' and '.' only (e.g. d121,aecnn)"
        )


def _labels(members: list[Evaluation], names: list[str]) -> list[str]:
    """The first evaluation's labels, in its order; every other must hold the same set."""
    labels = list(members[0].labels)
    for ev, name in zip(members[1:], names[1:]):
        if set(ev.labels) != set(labels):
            missing, extra = sorted(set(labels) - set(ev.labels)), sorted(set(ev.labels) - set(labels))
            raise InputError(
                f"evaluation {name} ({ev.path}) has other labels than {names[0]} ({members[0].path}): "
                f"missing {missing or 'none'}, extra {extra or 'none'}; compare evaluations of the same labels"
            )
    return labels


def _metric_rows(ev: Evaluation, rows: list[str]) -> dict[str, np.ndarray]:
    metrics = ev.metrics.assign(label=ev.metrics["label"].astype(str)).set_index("label")
    if MEAN not in metrics.index:
        raise InputError(f"{ev.path / 'metrics.csv'} has no {MEAN} row; rerun `cxrtool evaluate`")
    metrics = metrics.loc[rows]
    return {c: pd.to_numeric(metrics[c], errors="coerce").to_numpy(float) for c in ("auc", "auc_ci_low", "auc_ci_high")}


def _add_tests(
    table: pd.DataFrame, members: list[Evaluation], names: list[str], labels: list[str], notes: list[str]
) -> tuple[int, dict[str, int]]:
    """p_<name>_vs_<first> and its Holm adjustment: per label within the pair, for the Mean across pairs.

    Returns the number of pairs tested (a pair over different images is not, and is left out of the Mean's family)
    and, per tested pair, the size of its label family: the label p-values that exist (Holm counts only tests made).
    """
    base = members[0]
    raw = {name: _paired_p(base, names[0], ev, name, labels, notes) for ev, name in zip(members[1:], names[1:])}
    mean_holm: np.ndarray | list[float] = holm([p[-1] for p in raw.values()]) if raw else []
    for (name, p), p_mean_holm in zip(raw.items(), mean_holm):
        table[f"p_{name}_vs_{names[0]}"] = p
        table[f"p_holm_{name}_vs_{names[0]}"] = [*holm(p[:-1]), p_mean_holm]
    family = {name: int((~np.isnan(p[:-1])).sum()) for name, p in raw.items() if not np.isnan(p[-1])}
    return len(family), family


def _mean_labels(members: list[Evaluation], names: list[str]) -> dict[str, int]:
    """How many labels each evaluation's Mean averages (metrics.csv's n_labels on the Mean row)."""
    out = {}
    for ev, name in zip(members, names):
        row = ev.metrics.loc[ev.metrics["label"].astype(str) == MEAN, "n_labels"]
        value = pd.to_numeric(row, errors="coerce").iloc[0] if len(row) else math.nan
        out[name] = int(value) if not math.isnan(value) else len(ev.labels)
    return out


def _paired_p(
    base: Evaluation, base_name: str, other: Evaluation, name: str, labels: list[str], notes: list[str]
) -> np.ndarray:
    """Two-sided DeLong p-values of `other` against `base` per label then for the Mean; NaN where not paired."""
    blank = np.full(len(labels) + 1, np.nan)
    why = f"p-values of {name} vs {base_name} left blank"
    if len(other.images) != len(base.images) or set(other.images) != set(base.images):
        common = len(np.intersect1d(other.images, base.images))
        notes.append(
            f"{why}: evaluated on different images ({len(base.images)} and {len(other.images)}, {common} in "
            "common); a paired test needs the same test set"
        )
        return blank
    order = pd.Index(other.images).get_indexer(base.images)
    y = base.targets[:, [base.labels.index(label) for label in labels]]
    columns = [other.labels.index(label) for label in labels]
    differ = int((other.targets[order][:, columns] != y).any(axis=1).sum())
    if differ:
        notes.append(f"{why}: the same images with different targets ({differ} image(s) differ)")
        return blank
    scores_base = base.probs[:, [base.labels.index(label) for label in labels]]
    try:
        result = delong_test(y, other.probs[order][:, columns], scores_base)
    except InputError as e:
        raise InputError(f"{other.path} vs {base.path}: {e}") from None
    p = np.append(result["p"], result["mean_p"])
    one_class = [label for label, auc in zip(labels, np.atleast_1d(result["auc_a"])) if np.isnan(auc)]
    flat = [
        label for label, v, auc in zip(labels, p, np.atleast_1d(result["auc_a"])) if np.isnan(v) and not np.isnan(auc)
    ]
    if one_class:
        notes.append(f"{why} for {', '.join(one_class)}: only one class among the images, so no AUC to test")
    if flat:
        notes.append(
            f"{why} for {', '.join(flat)}: the DeLong variance is zero (every image's placement equal in both "
            "models) while the AUCs differ, so no z can be formed"
        )
    return p


def _add_reference(
    table: pd.DataFrame, reference: str | None, labels: list[str], notes: list[str], mean_labels: dict[str, int]
) -> list[str]:
    if reference is None:
        return []
    ref = reference_columns(reference)
    ref.index = [label_key(str(label)) for label in ref.index]
    keys = [label_key(label) for label in labels]
    for column in ref.columns:
        table[column] = [ref[column].get(key, math.nan) for key in [*keys, label_key(MEAN)]]
    published = len(set(ref.index) - {label_key(MEAN)})
    missing = set(ref.index) - {label_key(MEAN)} - set(keys)
    if missing or set(keys) - set(ref.index):
        notes.append(
            f"reference columns: Table 1 covers the {published} ChestX-ray14 labels; its published Means average "
            "those, not the labels compared here"
        )
    fewer = {name: n for name, n in mean_labels.items() if n < published}
    if fewer:
        shown = ", ".join(f"{name} over {n}" for name, n in fewer.items())
        notes.append(
            f"Mean row: the published Means average {published} labels, but {shown} (labels with both classes "
            "among the evaluated images): those Means are not comparable with the published ones"
        )
    return list(ref.columns)


def _best(values: dict[str, float]) -> str:
    """The name with the highest AUC; ties joined with '/'; empty where no AUC is defined."""
    present = {name: v for name, v in values.items() if not math.isnan(v)}
    if not present:
        return ""
    top = max(present.values())
    return "/".join(name for name, v in present.items() if v == top)


def _method(names: list[str], family: dict[str, int], paired: int) -> str:
    text = "AUCs and intervals as each metrics.csv holds them (its bootstrap); * marks the best AUC of a row."
    baseline = names[0]
    if len(names) < 2:
        return f"{text} No tests: a single evaluation."
    if not paired:
        return f"{text} No p-values: no other evaluation holds the same images and targets as {baseline}."
    if len(set(family.values())) == 1:
        sizes = f"{next(iter(family.values()))} label tests"
    else:  # labels without a p-value (one class, zero variance) are not in their pair's family
        sizes = "label tests with a p-value (" + ", ".join(f"{n} for {name}" for name, n in family.items()) + ")"
    return (
        f"{text} p: two-sided paired DeLong test (DeLong et al. 1988) of each evaluation against {baseline} on the "
        "same images; for the Mean, of the mean AUC over labels with both classes, the labels' covariance included. "
        f"p_holm: Holm (1979) over the {sizes} of each pair; for the Mean row, over the {paired} Mean test(s) of "
        "the pairs tested."
    )


# ---- the human-readable view (terminal, Markdown) -----------------------------------------------------------------


def format_p(p: float) -> str:
    if math.isnan(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def display_rows(result: ComparisonResult) -> tuple[list[str], list[list[str]]]:
    """Header and string rows: `AUC [low, high]` per evaluation, `mean ± sd` per group, * after the best."""
    t = result.table
    first = result.baseline
    p_columns = [c for name in result.pairs for c in (f"p_{name}_vs_{first}", f"p_holm_{name}_vs_{first}")]
    header = ["label", *result.names, *(f"{g} (mean ± sd)" for g in result.groups), *p_columns]
    header += [*result.reference, "best"]
    rows = []
    for i, label in enumerate(t["label"]):
        best = set(t["best"][i].split("/"))
        row = [label]
        for name in result.names:
            row.append(_interval(t[f"{name}_auc"][i], t[f"{name}_ci_low"][i], t[f"{name}_ci_high"][i], name in best))
        for group in result.groups:
            row.append(_spread(t[f"{group}_mean"][i], t[f"{group}_sd"][i], group in best))
        row += [format_p(t[c][i]) for c in p_columns]
        row += ["" if math.isnan(t[c][i]) else f"{t[c][i]:.4f}" for c in result.reference]
        row.append(t["best"][i])
        rows.append(row)
    return header, rows


def _interval(auc: float, low: float, high: float, best: bool) -> str:
    if math.isnan(auc):
        return ""
    text = f"{auc:.4f}" if math.isnan(low) or math.isnan(high) else f"{auc:.4f} [{low:.4f}, {high:.4f}]"
    return text + ("*" if best else "")


def _spread(mean: float, sd: float, best: bool) -> str:
    if math.isnan(mean):
        return ""
    return (f"{mean:.4f}" if math.isnan(sd) else f"{mean:.4f} ± {sd:.4f}") + ("*" if best else "")
