"""The sandbox against hostile strategies, in `score` and in `validate`.

Each fixture in tests/fixtures/hostile/ tries one thing when its trigger fires (a trade at
step 50 whose input is divisible by 3: seed 3 of seeds 0..5 in `score`, history 4 in
`validate`), then panics saying whether it escaped ("ESCAPED: ...") or not ("contained: ...").
Each runs as a source (with --allow-unsafe-source, since the source policy rejects some) and
as a prebuilt .so (which no policy sees): the sandbox, not the lint, must contain it. The
same runs without the sandbox show the escapes, so these tests can fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import FIXTURES, STRATEGIES
from propamm_jax.config import SimConfig
from propamm_jax.official.sandbox import unavailable

HOSTILE = FIXTURES / "hostile"
GOOD = STRATEGIES / "fixed_30bps.rs"
CONFIG = SimConfig(steps=200, epoch_len=100)
SEEDS = list(range(6))
CANARY = "canary-7f3a9c"
ESCAPES = ["read_outside", "write_outside", "list_dir", "open_socket", "run_shell"]

# .ci/run installs bubblewrap: in CI these tests run (and fail) even where it cannot start.
needs_bwrap = pytest.mark.skipif(unavailable() is not None and not os.environ.get("CI"),
                                 reason=f"bubblewrap unavailable: {unavailable()}")


class Scene:
    """A test's outside world: a canary folder and a loopback listener the strategies try."""

    def __init__(self, tmp_path: Path):
        self.root = tmp_path
        self.outside = tmp_path / "outside"
        self.outside.mkdir()
        (self.outside / "canary.txt").write_text(CANARY)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.setblocking(False)

    def source(self, name: str) -> Path:
        """The fixture with this scene's folder and port written in."""
        text = (HOSTILE / f"{name}.rs").read_text()
        text = text.replace('"/tmp/propamm-hostile"', f'"{self.outside}"')
        text = text.replace('"47999"', f'"{self.listener.getsockname()[1]}"')
        path = self.root / "src" / f"{name}.rs"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        return path

    def prebuilt(self, name: str) -> Path:
        """The same fixture compiled by plain rustc to a .so, no policy involved."""
        path = self.root / "so" / f"lib{name}.so"
        path.parent.mkdir(exist_ok=True)
        subprocess.run(["rustc", "--edition", "2021", "--crate-type", "cdylib", "-O", "-o",
                        str(path), str(self.source(name))], check=True, capture_output=True)
        return path

    def file(self, name: str, form: str) -> Path:
        return self.source(name) if form == "rs" else self.prebuilt(name)

    def escapes(self) -> list[str]:
        """What got out: files written next to the canary, connections that arrived."""
        found = sorted(p.name for p in self.outside.iterdir() if p.name != "canary.txt")
        try:
            conn, _ = self.listener.accept()
            conn.close()
            found.append("a connection")
        except BlockingIOError:
            pass
        return found


@pytest.fixture
def scene(tmp_path):
    s = Scene(tmp_path)
    yield s
    s.listener.close()


def _score(files, sandbox="require", seeds=SEEDS, **kw):
    from propamm_jax.official.scoring import score

    return score(files, config=CONFIG, seeds=seeds, workers=2, progress=False,
                 allow_unsafe_source=True, sandbox=sandbox, **kw)


def _one_failure_at_seed_3(result, label: str):
    assert not result.rejected, result.rejected
    assert sorted(s["seed"] for s in result.results.sims) == [0, 1, 2, 4, 5]
    assert [f.seed for f in result.failures] == [3], [f.line() for f in result.failures]
    failure = result.failures[0]
    assert failure.strategy == label and failure.message.startswith("in after_swap: ")
    return failure


@needs_bwrap
@pytest.mark.parametrize("form", ["rs", "so"])
@pytest.mark.parametrize("name", ESCAPES)
def test_score_contains_each_escape_and_keeps_the_other_results(scene, name, form):
    path = scene.file(name, form)
    result = _score([path, GOOD])
    failure = _one_failure_at_seed_3(result, path.name)
    line = failure.line()
    assert failure.kind == "crash" and "contained: " in line and "ESCAPED" not in line, line
    assert CANARY not in line and scene.escapes() == []


