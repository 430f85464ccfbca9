"""`propamm tournament A.rs B.rs ...`: one field scored officially, ranked with its uncertainty.

A mean edge alone does not say who wins a field: the seeds are very different markets, so a
strategy can lead on the mean by winning a few seeds big and lose most of the others. This
module turns the per-seed results of one official run (`scoring.score`: every strategy in
the same simulations) into standings that say how sure the ranking is:

- each strategy's mean edge and its standard error;
- its paired difference to the leader, seed by seed, with the standard error of that
  difference: the market's variance cancels in it, so "more than 2 SE behind" is the test
  that the leader really is ahead (two independent SEs would overstate the doubt);
- its rank on each seed (1 = best edge of the field on that seed; strategies with equal edges
  share the better rank, so a tie counts as a win for both), as counts of ranks 1..N, the
  median rank and the share of seeds won;
- its mean final capital share (the engine's capital weight after the last rebalance).

`standings` is a pure function of a `Table` (seeds x strategies), so the statistics are
checked against hand computations without running anything. Entries are `.rs` sources or
compiled `.so` libraries, as `propamm score` takes them, and `cpamm:BPS` (or `fixed:BPS`)
fixed-fee pools, written out as the fixed-fee submission `training.export.fixed_fee_rust`.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from propamm_jax.errors import PropammError

FIXED_PREFIXES = ("cpamm:", "fixed:")   # fixed-fee entries: `cpamm:30` as elsewhere, `fixed:30`


class Table(NamedTuple):
    """The per-seed results of one field: every strategy in the same simulations."""

    labels: tuple[str, ...]   # one per strategy, in scoring order
    seeds: np.ndarray         # [S] the seeds that completed
    edge: np.ndarray          # [S, N] final edge
    capital: np.ndarray       # [S, N] final capital weight (sums to 1 per seed)
    normalizer: np.ndarray    # [S] the normalizer's final edge


class Standings(NamedTuple):
    """A field's standings (see the module docstring); arrays are in `labels` order."""

    labels: tuple[str, ...]
    seeds: int
    leader: int                 # index of the best mean edge (first of equals)
    mean: np.ndarray            # [N] mean edge
    se: np.ndarray              # [N] its standard error (NaN with one seed)
    diff: np.ndarray            # [N] mean of (edge - leader's edge), paired by seed
    diff_se: np.ndarray         # [N] standard error of that paired difference (NaN: leader)
    vs_norm: np.ndarray         # [N] mean of (edge - normalizer's edge)
    vs_norm_se: np.ndarray      # [N] its standard error
    rank_counts: np.ndarray     # [N, N] seeds on which strategy i had rank r + 1
    median_rank: np.ndarray     # [N]
    win_share: np.ndarray       # [N] share of seeds with rank 1
    capital: np.ndarray         # [N] mean final capital share

    def order(self) -> list[int]:
        """Strategy indices by mean edge, best first (equal means: scoring order)."""
        return [int(i) for i in np.argsort(-self.mean, kind="stable")]

    def margin(self) -> tuple[int, float, float] | None:
        """(runner-up index, leader's lead over it, that lead in paired SEs), or None for a
        field of one."""
        order = self.order()
        if len(order) < 2:
            return None
        second = order[1]
        lead = -float(self.diff[second])
        se = float(self.diff_se[second])
        return second, lead, lead / se if se > 0 else math.inf if lead > 0 else math.nan


