"""A self-contained HTML report: figures as embedded PNGs and tables, one file that opens
anywhere (mail it, attach it to a ticket): no scripts from elsewhere, no image files beside it.
Figures are drawn with matplotlib's Agg backend (no display needed), selected when a figure is
drawn, never at import.

`propamm report FILE` reads what FILE is: a results file (`score`/`simulate --output`: the
leaderboard with standard errors, edge distributions, capital weights, edge against the
market and, for traced seeds, one simulation over time), a sweep table (`sweep -o`: edge
against each swept parameter) or a training log (`train`'s `log.jsonl`: fitness curves).
Anything else is one line saying what was expected.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

from propamm_jax.errors import PropammError
from propamm_jax.outputs.report_figures import Figure  # noqa: F401 - re-exported
from propamm_jax.outputs.report_training import X_COLUMNS, load_training_log  # noqa: F401

MAX_TRACES = 4  # traced seeds drawn (each is one tall figure)
KINDS = "a results file (.json from score/simulate), a sweep table (sweep -o) or a training log"


@dataclass
class Page:
    """What one report shows: a subtitle line, HTML tables and figures, in page order."""

    meta: str
    tables: list[tuple[str, str, str]] = field(default_factory=list)  # (id, title, html)
    figures: list = field(default_factory=list)


def leaderboard_html(results) -> str:
    """The aggregate table, best mean edge first, with the standard error of each mean
    (sample std / sqrt(simulations)): two means closer than about two SEs are not a ranking."""
    from propamm_jax.outputs.report_figures import standard_error

    frame = results.frame()
    se = {name: standard_error(g["edge"]) for name, g in frame.groupby("strategy")}
    se_vs = {name: standard_error(g["edge_vs_normalizer"]) for name, g in frame.groupby("strategy")}
    rows = sorted(results.aggregate(), key=lambda r: -r["mean_edge"])
    head = ("<tr><th>Rank</th><th>Strategy</th><th>Mean edge</th><th>SE</th><th>Std edge</th>"
            "<th>vs normalizer</th><th>SE vs normalizer</th><th>Sharpe</th>"
            "<th>Final capital %</th></tr>")
    body = "".join(
        f"<tr><td>{i}</td><td>{html.escape(str(r['strategy']))}</td>"
        f"<td>{r['mean_edge']:.4f}</td><td>{se[r['strategy']]:.4f}</td>"
        f"<td>{r['std_edge']:.4f}</td><td>{r['vs_norm']:.4f}</td>"
        f"<td>{se_vs[r['strategy']]:.4f}</td><td>{r['sharpe']:.4f}</td>"
        f"<td>{r['final_cap_pct']:.2f}</td></tr>"
        for i, r in enumerate(rows, start=1))
    return f'<table id="leaderboard">{head}{body}</table>'


def figures(results, training_log=None) -> list:
    """The figures of a results page (and of a training log, if given), in page order."""
    from propamm_jax.outputs.frames import epoch_frame
    from propamm_jax.outputs.report_figures import capital_weight, edge_distribution, edge_vs_market, trace_figure
    from propamm_jax.outputs.report_training import fitness_figure

    if not results.sims:
        raise PropammError("the results file has no simulations to report")
    frame = results.frame()
    out = [edge_distribution(frame)]
    epochs = epoch_frame(results)
    if not epochs.empty:
        out.append(capital_weight(epochs))
    out.append(edge_vs_market(frame))
    for trace in (results.traces or [])[:MAX_TRACES]:
        out.append(trace_figure(trace, results.names()))
    if training_log is not None:
        out.append(fitness_figure(training_log))
    return out


def results_page(results, training_log=None) -> Page:
    cfg = results.config
    traced = len(results.traces or [])
    meta = (f"profile <b>{html.escape(results.engine)}</b> &middot; {len(results.sims)} "
            f"simulations &middot; {cfg.steps} steps, epoch {cfg.epoch_len} &middot; "
            f"strategies: {html.escape(', '.join(results.strategies))}"
            + (f" &middot; {traced} traced seed{'s' if traced > 1 else ''}"
               + (f" (first {MAX_TRACES} drawn)" if traced > MAX_TRACES else "")
               if traced else ""))
    return Page(meta, [("leaderboard-section", "Leaderboard", leaderboard_html(results))],
                figures(results, training_log))


def sweep_page(frame, path) -> Page:
    from propamm_jax.outputs.report_sweep import best_points_html, check_sweep, sweep_figures

    axes = check_sweep(frame, path)
    meta = (f"sweep of {html.escape(', '.join(axes))} &middot; {frame['point'].nunique()} grid "
            f"points x {frame['seed'].nunique()} seeds ({len(frame)} simulations)")
    return Page(meta, [("sweep-best-section", "Best grid points", best_points_html(frame, axes))],
                sweep_figures(frame, axes))


def training_page(log, path) -> Page:
    from propamm_jax.outputs.report_training import fitness_columns, fitness_figure, x_column

    x = x_column(log)
    meta = (f"training log {html.escape(Path(path).name)} &middot; {len(log)} rows, "
            f"{x} {log[x].min():g} to {log[x].max():g} &middot; fitness: "
            f"{html.escape(', '.join(fitness_columns(log)))}")
    return Page(meta, [], [fitness_figure(log)])


# After loading, the page records how many of its figures the browser actually decoded, so
# a headless browser's DOM dump shows whether every image rendered.
_CHECK = """<script>
window.addEventListener("load", function () {
  var imgs = document.querySelectorAll("figure img"), ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].naturalWidth > 0) ok++; }
  document.body.setAttribute("data-figures-rendered", ok + "/" + imgs.length);
});
</script>"""


def html_page(page: Page, title: str) -> str:
    """The page as one HTML string: tables, then figures with their captions."""
    tables = "".join(f'<section id="{tid}"><h2>{html.escape(t)}</h2>{body}</section>'
                     for tid, t, body in page.tables)
    parts = []
    for f in page.figures:
        data = base64.b64encode(f.png).decode("ascii")
        parts.append(f'<section id="{f.id}"><h2>{html.escape(f.title)}</h2><figure>'
                     f'<img alt="{html.escape(f.title)}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{html.escape(f.caption)}</figcaption></figure></section>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }}
img {{ max-width: 100%; }}
figure {{ margin: 0; }}
figcaption {{ color: #444; font-size: 0.92em; margin-top: 0.3em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #bbb; padding: 4px 10px; text-align: right; }}
td:nth-child(2), th:nth-child(2) {{ text-align: left; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>{page.meta}</p>
{tables}
{''.join(parts)}
{_CHECK}
</body></html>
"""


