"""Drive a real IPython kernel the way JupyterLab does: execute requests that carry
``metadata.cellId``, outputs collected from iopub (display updates applied in place)."""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.manager import KernelManager


@dataclass
class Execution:
    status: str  # ok | error
    outputs: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """All text of the outputs, as a reader of the cell would see it."""
        parts = []
        for out in self.outputs:
            if out["output_type"] == "stream":
                parts.append(out["text"])
            elif out["output_type"] in ("display_data", "execute_result"):
                parts.append(out["data"].get("text/plain", ""))
            elif out["output_type"] == "error":
                parts.append("\n".join(out["traceback"]))
        return "\n".join(parts)


class Kernel:
    """A kernel started with ``env``; stop it with ``shutdown``."""

    def __init__(self, env: dict[str, str], cwd: str) -> None:
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env=env, cwd=cwd)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def execute(self, code: str, cell_id: str | None = None, timeout: float = 300,
                on_output: Any = None) -> Execution:
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                   "allow_stdin": False, "stop_on_error": True}
        msg = self.kc.session.msg("execute_request", content)
        if cell_id is not None:
            msg["metadata"]["cellId"] = cell_id
        self.kc.shell_channel.send(msg)
        msg_id = msg["header"]["msg_id"]
        result = Execution("ok")
        by_display: dict[str, int] = {}
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"cell did not finish in {timeout} s: {code[:60]!r}")
            try:
                reply = self.kc.get_iopub_msg(timeout=min(remaining, 1))
            except queue.Empty:
                continue
            if reply["parent_header"].get("msg_id") != msg_id and reply["msg_type"] != "update_display_data":
                continue
            kind, body = reply["msg_type"], reply["content"]
            if kind == "status" and body["execution_state"] == "idle":
                break
            if kind == "stream":
                result.outputs.append({"output_type": "stream", "text": body["text"]})
            elif kind in ("display_data", "execute_result"):
                result.outputs.append({"output_type": kind, "data": body["data"]})
                display_id = body.get("transient", {}).get("display_id")
                if display_id:
                    by_display[display_id] = len(result.outputs) - 1
            elif kind == "update_display_data":
                display_id = body.get("transient", {}).get("display_id")
                if display_id in by_display:
                    result.outputs[by_display[display_id]] = {"output_type": "display_data", "data": body["data"]}
            elif kind == "error":
                result.status = "error"
                result.error = body
                result.outputs.append({"output_type": "error", "ename": body["ename"],
                                       "evalue": body["evalue"], "traceback": body["traceback"]})
            if on_output is not None:
                on_output(reply)
        return result

    def restart(self) -> None:
        self.km.restart_kernel(now=True)
        self.kc.wait_for_ready(timeout=60)

    def interrupt(self) -> None:
        self.km.interrupt_kernel()

    def shutdown(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)
