"""What runs produce, and how people read it.

- `results`: the results schema, aggregates and DataFrames; `frames`: tables by extension.
- `report`, `report_axes`, `report_figures`, `report_sweep`, `report_training`: the HTML report.
- `comparison`: paired differences of two runs; `bundle`: receipts (submit/verify/leaderboard).
"""
