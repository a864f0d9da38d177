"""The "Debug" button of a failed cell and of a DAG vertex: asks the kernel for a terminal
running ``llbook debug`` and opens it in JupyterLab (``debug_button.js``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from solver.errors import LLBookError

HERE = Path(__file__).parent


class DebugButton(anywidget.AnyWidget):
    _esm = HERE / "debug_button.js"
    _css = HERE / "llbook.css"

    label = traitlets.Unicode("").tag(sync=True)  # which state the shell opens in
    terminal = traitlets.Unicode("").tag(sync=True)  # the terminal's name, once it runs
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(self, label: str, opener: Callable[[], str], **kwargs: Any) -> None:
        self.opener = opener
        super().__init__(label=label, **kwargs)
        self.on_msg(self._on_message)

    def start_terminal(self) -> str:
        """Start the terminal (the kernel's side of a click); its name."""
        try:
            self.terminal = self.opener()
            self.error = ""
        except LLBookError as err:
            self.error = str(err)
        return self.terminal

    def _on_message(self, widget: Any, content: dict[str, Any], buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "open":
            self.start_terminal()
