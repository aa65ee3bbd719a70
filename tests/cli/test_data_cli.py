import json
import subprocess
import sys

import pandas as pd
from typer.testing import CliRunner

from cxrtool.cli.app import app

runner = CliRunner()


def test_help_lists_commands_and_version():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("split", "synth", "check"):
        assert name in result.output
    assert runner.invoke(app, ["--version"]).output.startswith("cxrtool ")
    for name in ("split", "synth", "check"):
        assert "Example" in runner.invoke(app, [name, "--help"]).output


def test_split_writes_csv_sidecar_and_table(synth_small, tmp_path):
    out = tmp_path / "s.csv"
    result = runner.invoke(
        app, ["split", str(synth_small), "--out", str(out), "--images", str(synth_small), "--seed", "4"]
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert list(frame.columns[:6]) == ["image", "patient_id", "split", "view", "age", "sex"]
    assert frame.columns[-1] == "path" and frame["path"].str.startswith("images/").all()
    sidecar = json.loads((tmp_path / "s.json").read_text())
    assert sidecar["config"]["seed"] == 4 and sidecar["cxrtool_version"]
    assert "| images" in result.stdout  # the table, in full Markdown off a terminal
    again = runner.invoke(app, ["split", str(synth_small), "--out", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_bad_input_exits_2_without_traceback(tmp_path):
    result = runner.invoke(app, ["split", str(tmp_path / "nowhere"), "--out", str(tmp_path / "s.csv")])
    assert result.exit_code == 2
    assert "nowhere" in result.output and "Traceback" not in result.output
    (tmp_path / "Data_Entry_2017.csv").write_text("")
    result = runner.invoke(app, ["split", str(tmp_path), "--out", str(tmp_path / "s.csv")])
    assert result.exit_code == 2 and "is empty" in result.output
    assert not (tmp_path / "s.csv").exists()


def test_check_exit_codes(synth_small, tmp_path):
    assert runner.invoke(app, ["check", str(synth_small), "--images", str(synth_small)]).exit_code == 0
    broken = tmp_path / "images"
    broken.mkdir()
    names = sorted(p.name for p in (synth_small / "images").iterdir())
    for name in names[:-1]:
        (broken / name).write_bytes((synth_small / "images" / name).read_bytes())
    (broken / names[0]).write_bytes(b"junk")
    result = runner.invoke(app, ["check", str(synth_small), "--images", str(broken)])
    assert result.exit_code == 3
    assert "| missing" in result.stdout and names[-1] in result.stdout and names[0] in result.stdout


def test_light_commands_do_not_import_torch(synth_small, tmp_path):
    code = (
        "import sys\n"
        "from cxrtool.cli.app import app\n"
        f"args = [['--help'], ['split', {str(synth_small)!r}, '--out', {str(tmp_path / 'x.csv')!r}],"
        f" ['synth', {str(tmp_path / 'syn')!r}, '--n', '5', '--size', '32'],"
        f" ['check', {str(synth_small)!r}, '--images', {str(synth_small)!r}]]\n"
        "for a in args:\n"
        "    try:\n"
        "        app(a)\n"
        "    except SystemExit as e:\n"
        "        assert e.code in (0, None), (a, e.code)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