def mean_and_se(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over axis 0 and its standard error (sample std / sqrt(n); NaN for one row)."""
    values = np.asarray(values, np.float64)
    n = values.shape[0]
    se = values.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.full(values.shape[1:], np.nan)
    return values.mean(axis=0), se


def seed_ranks(edge: np.ndarray) -> np.ndarray:
    """[S, N] rank of each strategy on each seed: 1 + the number of strategies with a strictly
    higher edge (competition ranking: equal edges share the better rank)."""
    edge = np.asarray(edge, np.float64)
    return 1 + (edge[:, None, :] > edge[:, :, None]).sum(axis=-1)


def standings(table: Table) -> Standings:
    """The standings of a field from its per-seed results (pure; see the module docstring)."""
    edge = np.asarray(table.edge, np.float64)
    if edge.ndim != 2 or edge.shape[0] == 0 or edge.shape[1] == 0:
        raise PropammError("no completed simulation to rank: every seed failed")
    n = edge.shape[1]
    mean, se = mean_and_se(edge)
    leader = int(np.argmax(mean))
    diff, diff_se = mean_and_se(edge - edge[:, [leader]])
    diff[leader], diff_se[leader] = 0.0, np.nan
    vs_norm, vs_norm_se = mean_and_se(edge - np.asarray(table.normalizer, np.float64)[:, None])
    ranks = seed_ranks(edge)
    counts = np.stack([(ranks == r).sum(axis=0) for r in range(1, n + 1)], axis=1)
    return Standings(tuple(table.labels), edge.shape[0], leader, mean, se, diff, diff_se,
                     vs_norm, vs_norm_se, counts, np.median(ranks, axis=0),
                     counts[:, 0] / edge.shape[0],
                     np.asarray(table.capital, np.float64).mean(axis=0))


def table(results, labels: Sequence[str] | None = None) -> Table:
    """The per-seed table of a `Results` (the simulations that completed). `labels` default
    to the strategy files (`results.strategies`), which are unique where names may not be."""
    labels = tuple(labels if labels is not None else results.strategies)
    sims = sorted(results.sims, key=lambda s: int(s["seed"]))
    n = len(labels)
    if any(len(s["strategies"]) != n for s in sims):
        raise PropammError(f"results: a simulation does not have the {n} strategies of the field")
    return Table(labels, np.array([int(s["seed"]) for s in sims], dtype=np.uint64),
                 np.array([[st["final_edge"] for st in s["strategies"]] for s in sims],
                          np.float64).reshape(len(sims), n),
                 np.array([[st["final_capital_weight"] for st in s["strategies"]] for s in sims],
                          np.float64).reshape(len(sims), n),
                 np.array([s["normalizer_edge"] for s in sims], np.float64))


def frame(s: Standings):
    """One row per strategy, best mean edge first: place, strategy, the statistics and the
    rank counts `rank_1`..`rank_N` (what `--output` writes)."""
    import pandas as pd

    rows = []
    for place, i in enumerate(s.order(), start=1):
        rows.append({"place": place, "strategy": s.labels[i], "mean_edge": s.mean[i],
                     "se": s.se[i], "diff_to_leader": s.diff[i], "diff_se": s.diff_se[i],
                     "diff_z": s.diff[i] / s.diff_se[i] if s.diff_se[i] > 0 else np.nan,
                     "vs_norm": s.vs_norm[i], "vs_norm_se": s.vs_norm_se[i],
                     "median_rank": s.median_rank[i], "win_share": s.win_share[i],
                     "capital_share": s.capital[i], "seeds": s.seeds,
                     **{f"rank_{r + 1}": int(s.rank_counts[i, r]) for r in range(len(s.labels))}})
    return pd.DataFrame(rows)


def _num(value: float, fmt: str) -> str:
    return "n/a" if not np.isfinite(value) else format(value, fmt)


def lines(s: Standings) -> list[str]:
    """The standings as `propamm tournament` prints them, and the verdict on the leader."""
    width = max(12, *(len(label) for label in s.labels))
    head = (f"{'#':>2} {'strategy':<{width}} {'mean edge':>10} {'SE':>7} {'vs leader':>10} "
            f"{'paired SE':>9} {'med rank':>8} {'won':>6} {'capital':>7}  ranks 1..{len(s.labels)}")
    out = [head, "-" * len(head)]
    for place, i in enumerate(s.order(), start=1):
        vs = "leader" if i == s.leader else _num(s.diff[i], ".2f")
        out.append(f"{place:>2} {s.labels[i]:<{width}} {s.mean[i]:>10.2f} "
                   f"{_num(s.se[i], '.2f'):>7} {vs:>10} {_num(s.diff_se[i], '.2f'):>9} "
                   f"{s.median_rank[i]:>8g} "
                   f"{100 * s.win_share[i]:>5.1f}% {100 * s.capital[i]:>6.1f}%  "
                   + " ".join(str(int(c)) for c in s.rank_counts[i]))
    margin = s.margin()
    if margin is not None:
        second, lead, z = margin
        verdict = "more than 2" if z > 2 else "not more than 2"
        out.append(f"\nleader {s.labels[s.leader]}: {lead:.2f} ahead of {s.labels[second]} "
                   f"= {_num(z, '.2f')} paired SE ({verdict} SE) over {s.seeds} seeds")
    return out


def figure(s: Standings) -> bytes:
    """PNG: mean edge with +/-2 SE bars (left) and each strategy's rank distribution over seeds
    (right), best mean first."""
    from propamm_jax.outputs.report_axes import png, pyplot

    plt = pyplot()
    order = s.order()
    n = len(order)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * n + 1.6), sharey=True)
    y = np.arange(n)
    se = np.nan_to_num(np.array([s.se[i] for i in order]))
    left.errorbar([s.mean[i] for i in order], y, xerr=2 * se, fmt="o", capsize=3)
    left.set_yticks(y, [s.labels[i] for i in order])
    left.invert_yaxis()
    left.set_xlabel("mean edge (bars: 2 standard errors)")
    shares = np.array([s.rank_counts[i] / s.seeds for i in order])
    image = right.imshow(shares, aspect="auto", cmap="viridis", vmin=0.0)
    right.set_xticks(np.arange(n), [str(r + 1) for r in range(n)])
    right.set_xlabel("rank on a seed (share of seeds)")
    fig.colorbar(image, ax=right, fraction=0.05)
    fig.suptitle(f"{n} strategies, {s.seeds} seeds")
    return png(fig)


def fixed_bps(spec: str) -> int | None:
    """The fee of a `cpamm:BPS` / `fixed:BPS` entry, None for a file; a malformed fee is one
    line naming the entry."""
    spec = str(spec)
    prefix = next((p for p in FIXED_PREFIXES if spec.startswith(p)), None)
    if prefix is None:
        return None
    text = spec[len(prefix):]
    if not text.isdigit() or not 0 <= int(text) < 10_000:
        raise PropammError(f"entry {spec!r}: a fixed fee is {prefix}BPS, a whole number of bps "
                           "in 0..9999")
    return int(text)


def _label(spec: str) -> str:
    """The label `score` will give the entry: its file name."""
    bps = fixed_bps(spec)
    return Path(str(spec)).name if bps is None else f"fixed_{bps}bps.rs"


def entry_files(specs: Sequence[str], folder: Path) -> list[str]:
    """The field as files for `scoring.score`: `.rs`/`.so` paths as given, `cpamm:BPS` and
    `fixed:BPS` written into `folder` as fixed-fee submissions (`fixed_<BPS>bps.rs`)."""
    from propamm_jax.training.export import fixed_fee_rust

    files = []
    for spec in specs:
        bps = fixed_bps(spec)
        if bps is None:
            files.append(str(spec))
            continue
        path = folder / _label(spec)
        path.write_text(fixed_fee_rust(bps))
        files.append(str(path))
    return files


def check_field(specs: Sequence[str]) -> None:
    """Refuses, before any work, a field that cannot be a tournament: fewer than two entries,
    more than the engine takes, a malformed fixed fee, or the same entry twice (its rows would
    be indistinguishable)."""
    from propamm_jax.config import MAX_STRATEGIES

    if len(specs) < 2:
        raise PropammError(f"a tournament needs at least 2 strategies, got {len(specs)}")
    if len(specs) > MAX_STRATEGIES:
        raise PropammError(f"{len(specs)} strategies given; the engine takes at most "
                           f"{MAX_STRATEGIES}")
    names = [_label(spec) for spec in specs]
    twice = next((n for k, n in enumerate(names) if n in names[:k]), None)
    if twice is not None:
        raise PropammError(f"entry {twice!r} appears twice in the field (labels are file names)")


class Outcome(NamedTuple):
    """A tournament's official run and its standings."""

    result: Any            # scoring.ScoreResult
    standings: Standings


def run(specs: Sequence[str], **score_options) -> Outcome:
    """Scores the field officially (`scoring.score` with `score_options`: config, seeds or
    simulations/seed_start/seed_stride, profile, workers, journal, sandbox, ...) and ranks it.
    Strategies that fail the checks before scoring are left out (`result.rejected`)."""
    from propamm_jax.official.scoring import score

    check_field(specs)
    with tempfile.TemporaryDirectory(prefix="propamm-tournament-") as tmp:
        files = entry_files(specs, Path(tmp))
        result = score(files, **score_options)
    return Outcome(result, standings(table(result.results)))


__all__ = ["Table", "Standings", "Outcome", "standings", "table", "frame", "lines", "figure",
           "run", "seed_ranks", "mean_and_se", "entry_files", "check_field", "fixed_bps"]
