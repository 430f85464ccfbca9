"""A training log in the report: reading it (`log.jsonl` as `propamm train` writes it, JSON
records or `{"history": [...]}`, CSV, Parquet) and its fitness curves.

Only fitness columns are plotted: `train`'s log also holds wall-clock `seconds`, the seed
range and the mean parameters, which are not fitness. The held-out value is logged every
`--eval-every` generations only, so sparse columns are drawn with markers (a line through
NaNs would show nothing).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from propamm_jax.errors import PropammError
from propamm_jax.outputs.report_axes import png, pyplot, robust_limits
from propamm_jax.outputs.report_figures import Figure

X_COLUMNS = ("generation", "iteration", "step", "epoch")
NOT_FITNESS = frozenset({"seconds", "time", "elapsed", "duration", "timestamp", "wall_s",
                         "learning_rate", "lr", "sigma", "population", "seed"})


def fitness_columns(log) -> list[str]:
    """The numeric columns that are fitness values (not the x column, timings or settings)."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    x = x_column(log)
    return [c for c in log.columns
            if c != x and is_numeric_dtype(log[c]) and not is_bool_dtype(log[c])
            and str(c).lower() not in NOT_FITNESS and not str(c).lower().endswith("_seconds")]


def x_column(log) -> str | None:
    return next((c for c in X_COLUMNS if c in log.columns), None)


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file; a bad line is one error naming its number."""
    records = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PropammError(f"{path}: cannot read as JSON lines ({exc})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise PropammError(f"{path}:{number}: not a JSON record") from None
        if not isinstance(record, dict):
            raise PropammError(f"{path}:{number}: a log line is a JSON object")
        records.append(record)
    return records


def training_log_from(records, path: Path):
    """A DataFrame of log records, checked: an x column and a fitness column."""
    import pandas as pd

    if isinstance(records, dict) and isinstance(records.get("history"), list):
        records = records["history"]
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise PropammError(f"{path}: a training log is a list of records or "
                           '{"history": [records]}')
    log = pd.DataFrame.from_records(records)
    if x_column(log) is None:
        raise PropammError(f"{path}: a training log needs a column named one of "
                           f"{', '.join(X_COLUMNS)}")
    if log.empty or not fitness_columns(log):
        raise PropammError(f"{path}: the training log has no numeric fitness column")
    return log


def load_training_log(path: str | Path):
    """A training log from any of the formats above."""
    from propamm_jax.outputs.frames import read_frame

    path = Path(path)
    if not path.is_file():
        raise PropammError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return training_log_from(read_jsonl(path), path)
    if suffix == ".json":
        from propamm_jax.errors import read_json

        try:
            return training_log_from(read_json(path), path)
        except UnicodeDecodeError:
            raise PropammError(f"{path}: not valid JSON (not UTF-8 text)") from None
    return training_log_from(read_frame(path).to_dict(orient="records"), path)


def fitness_figure(log) -> Figure:
    """Each fitness column against the generation; sparse ones with markers."""
    plt = pyplot()
    x_name = x_column(log)
    columns = fitness_columns(log)
    limits = robust_limits(np.concatenate([log[c].to_numpy(float) for c in columns]))
    fig, ax = plt.subplots(figsize=(11, 4.8))
    notes = []
    for column in columns:
        present = log[column].notna().to_numpy()
        x, y = log[x_name].to_numpy(float)[present], log[column].to_numpy(float)[present]
        sparse = present.mean() < 0.5 or len(x) <= 30
        label = column
        if present.mean() < 0.5 and len(x) > 1:
            every = int(x[1] - x[0])  # the last generation is always evaluated too
            label = f"{column} (every {every} {x_name}s)"
            notes.append(f"{column} is logged every {every} {x_name}s")
        ax.plot(x, limits.clip(y), label=label, linewidth=2 if sparse else 1.4,
                marker="o" if sparse else None, markersize=6 if present.mean() < 0.5 else 3)
    ax.set_xlabel(x_name)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("fitness")
    ax.set_ylim(limits.lo, limits.hi)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    fig.tight_layout()
    caption = (f"Fitness columns of the training log ({', '.join(columns)}) against the "
               f"{x_name}; other columns (timings, seeds, parameters) are not plotted."
               + (f" {'; '.join(notes)} (markers)." if notes else "")
               + limits.note("values"))
    return Figure("fitness", "Training fitness", caption, png(fig))
