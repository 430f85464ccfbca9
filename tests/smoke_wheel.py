"""Smoke test of an installed propamm: every subcommand once, on small sizes.

Run by `.ci/run` with the python of a fresh venv holding the built wheel, from an empty
temporary folder, so nothing can be imported from the checkout:

    cd "$(mktemp -d)" && /path/to/venv/bin/python /path/to/tests/smoke_wheel.py

Each step is one `propamm` command that must exit 0; steps run in order in the current folder
(later steps read what earlier ones wrote). A step whose command this build does not have yet
is reported as SKIPPED, so commands can be listed here before they land.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

SIZE = ["--steps", "500", "--epoch-len", "100"]
SAFE_FORM = '''const NAME: &str = "smoke_safe";
fn compute_swap(data: &[u8]) -> u64 { let _ = data; 0 }
fn after_swap(data: &[u8], storage: &mut [u8]) { let _ = (data, storage); }
'''

STEPS: list[tuple[str, list[str]]] = [
    ("version", ["--version"]),
    ("help", ["--help"]),
    ("simulate", ["simulate", "--pool", "cpamm:30", "--pool", "cpamm:65", "--simulations", "4",
                  *SIZE, "--output", "sim.json", "--no-progress"]),
    ("sweep", ["sweep", "--fee-bps", "10,30", "--simulations", "2", *SIZE, "-o", "sweep.csv",
               "--no-progress"]),
    ("train", ["train", "--generations", "2", "--population", "4", "--batch-seeds", "2",
               "--heldout", "2", "--eval-every", "1", *SIZE, "--out", "run", "--no-progress"]),
    ("export", ["export", "run/policy.json", "-o", "policy.rs"]),
    ("validate", ["validate", "policy.rs"]),
    ("evaluate", ["evaluate", "run/policy.json", "--simulations", "2", *SIZE]),
    ("score", ["score", "a.rs", "b.rs", "--simulations", "2", *SIZE, "--output", "score.json",
               "--no-progress"]),
    ("tournament", ["tournament", "a.rs", "b.rs", "fixed:30", "--simulations", "2", *SIZE,
                    "--output", "standings.csv", "--plot", "standings.png", "--no-progress"]),
    ("report", ["report", "score.json", "-o", "report.html"]),
    ("frame", ["frame", "score.json", "-o", "frame.parquet"]),
    ("submit", ["submit", "a.rs", "b.rs", "-o", "bundles/one", "--simulations", "2", *SIZE,
                "--no-progress"]),
    ("verify", ["verify", "bundles/one", "--no-progress"]),
    ("leaderboard", ["leaderboard", "bundles", "-o", "board.csv"]),
    ("demo", ["demo", "--simulations", "2", *SIZE, "--no-progress"]),
    ("compare", ["compare", "score.json", "score.json"]),
    ("cache", ["cache"]),
    ("wrap", ["wrap", "safe.rs", "-o", "safe_raw.rs"]),
    ("team add", ["team", "add", "smoke", "--data", "srv"]),
]


def _serve(propamm: str, folder: Path) -> None:
    """`propamm serve` from the wheel: /health answers and / is the dashboard (its static
    files come from the wheel's package data)."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([propamm, "serve", "--data", "srv", "--port", str(port),
                             "--workers", "0"], cwd=folder, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"FAILED serve: no /health answer\n{proc.stderr.read() if proc.poll() is not None else ''}")
                time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            page = r.read().decode()
        if "<script" not in page:
            sys.exit("FAILED serve: / is not the dashboard page")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _propamm() -> str:
    exe = Path(sys.executable).parent / "propamm"
    if not exe.exists():
        sys.exit(f"smoke: no propamm next to {sys.executable}")
    return str(exe)


def _check_installed() -> None:
    """The package must come from the venv, not from a checkout on the path."""
    import propamm_jax

    where = Path(propamm_jax.__file__).resolve()
    if "site-packages" not in where.parts:
        sys.exit(f"smoke: propamm_jax imported from {where}, not from an installed wheel")
    print(f"propamm_jax from {where.parent}")


def _prepare(folder: Path) -> None:
    """Two strategies to score (the installed starters) and one safe-form file."""
    from propamm_jax.native.build import starter_strategies

    starters = starter_strategies()
    shutil.copy(starters[0], folder / "a.rs")
    shutil.copy(starters[1], folder / "b.rs")
    (folder / "safe.rs").write_text(SAFE_FORM)


def _commands(propamm: str) -> str:
    return subprocess.run([propamm, "--help"], capture_output=True, text=True).stdout


def main() -> int:
    _check_installed()
    folder = Path.cwd()
    _prepare(folder)
    propamm = _propamm()
    listed = _commands(propamm)
    started = time.perf_counter()
    for name, argv in STEPS:
        if not argv[0].startswith("-") and f"\n    {argv[0]} " not in listed \
                and f"\n    {argv[0]}\n" not in listed:
            print(f"FAILED {name}: `propamm --help` does not list it")
            return 1
        t0 = time.perf_counter()
        proc = subprocess.run([propamm, *argv], cwd=folder, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"FAILED {name} (exit {proc.returncode}): propamm {' '.join(argv)}")
            print(proc.stdout[-2000:] + proc.stderr[-4000:])
            return 1
        print(f"ok {name:12s} {time.perf_counter() - t0:6.1f} s")
    t0 = time.perf_counter()
    _serve(propamm, folder)
    print(f"ok {'serve':12s} {time.perf_counter() - t0:6.1f} s")
    print(f"smoke test passed in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
