"""The `llbook` command line, a front end of the engine: one module per subcommand.

`main.py` is the entry point (`llbook = "solver.cli.main:main"`, `python -m solver.cli`);
it registers only the named subcommand's module. This file imports nothing, so that the
notebook kernel can use `solver.cli.progress` without the CLI's start-up patches.
"""
