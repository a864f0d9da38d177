"""Debian's chromium for Playwright: found on PATH, installed through apt when we are root
and it is missing (CI), else the test is skipped with the reason. Never downloads a browser."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
LAUNCH_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> tuple[str | None, str]:
    """The chromium binary, or None and why it is missing."""
    if Path(CHROMIUM).exists():
        return CHROMIUM, ""
    found = shutil.which("chromium")
    if found:
        return found, ""
    if os.geteuid() != 0:
        return None, "Debian's chromium is not installed (apt-get install chromium) and we are not root"
    if shutil.which("apt-get") is None:
        return None, "chromium is missing and there is no apt-get to install it"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                          capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, env=env, timeout=600)
        proc = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                              capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0 or not Path(CHROMIUM).exists():
        return None, f"apt-get install chromium failed: {proc.stderr[-500:]}"
    return CHROMIUM, ""
