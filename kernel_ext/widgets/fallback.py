"""Static fallbacks that stay visible where widgets do not render.

A widget output is shown by nbconvert only as its widget view when the notebook stores
widget state (``nbconvert --execute`` does), and that view needs JavaScript from a CDN,
so the HTML/SVG inside the widget's own bundle would never be seen offline. Each view is
therefore followed by a second, plain HTML output wrapped in ``llbook-static-fallback``;
``llbook.css``, which the widgets load into the page when they render, hides it. So:
JupyterLab, Notebook 7 and VS Code show the live widget once; nbconvert, GitHub and
other viewers show the static DAG SVG and layer summary.
"""

from __future__ import annotations

from typing import Any

FALLBACK_CLASS = "llbook-static-fallback"


class StaticFallback:
    """An HTML (and text) output that widget front ends hide."""

    def __init__(self, html_body: str, text: str) -> None:
        self.html_body, self.text = html_body, text

    def _repr_mimebundle_(self, **_kwargs: Any) -> dict[str, str]:
        return {"text/plain": self.text, "text/html": f"<div class='{FALLBACK_CLASS}'>{self.html_body}</div>"}


class WithFallback:
    """A widget shown together with its static fallback (what ``%llb graph`` etc. return)."""

    def __init__(self, widget: Any) -> None:
        self.widget = widget

    def fallback(self) -> StaticFallback:
        return StaticFallback(self.widget.static_html(), self.widget.static_text())

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget)
        display(self.fallback())
