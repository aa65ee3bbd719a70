"""The `cxrtool` command line: a thin table of Typer commands over the library."""
