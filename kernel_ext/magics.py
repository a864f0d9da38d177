"""``%%dockerfile`` and ``%llb``: the IPython side of the notebook session.

The solve runs in a worker thread; the kernel's main thread waits on it, pumping
progress into the cell's output, so SIGINT (the kernel's interrupt) lands here and is
turned into a cancel of the build.
"""

from __future__ import annotations

import functools
import shlex
import threading
from typing import Any

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from kernel_ext import commands
from kernel_ext.magic_args import HelpShown, MagicParser, UsageError
from kernel_ext.progress_view import LiveProgress
from kernel_ext.session import CellOptions, CellRun, NotebookSession
from kernel_ext.widgets.check_view import warnings_text
from kernel_ext.widgets.result_view import show_result
from solver.errors import BuildError, DockerfileError, LLBookError


def _wait_for_cleanup(done: threading.Event) -> None:
    """Wait until a canceled build has removed its mounts and processes; a second
    interrupt does not cut that short (it would leave them behind)."""
    while True:
        try:
            if done.wait(0.2):
                return
        except KeyboardInterrupt:
            continue


@functools.cache
def dockerfile_parser() -> MagicParser:
    """The cell line's parser, made once per kernel (argparse copies its list defaults per parse)."""
    p = MagicParser(prog="%%dockerfile", description="Add this cell's Dockerfile snippet to the session and build it.")
    p.add_argument("--stage", help="continue this stage instead of the current one")
    p.add_argument("--context", help="build context directory (default: the notebook's directory)")
    p.add_argument("--build-arg", action="append", default=[], metavar="K=V", help="set a build-time variable")
    p.add_argument("--no-cache", action="store_true", help="do not use the cache for this cell's build")
    p.add_argument("--target", help="solve this stage instead of the cell's own end state")
    p.add_argument("--platform", help="target platform, e.g. linux/amd64")
    p.add_argument("--quiet", "-q", action="store_true", help="show only the summary")
    p.add_argument("--id", dest="cell_id", metavar="NAME",
                   help="name this cell's snippet; a later cell with the same --id replaces it, as "
                        "re-running the same cell does")
    from kernel_ext.cell_flags import add_arguments
    add_arguments(p)  # docker build's --network, --add-host, --shm-size, --ulimit, --label, --no-cache-filter,
    # --secret, --ssh (kernel_ext.cell_flags)
    return p


def parse_build_args(values: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not key:
            raise UsageError(f"--build-arg {value!r}: expected KEY=VALUE")
        if not sep:
            import os
            val = os.environ.get(key, "")
        out[key] = val
    return out


def _cell_error(err: BaseException, headline: str) -> BaseException:
    """Make IPython show ``err`` as an error output with our text, no internal traceback."""
    lines = [f"\x1b[31m{type(err).__name__}\x1b[0m: {headline}"] if headline else []
    lines += str(err).splitlines() if not headline else str(err).splitlines()[1:]
    err._render_traceback_ = lambda: lines  # type: ignore[attr-defined]
    return err


@magics_class
class LLBookMagics(Magics):
    """The magics, bound to one kernel's session."""

    def __init__(self, shell: Any, state: "commands.KernelState") -> None:
        super().__init__(shell)
        self.state = state

    @property
    def session(self) -> NotebookSession:
        return self.state.session

    # -- %%dockerfile ---------------------------------------------------------------------
    @cell_magic
    def dockerfile(self, line: str, cell: str) -> None:
        """%%dockerfile [--stage NAME] [--context DIR] [--build-arg K=V]... [--no-cache] [--target T]
        [--platform P] [--quiet] [--network MODE] [--add-host H:IP]... [--shm-size N] [--ulimit U]...
        [--label K=V]... [--no-cache-filter STAGE]... [--secret id=ID,src=PATH]... [--ssh ID[=PATH]]...:
        build this cell's Dockerfile snippet."""
        from kernel_ext.cell_flags import from_args
        try:
            args = dockerfile_parser().parse_args(shlex.split(line))
            options = CellOptions(stage=args.stage, context=args.context,
                                  build_args=parse_build_args(args.build_arg), no_cache=args.no_cache,
                                  target=args.target, platform=args.platform, quiet=args.quiet,
                                  flags=from_args(args))
        except HelpShown:
            return
        except UsageError as err:
            raise _cell_error(err, str(err)) from None
        self.state.last_run = self._run(cell, options, args.cell_id or self.state.current_cell_id)

    def _run(self, text: str, options: CellOptions, cell_id: str | None) -> CellRun | None:
        live = LiveProgress(rich=self.state.rich_display, quiet=options.quiet)
        cancel, done = threading.Event(), threading.Event()
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["run"] = self.session.run_cell(text, cell_id, options,
                                                   progress=live, cancel=cancel)
            except BaseException as err:  # handed to the main thread
                box["error"] = err
            finally:
                done.set()

        # Waiting on an Event, not Thread.join: an interrupted join can mark a live
        # thread as stopped (CPython gh-90882), and the build would be left running.
        threading.Thread(target=work, name="llbook-solve", daemon=True).start()
        interrupted = False
        while not done.is_set():
            try:
                done.wait(0.1)
                live.pump()
            except KeyboardInterrupt:
                interrupted = True
                cancel.set()
                _wait_for_cleanup(done)
        self.state.current_cell_id = None
        if interrupted:
            live.finish("interrupted")
            raise _cell_error(KeyboardInterrupt("build interrupted"), "build interrupted; nothing was kept") from None
        if "error" in box:
            err = box["error"]
            live.finish("failed")
            if isinstance(err, BuildError):
                show_result(self.state, live, error=err, summary="failed")
                self._debug_button(err, options)
            if isinstance(err, (BuildError, DockerfileError, LLBookError)):
                raise _cell_error(err, str(err).splitlines()[0]) from None
            raise err
        run: CellRun = box["run"]
        summary = run.summary
        if run.stale:
            summary += " — stale: " + ", ".join(c.filename for c in run.stale) + " (run them again)"
        live.finish(summary, show=False)  # the result view replaces the progress display
        if run.cell.warnings and not self.state.rich_display and not options.quiet:
            print(warnings_text(run.cell.warnings), flush=True)
        if show_result(self.state, live, run=run, summary=summary) is None:
            live.show_summary(summary)
        return run

    def _debug_button(self, err: BuildError, options: CellOptions) -> None:
        """A failed step's "Debug" button: a JupyterLab terminal with a shell before the step."""
        from kernel_ext.debug_terminal import failed_step, label, opener
        target = failed_step(err.name)
        if target is None or not self.state.rich_display or options.quiet or self.session.buildkit_host:
            return
        from IPython.display import display
        from kernel_ext.widgets.debug_button import DebugButton
        display(DebugButton(label(target), opener(self.session, target)))

    # -- %llb -----------------------------------------------------------------------------
    @line_magic
    def llb(self, line: str) -> Any:
        """%llb graph|layers|export|dump|dockerfile|exec|debug|history|why|status|reset|du|prune|config|check|cache
        [--help]: inspect and use the notebook's build session."""
        try:
            return commands.run(self.state, shlex.split(line))
        except HelpShown:
            return None
        except (UsageError, LLBookError) as err:
            raise _cell_error(err, str(err).splitlines()[0]) from None
