from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests_support import make_eval
from typer.testing import CliRunner

from cxrtool.cli.app import app
from cxrtool.data.labels import LABELS
from cxrtool.evaluation.eval_dir import MEAN

runner = CliRunner()


def fake_eval(path: Path, **kwargs) -> Path:
    return make_eval(path, truth_seed=99, **kwargs)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("cmp")
    made = {
        "base": fake_eval(root / "base", signal=0.5, seed=1),
        "better": fake_eval(root / "better", signal=1.5, seed=2),
        "s1": fake_eval(root / "s1", signal=1.0, seed=3),
        "s2": fake_eval(root / "s2", signal=1.0, seed=4),
        "shifted": fake_eval(root / "shifted", signal=1.0, seed=5, first_image=20),
    }
    return {name: str(path) for name, path in made.items()}


def test_prints_table_with_p_values_and_method(dirs):
    result = runner.invoke(app, ["compare", dirs["base"], dirs["better"]])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| label"))
    assert "p_better_vs_base" in header and "p_holm_better_vs_base" in header and header.rstrip(" |").endswith("best")
    mean = next(line for line in lines if line.startswith("| Mean"))
    assert "]*" in mean and "<0.001" in mean
    assert "DeLong" in lines[-1] and "Holm" in lines[-1]  # the method, below the Markdown table
    assert "DeLong" in result.stderr


def test_different_images_blank_p_and_exit_0(dirs):
    result = runner.invoke(app, ["compare", dirs["base"], dirs["shifted"], "--names", "a,b"])
    assert result.exit_code == 0, result.output
    assert "different images" in result.stderr and "different images" not in result.stdout
    mean = next(line for line in result.stdout.splitlines() if line.startswith("| Mean"))
    cells = [c.strip() for c in mean.strip("|").split("|")]
    assert cells[3:5] == ["", ""] and cells[1].startswith("0.") and cells[2].startswith("0.")


def test_names_count_and_bad_inputs_exit_2(dirs, tmp_path):
    result = runner.invoke(app, ["compare", dirs["base"], dirs["better"], "--names", "a,b,c"])
    assert result.exit_code == 2 and "--names" in result.stderr and "Traceback" not in result.output
    result = runner.invoke(app, ["compare", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "evaluation directory" in result.stderr
    result = runner.invoke(app, ["compare", dirs["base"], "--reference", "both"])
    assert result.exit_code == 2 and "--reference" in result.stderr
    result = runner.invoke(app, ["compare", dirs["base"], "--out", str(tmp_path / "t.txt")])
    assert result.exit_code == 2 and "--out" in result.stderr
    result = runner.invoke(app, ["compare", "--group", "g"])
    assert result.exit_code == 2 and "NAME=EVAL1" in result.stderr
    result = runner.invoke(app, ["compare"])
    assert result.exit_code == 2 and "at least one EVAL" in result.stderr


def test_reference_all_shows_published_means(dirs):
    result = runner.invoke(app, ["compare", dirs["base"], "--reference", "all"])
    assert result.exit_code == 0, result.output
    mean = next(line for line in result.stdout.splitlines() if line.startswith("| Mean"))
    assert "0.8226" in mean and "0.8233" not in mean
    for value in ("0.8220", "0.8216", "0.8221", "0.8131"):
        assert value in mean


def test_out_csv_columns_and_overwrite(dirs, tmp_path):
    out = tmp_path / "table.csv"
    args = ["compare", dirs["base"], dirs["better"], "--names", "d121,aecnn", "--reference", "paper", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    table = pd.read_csv(out)
    assert list(table.columns) == [
        "label",
        "d121_auc",
        "d121_ci_low",
        "d121_ci_high",
        "aecnn_auc",
        "aecnn_ci_low",
        "aecnn_ci_high",
        "p_aecnn_vs_d121",
        "p_holm_aecnn_vs_d121",
        "ref_d121_paper",
        "ref_aecnn_paper",
        "best",
    ]
    assert list(table["label"]) == [*LABELS, MEAN] and (table["best"] == "aecnn").all()
    assert out.read_text().startswith("label,")  # a pure CSV: one header row, no comment lines
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0


def test_out_markdown_and_groups(dirs, tmp_path):
    out = tmp_path / "table.md"
    args = ["compare", dirs["base"], "--group", f"seeds={dirs['s1']},{dirs['s2']}", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "| label" in text and "seeds (mean ± sd)" in text and "p_seeds_1_vs_base" in text and "DeLong" in text
    csv = tmp_path / "table.csv"
    assert runner.invoke(app, [*args[:-1], str(csv)]).exit_code == 0
    table = pd.read_csv(csv)
    runs = np.stack([table["seeds_1_auc"], table["seeds_2_auc"]])
    np.testing.assert_allclose(table["seeds_mean"], runs.mean(axis=0))
    np.testing.assert_allclose(table["seeds_sd"], runs.std(axis=0, ddof=1))


def test_help_has_an_example():
    result = runner.invoke(app, ["compare", "--help"])
    assert result.exit_code == 0 and "Example" in result.output
