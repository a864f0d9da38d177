"""`llbook check`: registered by `solver.cli` from this module; the code is in `solver.cli_cache`."""

from solver.cli_cache import register_check as register

__all__ = ["register"]
