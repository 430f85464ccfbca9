"""A self-contained HTML report of a results file: figures as embedded PNGs and the leaderboard.

One file that opens anywhere (mail it, attach it to a ticket): no scripts from elsewhere, no
image files beside it. Figures are drawn with matplotlib's Agg backend (no display needed),
selected when a figure is drawn, never at import.

Sections: the leaderboard table; the edge distribution per strategy; the mean capital weight
per epoch with an interquartile band over simulations; edge against volatility and against
the normalizer's fee; for a training log (optional), its fitness curves.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from propamm_jax.errors import PropammError

X_COLUMNS = ("generation", "iteration", "step", "epoch")


@dataclass(frozen=True)
class Figure:
    """One section of the report: an anchor id, a title, a caption and the PNG bytes."""

    id: str
    title: str
    caption: str
    png: bytes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def edge_distribution(frame) -> bytes:
    """Histogram of final edge per strategy, with the normalizer's edge for scale."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = list(dict.fromkeys(frame["strategy"]))
    values = [frame.loc[frame["strategy"] == n, "edge"].to_numpy() for n in names]
    norm = frame.drop_duplicates("seed")["normalizer_edge"].to_numpy()
    everything = np.concatenate(values + [norm])
    bins = np.histogram_bin_edges(everything, bins=min(40, max(10, len(norm) // 3)))
    for name, v in zip(names, values):
        ax.hist(v, bins=bins, alpha=0.55, label=f"{name} (mean {v.mean():.2f})")
    ax.hist(norm, bins=bins, histtype="step", color="black", label="normalizer")
    ax.set_xlabel("final edge (Y)")
    ax.set_ylabel("simulations")
    ax.legend(fontsize=8)
    return _png(fig)


def capital_weight(epochs) -> bytes:
    """Mean capital weight per epoch, with the interquartile range over simulations."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, group in epochs.groupby("strategy", sort=False):
        by_epoch = group.groupby("epoch")["capital_weight"]
        x = np.asarray(by_epoch.mean().index) + 1
        mean = by_epoch.mean().to_numpy()
        lo, hi = by_epoch.quantile(0.25).to_numpy(), by_epoch.quantile(0.75).to_numpy()
        line, = ax.plot(x, mean, marker="o", label=name)
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("epoch (weight after its rebalance)")
    ax.set_ylabel("capital weight")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    return _png(fig)


def edge_vs_market(frame) -> bytes:
    """Edge against the seed's volatility and against the normalizer's fee, per strategy,
    with binned means: what drives the edge."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, column, label in ((axes[0], "market_sigma", "volatility sigma (per step)"),
                              (axes[1], "market_norm_fee_bps", "normalizer fee (bps)")):
        for name, group in frame.groupby("strategy", sort=False):
            x, y = group[column].to_numpy(float), group["edge"].to_numpy(float)
            dots = ax.scatter(x, y, s=10, alpha=0.45, label=name)
            centers, means = _binned_means(x, y)
            ax.plot(centers, means, color=dots.get_facecolor()[0][:3], linewidth=2)
        ax.set_xlabel(label)
        ax.axhline(0.0, color="grey", linewidth=0.8)
    axes[0].set_ylabel("final edge (Y)")
    axes[1].legend(fontsize=8)
    return _png(fig)


def _binned_means(x: np.ndarray, y: np.ndarray, bins: int = 8):
    if len(np.unique(x)) < 2:
        return x[:1], y[:1]
    edges = np.quantile(x, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    centers, means = [], []
    for b in range(bins):
        sel = which == b
        if sel.any():
            centers.append(x[sel].mean())
            means.append(y[sel].mean())
    return np.array(centers), np.array(means)


def fitness_curves(log) -> bytes:
    """Every numeric column of a training log against its generation (or step) column."""
    from pandas.api.types import is_numeric_dtype

    plt = _pyplot()
    x_name = next(c for c in X_COLUMNS if c in log.columns)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for column in log.columns:
        if column != x_name and is_numeric_dtype(log[column]):
            ax.plot(log[x_name], log[column], label=column)
    ax.set_xlabel(x_name)
    ax.set_ylabel("fitness")
    ax.legend(fontsize=8)
    return _png(fig)


def load_training_log(path: str | Path):
    """A training log: a table (JSON records, CSV or Parquet, or JSON `{"history": [...]}`)
    with a generation/iteration/step column and numeric fitness columns."""
    import json

    import pandas as pd
    from pandas.api.types import is_numeric_dtype

    from propamm_jax.frames import read_frame

    path = Path(path)
    if path.suffix.lower() == ".json" and path.exists():
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise PropammError(f"{path}: not valid JSON ({exc})") from None
        if isinstance(data, dict) and isinstance(data.get("history"), list):
            data = data["history"]
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise PropammError(f"{path}: a training log is a list of records or "
                               '{"history": [records]}')
        log = pd.DataFrame.from_records(data)
    else:
        log = read_frame(path)
    if not any(c in log.columns for c in X_COLUMNS):
        raise PropammError(f"{path}: a training log needs a column named one of "
                           f"{', '.join(X_COLUMNS)}")
    x = next(c for c in X_COLUMNS if c in log.columns)
    numeric = [c for c in log.columns if c != x and is_numeric_dtype(log[c])]
    if log.empty or not numeric:
        raise PropammError(f"{path}: the training log has no numeric fitness column")
    return log


def figures(results, training_log=None) -> list[Figure]:
    """The report's figures, in page order."""
    from propamm_jax.frames import epoch_frame

    if not results.sims:
        raise PropammError("the results file has no simulations to report")
    frame = results.frame()
    out = [
        Figure("edge-distribution", "Edge distribution per strategy",
               f"Final edge over {len(results.sims)} simulations; black: the normalizer.",
               edge_distribution(frame)),
    ]
    epochs = epoch_frame(results)
    if not epochs.empty:
        out.append(Figure("capital-weight", "Capital weight per epoch",
                          "Mean weight after each epoch's rebalance; band: 25th to 75th "
                          "percentile over simulations.", capital_weight(epochs)))
    out.append(Figure("edge-vs-market", "Edge against volatility and the normalizer's fee",
                      "One dot per (simulation, strategy); lines: means in quantile bins.",
                      edge_vs_market(frame)))
    if training_log is not None:
        out.append(Figure("fitness", "Training fitness", "Fitness curves of the training log.",
                          fitness_curves(training_log)))
    return out


def leaderboard_html(results) -> str:
    """The aggregate table, best mean edge first."""
    rows = sorted(results.aggregate(), key=lambda r: -r["mean_edge"])
    head = ("<tr><th>Rank</th><th>Strategy</th><th>Mean edge</th><th>Std edge</th>"
            "<th>vs normalizer</th><th>Sharpe</th><th>Final capital %</th></tr>")
    body = "".join(
        f"<tr><td>{i}</td><td>{html.escape(str(r['strategy']))}</td>"
        f"<td>{r['mean_edge']:.4f}</td><td>{r['std_edge']:.4f}</td>"
        f"<td>{r['vs_norm']:.4f}</td><td>{r['sharpe']:.4f}</td>"
        f"<td>{r['final_cap_pct']:.2f}</td></tr>"
        for i, r in enumerate(rows, start=1))
    return f'<table id="leaderboard">{head}{body}</table>'


# After loading, the page records how many of its figures the browser actually decoded, so
# a headless browser's DOM dump shows whether every image rendered.
_CHECK = """<script>
window.addEventListener("load", function () {
  var imgs = document.querySelectorAll("figure img"), ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].naturalWidth > 0) ok++; }
  document.body.setAttribute("data-figures-rendered", ok + "/" + imgs.length);
});
</script>"""


def render(results, training_log=None, title: str = "propamm report") -> str:
    """The report as one HTML string."""
    cfg = results.config
    parts = []
    for f in figures(results, training_log):
        data = base64.b64encode(f.png).decode("ascii")
        parts.append(f'<section id="{f.id}"><h2>{html.escape(f.title)}</h2><figure>'
                     f'<img alt="{html.escape(f.title)}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{html.escape(f.caption)}</figcaption></figure></section>")
    meta = (f"profile <b>{html.escape(results.engine)}</b> &middot; {len(results.sims)} "
            f"simulations &middot; {cfg.steps} steps, epoch {cfg.epoch_len} &middot; "
            f"strategies: {html.escape(', '.join(results.strategies))}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }}
img {{ max-width: 100%; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #bbb; padding: 4px 10px; text-align: right; }}
td:nth-child(2), th:nth-child(2) {{ text-align: left; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>{meta}</p>
<section id="leaderboard-section"><h2>Leaderboard</h2>{leaderboard_html(results)}</section>
{''.join(parts)}
{_CHECK}
</body></html>
"""


def write_report(results_path: str | Path, output: str | Path,
                 training_log: str | Path | None = None) -> Path:
    """Reads a results file (and optionally a training log) and writes the HTML report."""
    from propamm_jax.results import Results

    output = Path(output)
    if output.suffix.lower() not in (".html", ".htm"):
        raise PropammError(f"{output}: the report is written as .html")
    results = Results.load(results_path)
    log = load_training_log(training_log) if training_log is not None else None
    page = render(results, log, title=f"propamm report: {Path(results_path).name}")
    try:
        output.write_text(page)
    except OSError as exc:
        raise PropammError(f"{output}: cannot write ({exc.strerror or exc})") from None
    return output
