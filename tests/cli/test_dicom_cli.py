from typer.testing import CliRunner

from cxrtool.cli.app import app

IMAGE_READERS = (
    "check",
    "prepare",
    "train-classifier",
    "train-ae",
    "train-joint",
    "evaluate",
    "predict",
    "compress",
    "codec-report",
)


def test_every_command_that_reads_images_takes_dicom_window() -> None:
    runner = CliRunner()
    for name in IMAGE_READERS:
        result = runner.invoke(app, [name, "--help"], terminal_width=200)
        assert result.exit_code == 0 and "--dicom-window" in result.output, name
    assert "--format" in runner.invoke(app, ["decompress", "--help"]).output