@pytest.mark.parametrize("name", ["read_outside", "write_outside", "open_socket", "run_shell"])
def test_without_the_sandbox_the_same_fixtures_escape(scene, name):
    """The control: with the old confinement only, each fixture gets out (so the test above
    would see it)."""
    result = _score([scene.prebuilt(name), GOOD], sandbox="off")
    line = _one_failure_at_seed_3(result, f"lib{name}.so").line()
    assert "ESCAPED" in line, line
    if name == "read_outside":
        assert CANARY in line
    else:
        assert scene.escapes(), line


@needs_bwrap
@pytest.mark.parametrize("form", ["rs", "so"])
def test_a_quiet_exit_is_a_failure_naming_strategy_and_function(scene, form):
    path = scene.file("quiet_exit", form)
    failure = _one_failure_at_seed_3(_score([path, GOOD]), path.name)
    assert failure.kind == "crash" and "exit code 0 without a result" in failure.message


@needs_bwrap
@pytest.mark.parametrize("form", ["rs", "so"])
def test_a_strategy_that_kills_its_worker_is_still_named(scene, form):
    """The worker dies with the simulation: the call guard's cell, which the scorer maps
    too, still names the strategy and the function."""
    path = scene.file("kill_worker", form)
    failure = _one_failure_at_seed_3(_score([path, GOOD]), path.name)
    assert failure.kind == "crash" and "SIGKILL (the scoring worker itself ended)" in failure.message


