"""Argument parsing for the magics: argparse that raises instead of exiting the kernel."""

from __future__ import annotations

import argparse

from solver.errors import LLBookError


class UsageError(LLBookError):
    """Bad arguments to a magic."""


class HelpShown(Exception):
    """--help was printed; nothing else to do."""


class MagicParser(argparse.ArgumentParser):
    """argparse that raises ``UsageError`` (or ``HelpShown``) instead of exiting the kernel."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if message:
            raise UsageError(message.strip())
        raise HelpShown()
