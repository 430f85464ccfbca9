"""The figures of a results file's report: edge distributions, capital weights, edge against
the market, and one traced simulation over time.

Several strategies drawn over each other (overlapping histograms, translucent bands) wash
into one colour, so distributions and bands are small multiples: one panel per strategy on
shared axes, titled with the strategy's mean and standard error, no legend on the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from propamm_jax.outputs.report_axes import png, pyplot, robust_limits, scatter_clipped


@dataclass(frozen=True)
class Figure:
    """One section of the report: an anchor id, a title, a caption and the PNG bytes."""

    id: str
    title: str
    caption: str
    png: bytes


def standard_error(values) -> float:
    """The standard error of the mean (sample std / sqrt(n); 0 for one value)."""
    v = np.asarray(values, float)
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def _grid(n: int, width: float = 11.0, row_height: float = 2.4, cols: int = 2):
    plt = pyplot()
    cols = 1 if n == 1 else cols
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width, row_height * rows + 0.6),
                             sharex=True, sharey=True, squeeze=False)
    flat = axes.ravel()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n], axes


def edge_distribution(frame) -> Figure:
    """One histogram of final edge per strategy (shared bins), the normalizer's outlined."""
    names = list(dict.fromkeys(frame["strategy"]))
    values = [frame.loc[frame["strategy"] == n, "edge"].to_numpy(float) for n in names]
    norm = frame.drop_duplicates("seed")["normalizer_edge"].to_numpy(float)
    limits = robust_limits(np.concatenate(values + [norm]))
    bins = np.linspace(limits.lo, limits.hi, min(40, max(12, len(norm) // 3)) + 1)
    fig, axes, _ = _grid(len(names))
    colours = pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (ax, name, v) in enumerate(zip(axes, names, values)):
        ax.hist(limits.clip(v), bins=bins, color=colours[k % len(colours)], alpha=0.8)
        ax.hist(limits.clip(norm), bins=bins, histtype="step", color="black", linewidth=1.2)
        ax.set_title(f"{name}: mean {v.mean():,.2f} \u00b1 {standard_error(v):,.2f} (SE)",
                     fontsize=9)
        ax.axvline(v.mean(), color="black", linestyle=":", linewidth=1)
        _mark_clipped(ax, v, limits)
    for ax in axes:
        ax.set_xlim(limits.lo, limits.hi)
        ax.grid(alpha=0.3)
    fig.supxlabel("final edge (Y)")
    fig.supylabel("simulations")
    fig.tight_layout()
    caption = (f"Final edge over {len(norm)} simulations, one panel per strategy; black "
               "outline: the normalizer's edge on the same seeds; dotted: the strategy's mean."
               + limits.note("simulations (counted in the end bin)"))
    return Figure("edge-distribution", "Edge distribution per strategy", caption, png(fig))


def _mark_clipped(ax, values: np.ndarray, limits) -> None:
    """Says in the panel how many of its values the end bins hold from beyond the axis."""
    below, above = int((values < limits.lo).sum()), int((values > limits.hi).sum())
    style = {"transform": ax.transAxes, "fontsize": 8, "va": "top", "color": "#a00"}
    if below:
        ax.text(0.01, 0.97, f"\u2190 {below} below {limits.lo:,.0f}", ha="left", **style)
    if above:
        ax.text(0.99, 0.97, f"{above} above {limits.hi:,.0f} \u2192", ha="right", **style)


def capital_weight(epochs) -> Figure:
    """Per strategy: its mean weight per epoch with the interquartile band; the other
    strategies' means in grey for reference."""
    groups = list(epochs.groupby("strategy", sort=False))
    fig, axes, _ = _grid(len(groups))
    colours = pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    means = {}
    for name, group in groups:
        by_epoch = group.groupby("epoch")["capital_weight"]
        means[name] = (np.asarray(by_epoch.mean().index) + 1, by_epoch.mean().to_numpy(),
                       by_epoch.quantile(0.25).to_numpy(), by_epoch.quantile(0.75).to_numpy())
    for k, (ax, (name, _)) in enumerate(zip(axes, groups)):
        for other, (x, mean, _, _) in means.items():
            if other != name:
                ax.plot(x, mean, color="0.75", linewidth=1)
        x, mean, lo, hi = means[name]
        colour = colours[k % len(colours)]
        ax.fill_between(x, lo, hi, color=colour, alpha=0.3, linewidth=0)
        ax.plot(x, mean, color=colour, marker="o", markersize=3, linewidth=1.8)
        ax.set_title(f"{name}: final mean weight {mean[-1]:.3f}", fontsize=9)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    fig.supxlabel("epoch (weight after its rebalance)")
    fig.supylabel("capital weight")
    fig.tight_layout()
    caption = ("One panel per strategy: its mean capital weight after each epoch's rebalance "
               "(line) and the 25th to 75th percentile over simulations (band); grey: the "
               "other strategies' means.")
    return Figure("capital-weight", "Capital weight per epoch", caption, png(fig))


def edge_vs_market(frame) -> Figure:
    """Edge against the seed's volatility and the normalizer's fee, with binned medians."""
    plt = pyplot()
    limits = robust_limits(frame["edge"].to_numpy(float))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, column, label in ((axes[0], "market_sigma", "volatility sigma (per step)"),
                              (axes[1], "market_norm_fee_bps", "normalizer fee (bps)")):
        for name, group in frame.groupby("strategy", sort=False):
            x, y = group[column].to_numpy(float), group["edge"].to_numpy(float)
            dots = scatter_clipped(ax, x, y, limits, s=10, alpha=0.45, label=name)
            centers, medians = binned_medians(x, y)
            ax.plot(centers, medians, color=dots.get_facecolor()[0][:3], linewidth=2)
        ax.set_xlabel(label)
        ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.set_ylim(limits.lo, limits.hi)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("final edge (Y)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center",
               ncol=min(4, frame["strategy"].nunique()), fontsize=8, markerscale=2,
               bbox_to_anchor=(0.5, 1.06), frameon=False)
    fig.tight_layout()
    caption = ("One dot per (simulation, strategy); lines: medians in quantile bins of the "
               "x axis." + limits.note("points (triangles)"))
    return Figure("edge-vs-market", "Edge against volatility and the normalizer's fee",
                  caption, png(fig))


def binned_medians(x: np.ndarray, y: np.ndarray, bins: int = 8):
    """Medians of y in quantile bins of x (robust to the outliers the axes clip)."""
    if len(np.unique(x)) < 2:
        return x[:1], y[:1]
    edges = np.quantile(x, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    centers, medians = [], []
    for b in range(bins):
        sel = which == b
        if sel.any():
            centers.append(np.median(x[sel]))
            medians.append(np.median(y[sel]))
    return np.array(centers), np.array(medians)


def trace_figure(trace: dict, names: list[str]) -> Figure:
    """One traced simulation over time: the fair price, each pool's spot against it (bps),
    capital weights and cumulative edge. `amms` rows are the strategies, then the normalizer."""
    plt = pyplot()
    steps = trace["steps"]
    t = np.array([s["step"] for s in steps])
    fair = np.array([s["fair_price"] for s in steps], float)
    amms = np.array([[row[:4] for row in s["amms"]] for s in steps], float)  # [T, N+1, 4]
    labels = list(names[: amms.shape[1] - 1]) + ["normalizer"]
    labels += [f"pool {i}" for i in range(len(labels), amms.shape[1])]
    spot_bps = (amms[:, :, 1] / amms[:, :, 0] / fair[:, None] - 1.0) * 1e4
    limits = robust_limits(spot_bps)
    fig, axes = plt.subplots(4, 1, figsize=(11, 10), sharex=True,
                             gridspec_kw={"height_ratios": [1.2, 1.4, 1, 1]})
    axes[0].plot(t, fair, color="black", linewidth=1.2)
    axes[0].set_ylabel("fair price (Y per X)")
    n = len(labels)
    for k, label in enumerate(labels):
        # Earlier series drawn wider, so that identical series (in the reference profile all
        # pools can share one spot path) stay visible as nested lines.
        width = 1.0 + 2.2 * (n - 1 - k) / max(1, n - 1)
        style = {"color": "black", "linestyle": "--", "linewidth": 1.0} \
            if label == "normalizer" else {"linewidth": width}
        axes[1].plot(t, limits.clip(spot_bps[:, k]), label=label, **style)
        axes[3].plot(t, amms[:, k, 2], label=label, **style)
        if label != "normalizer":
            axes[2].step(t, amms[:, k, 3], where="post", label=label, **style)
    axes[1].axhline(0.0, color="grey", linewidth=0.8)
    axes[1].set_ylim(limits.lo, limits.hi)
    axes[1].set_ylabel("spot vs fair (bps)")
    axes[2].set_ylabel("capital weight")
    axes[2].set_ylim(0, 1)
    axes[3].set_ylabel("cumulative edge (Y)")
    axes[3].set_xlabel("step")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.legend(*axes[1].get_legend_handles_labels(), loc="upper center", ncol=min(5, len(labels)),
               fontsize=8, bbox_to_anchor=(0.5, 1.03), frameon=False)
    fig.tight_layout()
    caption = (f"Seed {trace['seed']}, the state after each of the first {len(steps)} steps: "
               "fair price; each pool's spot (reserve Y / reserve X) relative to the fair price "
               "in bps, so that a pool's spread shows as its distance from zero; capital "
               "weights (they change only at epoch boundaries); cumulative edge. Fees are not "
               "recorded in a trace (a compiled strategy's fee is whatever its compute_swap "
               "quotes), so the spot's distance from fair is the visible trace of a pool's fee."
               + _same_series_note(labels, {"spot": spot_bps, "capital weight": amms[:, :, 3],
                                            "cumulative edge": amms[:, :, 2]})
               + limits.note("spot values"))
    return Figure(f"trace-{trace['seed']}", f"One simulation over time: seed {trace['seed']}",
                  caption, png(fig))


def _same_series_note(labels: list[str], panels: dict[str, np.ndarray]) -> str:
    """The caption's sentence naming pools whose series coincide in a panel, within 0.1% of
    the panel's range (they are drawn as nested lines, the earlier one wider), '' if none do."""
    notes = []
    for panel, values in panels.items():
        finite = values[np.isfinite(values)]
        tolerance = 1e-3 * (float(np.ptp(finite)) if finite.size else 0.0) + 1e-12
        groups: list[list[int]] = []
        for k in range(values.shape[1]):
            for group in groups:
                if np.allclose(values[:, group[0]], values[:, k], rtol=0.0, atol=tolerance):
                    group.append(k)
                    break
            else:
                groups.append([k])
        for group in groups:
            if len(group) > 1:
                notes.append(f"{panel} of {', '.join(labels[k] for k in group)}")
    if not notes:
        return ""
    return (" Series that coincide within 0.1% of their panel's range (drawn nested, earlier "
            "ones wider): " + "; ".join(notes) + ".")