def render(results, training_log=None, title: str = "propamm report") -> str:
    """The results report as one HTML string."""
    return html_page(results_page(results, training_log), title)


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise PropammError(f"{path}: no such file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PropammError(f"{path}: cannot read ({exc.strerror})") from None


def load_page(path: str | Path, training_log=None) -> Page:
    """The page for whatever `path` holds (see the module docstring); one line otherwise."""
    from propamm_jax.outputs.frames import read_frame
    from propamm_jax.outputs.report_training import training_log_from
    from propamm_jax.outputs.results import Results

    path = Path(path)
    data = _read_bytes(path)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".csv"):
        frame = read_frame(path)
        if all(c in frame.columns for c in ("point", "seed", "edge")):
            return sweep_page(frame, path)
        if any(c in frame.columns for c in X_COLUMNS):
            return training_page(training_log_from(frame.to_dict(orient="records"), path), path)
        raise PropammError(f"{path}: a {suffix[1:]} table that is neither a sweep table "
                           "(point, seed, edge columns) nor a training log (a generation "
                           "column); a report reads " + KINDS)
    if suffix == ".jsonl":
        return training_page(load_training_log(path), path)
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise PropammError(f"{path}: not JSON, Parquet or CSV; a report reads {KINDS}") from None
    if isinstance(parsed, dict) and "sims" in parsed:
        results = Results.from_json(parsed, str(path))
        if not results.sims:
            raise PropammError(f"{path}: the results file has no simulations to report")
        try:
            return results_page(results, training_log)
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise PropammError(f"{path}: not a results file in the golden schema "
                               f"({type(exc).__name__}: {exc})") from None
    if isinstance(parsed, list) and parsed and isinstance(parsed[0], dict) and all(
            c in parsed[0] for c in ("point", "seed", "edge")):
        import pandas as pd

        return sweep_page(pd.DataFrame.from_records(parsed), path)
    if isinstance(parsed, (list, dict)) and (isinstance(parsed, list) or "history" in parsed):
        return training_page(training_log_from(parsed, path), path)
    raise PropammError(f"{path}: JSON that is none of {KINDS}")


def write_report(results_path: str | Path, output: str | Path,
                 training_log: str | Path | None = None) -> Path:
    """Reads a results file, sweep table or training log (and optionally a training log to
    add to a results page) and writes the HTML report."""
    output = Path(output)
    if output.suffix.lower() not in (".html", ".htm"):
        raise PropammError(f"{output}: the report is written as .html")
    if not output.parent.is_dir():
        raise PropammError(f"{output}: the folder {output.parent} does not exist")
    log = load_training_log(training_log) if training_log is not None else None
    page = load_page(results_path, log)
    if log is not None and not any(f.id == "fitness" for f in page.figures):
        raise PropammError(f"{training_log}: --training-log goes with a results file; "
                           f"pass the log itself to plot it alone")
    text = html_page(page, title=f"propamm report: {Path(results_path).name}")
    try:
        output.write_text(text)
    except OSError as exc:
        raise PropammError(f"{output}: cannot write ({exc.strerror or exc})") from None
    return output
