"""A sweep table in the report (`propamm sweep -o sweep.parquet`): edge against each swept
parameter with bands, a heat map for two-parameter grids, and the best grid points.

Each axis is drawn as a marginal: at each of its values, the mean over the seeds and over the
other axes' values. The solid band is the mean's 95% interval (1.96 standard errors over the
rows at that value); the hatched band the 25th to 75th percentile of single simulations.
"""

from __future__ import annotations

import html

import numpy as np

from propamm_jax.errors import PropammError
from propamm_jax.outputs.report_axes import png, pyplot, robust_limits
from propamm_jax.outputs.report_figures import Figure

REQUIRED = ("point", "seed", "edge", "normalizer_edge", "edge_vs_normalizer")
METRICS = ("edge", "final_capital_weight", "normalizer_edge", "edge_vs_normalizer")


def is_sweep(frame) -> bool:
    return all(c in frame.columns for c in REQUIRED)


def sweep_axes(frame) -> list[str]:
    """The swept parameters: every column that is not an index, metric, opponent edge or
    market parameter."""
    return [c for c in frame.columns if c not in REQUIRED + METRICS
            and not str(c).startswith(("market_", "edge["))]


def check_sweep(frame, path) -> list[str]:
    if not is_sweep(frame):
        raise PropammError(f"{path}: not a sweep table (needs the columns "
                           f"{', '.join(REQUIRED)} that `propamm sweep -o` writes)")
    axes = sweep_axes(frame)
    if not axes:
        raise PropammError(f"{path}: a sweep table without a swept parameter column")
    from pandas.api.types import is_numeric_dtype

    for column in axes + list(REQUIRED):
        if not is_numeric_dtype(frame[column]):
            raise PropammError(f"{path}: sweep column {column!r} is not numeric")
    return axes


def edge_by_parameter(frame, axes: list[str]) -> Figure:
    """One panel per swept parameter: mean edge with its 95% interval and interquartile band,
    the normalizer's mean dashed."""
    plt = pyplot()
    cols = min(2, len(axes))
    rows = -(-len(axes) // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(11, 3.8 * rows), squeeze=False, sharey=True)
    limits = robust_limits(frame["edge"].to_numpy(float))
    for ax, name in zip(grid.ravel(), axes):
        g = frame.groupby(name)
        x = np.asarray(g["edge"].mean().index, float)
        mean, sem = g["edge"].mean().to_numpy(), g["edge"].sem().fillna(0).to_numpy()
        q1, q3 = g["edge"].quantile(0.25).to_numpy(), g["edge"].quantile(0.75).to_numpy()
        ax.fill_between(x, limits.clip(q1), limits.clip(q3), facecolor="none", hatch="///",
                        edgecolor="C0", alpha=0.5, linewidth=0, label="25th-75th percentile")
        ax.fill_between(x, mean - 1.96 * sem, mean + 1.96 * sem, color="C0", alpha=0.45,
                        linewidth=0, label="mean \u00b1 1.96 SE")
        ax.plot(x, mean, color="C0", marker="o", markersize=4, label="mean edge")
        ax.plot(x, g["normalizer_edge"].mean().to_numpy(), color="black", linestyle="--",
                linewidth=1, label="normalizer (mean)")
        best = int(np.argmax(mean))
        ax.annotate(f"best {x[best]:g}: {mean[best]:,.1f}", (x[best], mean[best]),
                    textcoords="offset points", xytext=(0, -18), ha="center", fontsize=8,
                    bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.7"})
        ax.set_xlabel(name)
        ax.set_ylim(limits.lo, limits.hi)
        ax.grid(alpha=0.3)
    for ax in grid.ravel()[len(axes):]:
        ax.set_visible(False)
    grid[0, 0].set_ylabel("final edge (Y)")
    fig.legend(*grid[0, 0].get_legend_handles_labels(), loc="upper center", ncol=4,
               fontsize=8, bbox_to_anchor=(0.5, 1.05), frameon=False)
    fig.tight_layout()
    n_seeds = frame["seed"].nunique()
    caption = (f"Mean final edge of the swept pool at each value of each swept parameter, over "
               f"{n_seeds} seeds" + (" and the other parameters' values" if len(axes) > 1
                                     else "") + "; solid band: the mean's 95% interval; "
               "hatched band: 25th to 75th percentile of single simulations; dashed: the normalizer."
               + limits.note("band edges"))
    return Figure("sweep-edge", "Edge against each swept parameter", caption, png(fig))


def heat_map(frame, axes: list[str]) -> Figure:
    """Mean edge over the grid of two swept parameters."""
    plt = pyplot()
    a, b = axes
    table = frame.groupby([a, b])["edge"].mean().unstack(b)
    fig, ax = plt.subplots(figsize=(9, 6))
    image = ax.imshow(table.to_numpy(), origin="lower", aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(table.index)), [f"{v:g}" for v in table.index])
    ax.set_xticks(range(len(table.columns)), [f"{v:g}" for v in table.columns], rotation=45)
    step_y, step_x = max(1, len(table.index) // 12), max(1, len(table.columns) // 12)
    ax.set_yticks(ax.get_yticks()[::step_y])
    ax.set_xticks(ax.get_xticks()[::step_x])
    ax.set_ylabel(a)
    ax.set_xlabel(b)
    fig.colorbar(image, ax=ax, label="mean final edge (Y)")
    i, j = np.unravel_index(np.nanargmax(table.to_numpy()), table.shape)
    ax.scatter([j], [i], marker="*", s=200, color="white", edgecolors="black")
    fig.tight_layout()
    caption = (f"Mean final edge over the {a} x {b} grid; star: the best grid point "
               f"({a} {table.index[i]:g}, {b} {table.columns[j]:g}).")
    return Figure("sweep-grid", f"Edge over {a} and {b}", caption, png(fig))


def sweep_figures(frame, axes: list[str]) -> list[Figure]:
    out = [edge_by_parameter(frame, axes)]
    if len(axes) == 2:
        out.append(heat_map(frame, axes))
    return out


def best_points_html(frame, axes: list[str], top: int = 10) -> str:
    """The best grid points by mean edge, with standard errors."""
    g = frame.groupby("point")
    table = g[axes].first()
    table["mean"], table["se"] = g["edge"].mean(), g["edge"].sem().fillna(0.0)
    table["vs_norm"], table["seeds"] = g["edge_vs_normalizer"].mean(), g["edge"].size()
    table = table.sort_values("mean", ascending=False).head(top)
    head = ("<tr><th>Rank</th>" + "".join(f"<th>{html.escape(str(a))}</th>" for a in axes)
            + "<th>Mean edge</th><th>SE</th><th>vs normalizer</th><th>Seeds</th></tr>")
    body = "".join(
        f"<tr><td>{k}</td>" + "".join(f"<td>{r[a]:g}</td>" for a in axes)
        + f"<td>{r['mean']:.4f}</td><td>{r['se']:.4f}</td><td>{r['vs_norm']:.4f}</td>"
        f"<td>{int(r['seeds'])}</td></tr>"
        for k, (_, r) in enumerate(table.iterrows(), start=1))
    return f'<table id="sweep-best">{head}{body}</table>'
