"""Static HTML pages: the run's ``index.html`` and the demo's results page."""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any, Sequence

log = logging.getLogger("sesim")


def _esc(x: Any) -> str:
    return html.escape(str(x))


STYLE = """body{font-family:system-ui,sans-serif;margin:24px;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
img{image-rendering:pixelated;max-width:100%}code{background:#f4f4f4;padding:1px 4px}"""


def table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    """An HTML table; cells are escaped text unless they are (``"img"``, path) tuples."""
    def cell(c: Any, tag: str) -> str:
        if isinstance(c, tuple) and c and c[0] == "img":
            return f'<{tag}><img src="{_esc(c[1])}"></{tag}>'
        return f"<{tag}>{_esc(c)}</{tag}>"
    head = "<tr>" + "".join(cell(h, "th") for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(cell(c, "td") for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def write_page(path: str | Path, title: str, body: str) -> None:
    Path(path).write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>"
                          f"<style>{STYLE}</style></head><body><h1>{_esc(title)}</h1>{body}</body></html>\n")


def write_run_index(run_dir: str | Path, config: dict[str, Any], last_logs: dict[str, Any] | None) -> None:
    """``index.html`` of a run: latest losses, loss and metric curves (redrawn from ``log.jsonl`` on
    every call), the sample grid of every checkpoint newest first, the resolved config."""
    run_dir = Path(run_dir)
    parts = [f"<p>Run folder <code>{_esc(run_dir.resolve())}</code>. Sample grids show test inputs "
             "(left) and their translations (right).</p>"]
    if last_logs:
        parts.append("<h2>Latest losses</h2>" + table([[k, f"{v:.4g}" if isinstance(v, float) else v]
                                                      for k, v in last_logs.items()]))
    parts.append(_curves_html(run_dir))
    samples = sorted((run_dir / "samples").glob("step_*.png"), reverse=True)
    parts.append(f"<h2>Samples</h2><p>{len(samples)} sample grid(s), newest first.</p>")
    for s in samples:
        step = s.stem.removeprefix("step_").lstrip("0") or "0"
        parts.append(f"<h3>step {_esc(step)}</h3><img src='samples/{_esc(s.name)}'>")
    parts.append("<h2>Configuration</h2><pre>" + _esc(json.dumps(config, indent=2)) + "</pre>")
    write_page(run_dir / "index.html", f"sesim run {run_dir.name}", "\n".join(parts))


def _curves_html(run_dir: Path) -> str:
    """The curves section; drawing problems are reported on the page and never stop training."""
    from .curves import write_run_curves

    try:
        written = write_run_curves(run_dir)
    except Exception as err:  # noqa: BLE001 - a figure must never kill a training run
        log.warning("could not draw the curves of %s: %s", run_dir, err)
        return f"<h2>Curves</h2><p>Curves could not be drawn: <code>{_esc(err)}</code></p>"
    if not written:
        return "<h2>Curves</h2><p>No logged steps yet.</p>"
    titles = {"losses": "Losses", "metrics": "Evaluation metrics"}
    return "<h2>Curves</h2>" + "".join(f"<h3>{titles[kind]}</h3><img src='plots/{kind}.png'>" for kind in written)
