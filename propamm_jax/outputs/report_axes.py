"""Plotting helpers shared by the report's figures: matplotlib set up on demand, PNG bytes,
and robust axis limits.

Edges have heavy tails: one simulation at -23 000 Y next to a hundred between 0 and 800
squeezes a histogram into two bins and flattens a scatter plot into a line. The axes are
limited to the values within fences at the quartiles -/+ 6 interquartile ranges (beyond 9
standard deviations for normal data, so only true outliers are cut) whenever some value lies
beyond them; the values outside are drawn at the edge of the axis (end bins, triangles) and
every figure that clips says so in its caption.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

FENCE = 6.0  # interquartile ranges beyond the quartiles: past ~9 sigma for normal data


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display), selected when first drawn."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def png(fig) -> bytes:
    """The figure as PNG bytes (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    pyplot().close(fig)
    return buf.getvalue()


@dataclass(frozen=True)
class Limits:
    """An axis range and how many values fall outside it (0 and 0: nothing clipped)."""

    lo: float
    hi: float
    below: int = 0
    above: int = 0
    low_value: float = float("nan")   # the most extreme value below, if any
    high_value: float = float("nan")  # the most extreme value above, if any

    @property
    def clipped(self) -> bool:
        return bool(self.below or self.above)

    def clip(self, values: np.ndarray) -> np.ndarray:
        return np.clip(values, self.lo, self.hi)

    def note(self, what: str = "values") -> str:
        """The caption's sentence about clipping ('' when nothing was clipped)."""
        if not self.clipped:
            return ""
        parts = []
        if self.below:
            parts.append(f"{self.below} below (lowest {self.low_value:,.1f})")
        if self.above:
            parts.append(f"{self.above} above (highest {self.high_value:,.1f})")
        return (f" Axis clipped to [{self.lo:,.1f}, {self.hi:,.1f}] (the values within the "
                f"quartiles \u00b1 {FENCE:g} IQR): {' and '.join(parts)} {what} drawn at its "
                "edge.")


def robust_limits(values) -> Limits:
    """The data's range, or the far-out fences when some values lie beyond them."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Limits(0.0, 1.0)
    lo, hi = float(v.min()), float(v.max())
    q1, q3 = np.percentile(v, [25, 75])
    iqr = q3 - q1
    if iqr <= 0:
        return _padded(lo, hi)
    f_lo, f_hi = max(lo, q1 - FENCE * iqr), min(hi, q3 + FENCE * iqr)
    below, above = int((v < f_lo).sum()), int((v > f_hi).sum())
    if not (below or above):
        return _padded(lo, hi)
    inside = v[(v >= f_lo) & (v <= f_hi)]  # the axis spans every value within the fences
    padded = _padded(float(inside.min()), float(inside.max()))
    return Limits(padded.lo, padded.hi, below, above,
                  lo if below else float("nan"), hi if above else float("nan"))


def _padded(lo: float, hi: float) -> Limits:
    pad = 0.04 * (hi - lo) or max(abs(lo) * 0.05, 1e-9)
    return Limits(lo - pad, hi + pad)


def scatter_clipped(ax, x, y, limits: Limits, **style) -> object:
    """Scatter of (x, y) with the y values outside `limits` drawn as triangles on its edge."""
    y = np.asarray(y, float)
    inside = (y >= limits.lo) & (y <= limits.hi)
    dots = ax.scatter(np.asarray(x)[inside], y[inside], **style)
    colour = dots.get_facecolor()[0]
    for mask, marker, edge in ((y < limits.lo, "v", limits.lo), (y > limits.hi, "^", limits.hi)):
        if mask.any():
            ax.scatter(np.asarray(x)[mask], np.full(mask.sum(), edge), marker=marker, s=40,
                       color=colour, edgecolors="black", linewidths=0.6, zorder=5,
                       clip_on=False)
    return dots
