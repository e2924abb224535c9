"""Typer sub-apps of the `commgrid` command line, one module per noun; `cli.py` registers them."""
