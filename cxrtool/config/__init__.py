"""Typed, frozen configurations of the commands, validated on construction. Torch-free: `--help`, `split` and
`synth` import them without torch. Each field carries its command-line help and default (`fields.option`), so an
option is declared once and `cxrtool.cli.config_options` turns the fields into Typer options."""
