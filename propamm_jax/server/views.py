"""What the API shows of its rows and files: job status, competitions without their seeds,
receipts with the seed list removed, tables for download."""

from __future__ import annotations

import io
import json

from fastapi.responses import Response

PARQUET = "application/vnd.apache.parquet"


def job_view(row, now: float) -> dict:
    """The status of a job as its team sees it."""
    started, finished = row.started, row.finished
    return {
        "id": row.id, "kind": row.kind, "state": row.state,
        "sources": json.loads(row.sources),
        "config": None if row.competition_id else json.loads(row.config),
        "competition": row.competition_id,
        "progress": {"done": row.progress_done, "total": row.progress_total},
        "timings": {"created": row.created, "started": started, "finished": finished,
                    "queued_s": round((started or now) - row.created, 3),
                    "running_s": round((finished or now) - started, 3) if started else None},
        "attempts": row.attempts, "error": row.error,
        "summary": json.loads(row.summary) if row.summary else None, "score": row.score,
    }


def redacted_receipt(receipt: dict) -> dict:
    out = {k: v for k, v in receipt.items() if k not in ("seeds", "failures")}
    out["simulations"] = len(receipt.get("seeds", []))
    out["failed_simulations"] = len(receipt.get("failures", []))
    return out


def competition_view(row) -> dict:
    return {"id": row.id, "name": row.name, "profile": row.profile, "steps": row.steps,
            "epoch_len": row.epoch_len, "opponents": json.loads(row.opponents),
            "simulations": len(json.loads(row.seeds)), "seeds_sha256": row.seeds_sha256}


def table(rows: list[dict], format: str, name: str) -> Response:
    """Rows as a CSV or Parquet download."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    if format == "csv":
        return Response(frame.to_csv(index=False), media_type="text/csv",
                        headers={"content-disposition": f'attachment; filename="{name}.csv"'})
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return Response(buf.getvalue(), media_type=PARQUET,
                    headers={"content-disposition": f'attachment; filename="{name}.parquet"'})
