"""Helpers for real-browser tests: a JupyterLab server on loopback and Debian's chromium
driven by Playwright (never a downloaded browser)."""