def _worker_processes() -> int:
    """Python processes under this one running `-m propamm_jax.official.worker` (a fork keeps the
    command line; bwrap's own two processes are not counted), read from the host's /proc."""
    parents, commands = {}, {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    mine = {os.getpid()}
    for _ in range(8):  # bwrap, its init, the worker, its children: a few levels deep
        mine |= {pid for pid, parent in parents.items() if parent in mine}
    argv = [commands.get(pid, b"").split(b"\0") for pid in mine]
    return sum(1 for a in argv if b"propamm_jax.official.worker" in a and b"bwrap" not in a[0])


@pytest.mark.parametrize("sandbox", [pytest.param("require", marks=needs_bwrap), "off"])
def test_a_process_forked_by_a_strategy_neither_hangs_nor_outlives_its_simulation(scene, sandbox):
    """fork_orphan forks a spinning process (holding the result pipe open) at step 50 of
    seed 3 and carries on: the simulation still ends on time, and the stray process is
    gone by the time the next simulation's result arrives (it is killed as its simulation
    ends; the kill lands asynchronously, so the count at seed 3's own result may still
    include it)."""
    from propamm_jax.native.build import resolve_library
    from propamm_jax.official.scoring import ScoreRequest, _native_libraries, run_simulations

    library = scene.prebuilt("fork_orphan")
    request = ScoreRequest((str(library), str(resolve_library(GOOD))), (library.name, GOOD.name),
                           CONFIG, "reference", native=_native_libraries(), sim_timeout=60.0)
    seen: dict[int, int] = {}
    started = time.monotonic()
    failures = run_simulations(request, [3, 4], 1,
                               lambda index, *_: seen.setdefault(index, _worker_processes()),
                               sandbox=sandbox)
    assert not failures and time.monotonic() - started < 30, [f.line() for f in failures]
    assert seen[1] == 1, seen  # the worker alone: no stray process left running


@needs_bwrap
@pytest.mark.parametrize("form", ["rs", "so"])
def test_a_hung_call_is_ended_by_the_call_timeout(scene, form):
    path = scene.file("spin_forever", form)
    started = time.monotonic()
    result = _score([path, GOOD], call_timeout=1.0)
    failure = _one_failure_at_seed_3(result, path.name)
    assert failure.kind == "timeout" and "call timeout 1 s" in failure.message
    assert time.monotonic() - started < 60  # nowhere near --sim-timeout (300 s)


def _detection_latencies(library: Path, workers: int, call_timeout: float) -> list[float]:
    """Seconds from each failing simulation's start to its failure report (the strategy
    fails at step 50 of 200: the simulation's own time before that is a few ms)."""
    from propamm_jax.native.build import resolve_library
    from propamm_jax.official.scoring import ScoreRequest, _native_libraries, run_simulations

    request = ScoreRequest((str(library), str(resolve_library(GOOD))), (library.name, GOOD.name),
                           CONFIG, "reference", native=_native_libraries(),
                           call_timeout=call_timeout)
    seeds = [3] * (2 * workers)  # every simulation fails
    started: dict[int, float] = {}
    latencies: list[float] = []
    run_simulations(request, seeds, workers, lambda *a: None,
                    on_failure=lambda f: latencies.append(time.monotonic()),
                    on_start=lambda i: started.setdefault(i, time.monotonic()),
                    sandbox="require")
    assert len(latencies) == len(seeds) == len(started)
    return [t - s for t, s in zip(sorted(latencies), sorted(started.values()))]


@needs_bwrap
@pytest.mark.parametrize("workers", [1, 3])
def test_failures_are_found_promptly_with_one_worker_or_many(scene, workers):
    quiet = _detection_latencies(scene.prebuilt("quiet_exit"), workers, 1.0)
    assert max(quiet) < 1.0, quiet
    hung = _detection_latencies(scene.prebuilt("spin_forever"), workers, 0.5)
    assert max(hung) < 2 * 0.5 + 0.2, hung


@needs_bwrap
@pytest.mark.parametrize("form", ["rs", "so"])
@pytest.mark.parametrize("name, expected", [
    *[(n, "contained: ") for n in ESCAPES],
    ("quiet_exit", "exit code 0 before the checks ended"),
    ("spin_forever", "time budget: no return after"),
    ("kill_worker", "time budget: no return after"),  # its parent is the sandbox's init
])
def test_validate_contains_and_reports_each_fixture(scene, name, expected, form):
    from propamm_jax.official.validate import validate_file

    report = validate_file(scene.file(name, form), allow_unsafe_source=True, sandbox="require")
    failure = report.first_failure()
    assert failure is not None and failure.name == "simulated trade histories", report.lines()
    assert expected in failure.detail and "ESCAPED" not in failure.detail, failure.detail
    assert "history 4, step 50: after_swap" in failure.detail
    assert CANARY not in " ".join(report.lines()) and scene.escapes() == []


def test_require_sandbox_refuses_in_one_line_where_bwrap_is_missing(monkeypatch, capsys):
    from propamm_jax import cli
    from propamm_jax.official import sandbox

    monkeypatch.setattr(sandbox, "unavailable", lambda: "bwrap not found (test)")
    code = cli.main(["score", str(GOOD), "--simulations", "1", "--steps", "20",
                     "--epoch-len", "10", "--no-progress", "--no-journal", "--require-sandbox"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["propamm: error: sandbox unavailable: bwrap not found (test) "
                                 "(--require-sandbox)"], err


def test_without_bwrap_score_says_so_once_and_runs(monkeypatch, capsys):
    from propamm_jax.official import sandbox

    monkeypatch.setattr(sandbox, "unavailable", lambda: "bwrap not found (test)")
    monkeypatch.setattr(sandbox, "_NOTICE_SHOWN", [])
    result = _score([GOOD], sandbox="auto", seeds=[0, 1])
    notices = [ln for ln in capsys.readouterr().err.splitlines() if "sandbox unavailable" in ln]
    assert len(result.results.sims) == 2 and len(notices) == 1, notices


def test_score_from_a_script_without_a_main_guard(tmp_path):
    script = tmp_path / "no_guard.py"
    script.write_text(
        "from propamm_jax import score\n"
        "from propamm_jax.config import SimConfig\n"
        f"r = score([{str(GOOD)!r}], config=SimConfig(steps=50, epoch_len=10), seeds=[0, 1],\n"
        "          workers=2, progress=False)\n"
        "print('sims', len(r.results.sims), 'failures', len(r.failures))\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0 and "sims 2 failures 0" in proc.stdout, proc.stderr[-2000:]


@needs_bwrap
def test_workers_see_only_what_they_need(tmp_path):
    """A probe run the way workers are run: no home, no sources, no results, no network."""
    from propamm_jax.official.sandbox import bwrap_command, worker_env

    probe = ("import os, socket\n"
             "home = os.path.exists(os.path.expanduser('~root/.bashrc'))\n"
             f"tests = os.path.exists({str(Path(__file__).parent)!r})\n"
             "ifaces = sorted(n for _, n in socket.if_nameindex())\n"
             "writable = [p for p in ('/', '/usr/lib', '/tmp') if os.access(p, os.W_OK)]\n"
             "print(home, tests, ifaces, os.getpid(), '|'.join(sorted(os.listdir('/tmp'))) or '-',"
             " writable)\n")
    command = bwrap_command([], worker_env())
    # /tmp is a private tmpfs: it holds nothing but the mount points of read-only binds that
    # live under /tmp (a checkout or venv there, as in a CI clone), never the host's /tmp.
    binds = [command[i + 2] for i, a in enumerate(command) if a in ("--ro-bind", "--bind")]
    under_tmp = sorted({Path(d).relative_to("/tmp").parts[0] for d in binds
                        if d.startswith("/tmp/")})
    proc = subprocess.run(command + [sys.executable, "-I", "-c", probe],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False", "['lo']", "2", "|".join(under_tmp) or "-",
                                   "['/tmp']"], proc.stdout
    assert shutil.which("bwrap")


def test_a_worker_message_outside_the_protocol_is_refused():
    """What a worker sends is untrusted: only the expected messages for its block pass."""
    from propamm_jax.official.scoring import _parse, _ProtocolError, _Slot

    slot = _Slot(worker=None, block=[(4, 104), (5, 105)], index=4)
    assert _parse(slot, ["start", 5]) == ("start", 5, None)
    assert _parse(slot, ["done", [{"seed": 104}, None], 4]) == ("done", 4, ({"seed": 104}, None))
    assert _parse(slot, ["fail", 6, "crash", "x", 4]) == ("fail", 4, (6, "crash", "x"))
    for bad in (["start", 7], ["done", [{}, None], 5], ["done", ["not a dict", None], 4],
                ["fail", "six", "crash", "x", 4], ["ready", 1], {"kind": "ready"}, [], "ready",
                ["exec", "rm -rf /"]):
        with pytest.raises(_ProtocolError):
            _parse(slot, bad)


@needs_bwrap
def test_cli_score_and_validate_print_one_line_per_hostile_strategy(scene):
    quiet, reader = scene.prebuilt("quiet_exit"), scene.source("read_outside")
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "propamm_jax.cli", *map(str, args), "--require-sandbox"],
        capture_output=True, text=True, timeout=300)
    scored = run("score", quiet, GOOD, "--steps", "200",
                 "--epoch-len", "100", "--simulations", "6", "--workers", "2", "--no-progress",
                 "--no-journal")
    assert scored.returncode == 1, scored.stderr
    lines = scored.stderr.strip().splitlines()
    assert lines == ["FAILED seed 3: strategy libquiet_exit.so: crash: in after_swap: exit code 0 "
                     "without a result (the process was ended from inside)"], lines
    assert "5 simulations in" in scored.stdout
    checked = run("validate", reader, "--allow-unsafe-source")
    fails = [ln for ln in checked.stdout.splitlines() if ln.startswith("FAIL")]
    assert checked.returncode == 1 and len(fails) == 1, checked.stdout
    assert fails[0].startswith("FAIL read_outside.rs: simulated trade histories: crash (SIGABRT: "
                               "panicked at read_outside.rs:") and "contained: read failed" in fails[0]
    assert CANARY not in checked.stdout + scored.stdout + scored.stderr
