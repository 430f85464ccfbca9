"""`propamm validate`: checks a strategy before anyone scores it.

Static checks (source policy, compilation) run here; everything that executes the
strategy runs in sandboxed child processes (`sandbox.launch`, in bubblewrap where it works),
one per group of checks, so that a panic, a wild write, a hang or a runaway allocation ends that child and
becomes a FAIL line naming the input that caused it. While a child calls the strategy it
keeps the description of the current input and the call's start time on a `CallBoard`
(a file both processes map): the
parent kills a call that does not return (wall time past 10x the per-call budget, at least
1 s, so that a busy machine's scheduling delays are not blamed on the strategy) and reports
exactly that input; the budget itself is checked against each call's CPU time (thread time,
measured in the child).

Curve checks (output within the reserve, monotone, concave) run on ladders of input sizes
over random reserve states, with zero storage and with storages the strategy itself reached
over simulated trade histories, in both directions. Integer rounding is tolerated up to a few
units of output plus a few input units' worth of output at the spot rate. Monotonicity and
concavity are warnings unless `strict`; an output above the reserve is always a failure.
"""

from __future__ import annotations

import mmap
import os
import random
import select
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from propamm_jax.errors import PropammError
from propamm_jax.sandbox import Limits, Worker, classify_death, cpu_budget, launch

STORAGE = 1024
U64_MAX = 2**64 - 1
DEFAULT_CALL_BUDGET_MS = 100.0
JOB_CPU_SECONDS = 60          # CPU time one group of checks may use at most
JOB_WALL_SECONDS = 120.0      # wall time one group of checks may take at most

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"


@dataclass(frozen=True)
class Check:
    """One line of a validation report."""

    name: str
    status: str
    detail: str = ""

    def line(self, label: str) -> str:
        return f"{self.status} {label}: {self.name}" + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class Report:
    """Every check of one file, in the order they ran."""

    path: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def first_failure(self) -> Check | None:
        return next((c for c in self.checks if c.status == FAIL), None)

    def lines(self) -> list[str]:
        return [c.line(Path(self.path).name) for c in self.checks]


@dataclass(frozen=True)
class Plan:
    """How hard to look: the sizes of every generated input set (plain data for children)."""

    seed: int = 0
    reserve_states: int = 6
    ladder_points: int = 48
    concave_points: int = 16
    histories: int = 16
    history_steps: int = 120
    epoch_len: int = 50
    fuzz_calls: int = 300
    determinism_calls: int = 64
    call_budget_ms: float = DEFAULT_CALL_BUDGET_MS
    memory_bytes: int = 4 * 2**30
    snapshot_every: int = 30


QUICK = Plan(reserve_states=3, ladder_points=32, concave_points=12, histories=0, fuzz_calls=0,
             determinism_calls=16)


# ─── Inputs (pure functions of the plan: parent and child generate the same ones) ────────

def compute_payload(is_buy: bool, amount: int, rx: int, ry: int, storage: bytes) -> bytes:
    """The reference's compute_swap payload: side (0 = buy X), input, reserves, storage."""
    return struct.pack("<BQQQ", 0 if is_buy else 1, amount, rx, ry) + storage


def after_swap_payload(is_buy: bool, amount: int, output: int, rx: int, ry: int, step: int,
                       epoch_len: int, n: int, index: int, flow: float, weight: float,
                       competitors: Sequence[float], storage: bytes) -> bytes:
    """The reference's after_swap payload (tag 2), 92 bytes + storage."""
    head = struct.pack("<BBQQQQQIIBBff", 2, 0 if is_buy else 1, amount, output, rx, ry, step,
                       step % epoch_len % 2**32, step // epoch_len % 2**32, n, index, flow,
                       weight)
    return head + struct.pack("<8f", *competitors) + storage


def epoch_payload(epoch: int, rx: int, ry: int, epoch_edge: float, cumulative: float,
                  weight: float, storage: bytes) -> bytes:
    """The epoch hook's payload (tag 5), 41 bytes + storage."""
    return struct.pack("<BIQQddf", 5, epoch, rx, ry, epoch_edge, cumulative, weight) + storage


def reserve_states(plan: Plan) -> list[tuple[int, int]]:
    """The reference's starting reserves, then random ones: 1 to 10 000 X at prices
    1 to 1000 Y per X (1e9-scaled integers)."""
    rng = random.Random(f"reserves-{plan.seed}")
    states = [(100 * 10**9, 10_000 * 10**9)]
    for _ in range(plan.reserve_states - 1):
        rx = int(10 ** rng.uniform(9, 13))
        states.append((rx, min(int(rx * 10 ** rng.uniform(0, 3)), 2**62)))
    return states


def ladder(reserve_in: int, points: int) -> list[int]:
    """Geometric input sizes from 1 unit to 4x the input-side reserve."""
    top = min(4 * reserve_in, 2**62)
    values = sorted({max(1, int(round(top ** (k / (points - 1))))) for k in range(points)})
    return values


def concave_grids(reserve_in: int, points: int) -> list[list[int]]:
    """Equally spaced inputs (0, h, 2h, ...) at four scales: second differences need equal
    steps."""
    grids = []
    for fraction in (1e-4, 1e-3, 1e-2, 5e-2):
        h = max(1, int(reserve_in * fraction))
        grids.append([k * h for k in range(points)])
    return grids


def _tolerance(rate: float, value: int) -> float:
    """Rounding slack: a few units of output, a few input units at the spot rate, 1e-9."""
    return 4.0 + 4.0 * max(rate, 1.0) + 1e-9 * abs(value)


# ─── The child side ──────────────────────────────────────────────────────────────────────

class CallBoard:
    """What the child is calling now, in memory shared with the parent (a file both map):
    the wall-clock start of the current call (f64 at 0; 0.0 between calls) and its
    description (NUL-terminated UTF-8 from byte 8)."""

    SIZE = 4096

    def __init__(self, fd: int):
        self.map = mmap.mmap(fd, self.SIZE)

    def enter(self, what: str) -> None:
        data = what.encode()[: self.SIZE - 9]
        self.map[8 : 8 + len(data) + 1] = data + b"\0"
        struct.pack_into("<d", self.map, 0, time.monotonic())

    def leave(self) -> None:
        struct.pack_into("<d", self.map, 0, 0.0)
        self.map[8] = 0

    def started(self) -> float:
        return struct.unpack_from("<d", self.map, 0)[0]

    def current(self) -> str:
        raw = self.map[8:self.SIZE]
        return raw[: raw.find(b"\0") if b"\0" in raw else len(raw)].decode(errors="replace")


class _Prober:
    """Calls the strategy with the current input published on the call board."""

    def __init__(self, path: str, board: CallBoard):
        from propamm_jax.native.bridge import NativeStrategy, ffi

        self.ffi = ffi
        self.strategy = NativeStrategy(Path(path))
        self.board = board
        self.slowest = (0, "")

    def _enter(self, what: str) -> None:
        self.board.enter(what)

    def _leave(self, t0: int, what: str) -> None:
        self.board.leave()
        ns = time.thread_time_ns() - t0
        if ns > self.slowest[0]:
            self.slowest = (ns, what)

    def compute(self, payload: bytes, what: str) -> int:
        buf = self.ffi.from_buffer("uint8_t[]", payload)
        self._enter(what)
        t0 = time.thread_time_ns()
        out = int(self.strategy._compute(buf, len(payload)))
        self._leave(t0, what)
        return out

    def after(self, payload: bytes, storage: bytearray, what: str) -> None:
        buf = self.ffi.from_buffer("uint8_t[]", payload)
        st = self.ffi.from_buffer("uint8_t[]", storage)
        self._enter(what)
        t0 = time.thread_time_ns()
        self.strategy._after(buf, len(payload), st)
        self._leave(t0, what)


def _side(is_buy: bool) -> str:
    return "buy X (input Y)" if is_buy else "sell X (input X)"


def _job_load(p: _Prober, plan: Plan, send) -> None:
    from propamm_jax.native.bridge import MAX_NAME

    send(("check", "ABI symbols", PASS, "compute_swap, after_swap, get_name present"))
    big = p.ffi.new("uint8_t[]", 4096)
    p._enter("get_name(buffer of 4096 bytes)")
    n = int(p.strategy._get_name(big, 4096))
    p._leave(time.thread_time_ns(), "get_name")
    small = p.ffi.new("uint8_t[]", 4096)
    p._enter(f"get_name(buffer of {MAX_NAME} bytes)")
    n_small = int(p.strategy._get_name(small, MAX_NAME))
    p._leave(time.thread_time_ns(), "get_name")
    raw = bytes(p.ffi.buffer(big, min(n, 4096)))
    if n == 0:
        send(("check", "name", FAIL, "get_name returns an empty name"))
    elif n > MAX_NAME:
        send(("check", "name", FAIL, f"name is {n} bytes; at most {MAX_NAME} allowed"))
    elif n_small > MAX_NAME or any(bytes(p.ffi.buffer(small, 4096))[MAX_NAME:]):
        send(("check", "name", FAIL, f"get_name writes past max_len={MAX_NAME}"))
    else:
        try:
            send(("check", "name", PASS, repr(raw.decode("utf-8"))))
        except UnicodeDecodeError as exc:
            send(("check", "name", FAIL, f"name is not valid UTF-8 (byte {exc.start})"))


def _history(p: _Prober, plan: Plan, h: int, snapshot: Callable[[bytes], None]) -> None:
    """One simulated history: trades priced by the strategy's own compute_swap, after_swap
    after each, the epoch hook every `epoch_len` steps; storage evolves as in a simulation."""
    rng = random.Random(f"history-{plan.seed}-{h}")
    rx, ry = reserve_states(plan)[h % plan.reserve_states]
    storage = bytearray(STORAGE)
    n = rng.randint(1, 8)
    index = rng.randrange(n)
    edge = 0.0
    for step in range(plan.history_steps):
        price = ry / max(rx, 1)
        for _ in range(rng.choice((0, 1, 1, 2))):
            is_buy = rng.random() < 0.5
            r_in, r_out = (ry, rx) if is_buy else (rx, ry)
            amount = max(1, int(r_in * 10 ** rng.uniform(-6, -1)))
            what = (f"history {h}, step {step}: compute_swap({_side(is_buy)}, input={amount}, "
                    f"reserves=({rx}, {ry}), own storage)")
            out = min(p.compute(compute_payload(is_buy, amount, rx, ry, bytes(storage)), what),
                      r_out)
            if is_buy:
                ry, rx = min(ry + amount, U64_MAX), rx - out
            else:
                rx, ry = min(rx + amount, U64_MAX), ry - out
            competitors = [rng.choice((price * rng.uniform(0.9, 1.1), float("nan")))
                           for _ in range(8)]
            payload = after_swap_payload(is_buy, amount, out, rx, ry, step, plan.epoch_len, n,
                                         index, rng.uniform(0, 1), rng.uniform(0.02, 1),
                                         competitors, bytes(storage))
            p.after(payload, storage, f"history {h}, step {step}: after_swap({_side(is_buy)}, "
                                      f"input={amount}, output={out}, reserves=({rx}, {ry}))")
        if step and step % plan.epoch_len == 0:
            edge_e = rng.gauss(0, 50)
            edge += edge_e
            payload = epoch_payload(step // plan.epoch_len, rx, ry, edge_e, edge,
                                    rng.uniform(0.02, 1), bytes(storage))
            p.after(payload, storage, f"history {h}, step {step}: epoch hook "
                                      f"(epoch {step // plan.epoch_len}, reserves=({rx}, {ry}))")
        if step % plan.snapshot_every == plan.snapshot_every - 1:
            snapshot(bytes(storage))


def _job_history(p: _Prober, plan: Plan, send) -> None:
    for h in range(plan.histories):
        _history(p, plan, h, lambda s: send(("storage", s)))
    send(("check", "simulated trade histories", PASS,
          f"{plan.histories} histories x {plan.history_steps} steps"))


def _curve_cases(plan: Plan, storages: list[bytes]):
    for si, storage in enumerate(storages):
        for rx, ry in reserve_states(plan):
            for is_buy in (True, False):
                yield si, storage, rx, ry, is_buy


def _job_curves(p: _Prober, plan: Plan, send, storages: list[bytes]) -> None:
    """Output within the reserve, monotone and concave, in both directions."""
    over = mono = conc = None
    for si, storage, rx, ry, is_buy in _curve_cases(plan, storages):
        r_in, r_out = (ry, rx) if is_buy else (rx, ry)
        rate = r_out / r_in
        where = f"{_side(is_buy)}, reserves=({rx}, {ry}), storage #{si}"

        def q(x: int) -> int:
            return p.compute(compute_payload(is_buy, x, rx, ry, storage),
                             f"compute_swap({where}, input={x})")

        xs = ladder(r_in, plan.ladder_points)
        ys = [q(x) for x in xs]
        for x, y in zip(xs, ys):
            if over is None and y > r_out:
                over = f"output {y} > reserve {r_out} for input {x} ({where})"
        for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
            if mono is None and y1 < y0 - _tolerance(rate, y0):
                mono = f"output falls from {y0} to {y1} as input grows {x0} -> {x1} ({where})"
        for grid in concave_grids(r_in, plan.concave_points):
            gy = [q(x) for x in grid]
            for k in range(1, len(grid) - 1):
                d0, d1 = gy[k] - gy[k - 1], gy[k + 1] - gy[k]
                if conc is None and d1 > d0 + _tolerance(rate, d0):
                    conc = (f"marginal output rises from {d0} to {d1} per {grid[1]} input "
                            f"at input {grid[k]} ({where})")
    send(("check", "output within reserve", FAIL if over else PASS, over or
          "every quote leaves the pool solvent"))
    send(("curve", "monotone", mono))
    send(("curve", "concave", conc))


def _job_determinism(p: _Prober, plan: Plan, send, storages: list[bytes]) -> None:
    rng = random.Random(f"determinism-{plan.seed}")
    cases = []
    for k in range(plan.determinism_calls):
        rx, ry = rng.choice(reserve_states(plan))
        is_buy = rng.random() < 0.5
        amount = int((ry if is_buy else rx) * 10 ** rng.uniform(-6, 0))
        cases.append((is_buy, amount, rx, ry, rng.choice(storages)))
    first = [p.compute(compute_payload(*c), f"compute_swap({_side(c[0])}, input={c[1]}, "
                                            f"reserves=({c[2]}, {c[3]}))") for c in cases]
    # Same payloads, reverse order: hidden state carried between calls shows up here.
    again = [p.compute(compute_payload(*c), f"compute_swap({_side(c[0])}, input={c[1]}, "
                                            f"reserves=({c[2]}, {c[3]}))")
             for c in reversed(cases)][::-1]
    for c, a, b in zip(cases, first, again):
        if a != b:
            send(("check", "deterministic", FAIL,
                  f"compute_swap({_side(c[0])}, input={c[1]}, reserves=({c[2]}, {c[3]})) "
                  f"gave {a}, then {b}"))
            return
    for k in range(min(16, plan.determinism_calls)):
        storage = rng.choice(storages)
        payload = after_swap_payload(True, 10**9, 10**7, 10**11, 10**13, k, plan.epoch_len, 2,
                                     0, 0.5, 0.5, [100.0] * 8, storage)
        s1, s2 = bytearray(storage), bytearray(storage)
        p.after(payload, s1, f"after_swap (determinism case {k})")
        p.after(payload, s2, f"after_swap (determinism case {k}, repeated)")
        if s1 != s2:
            send(("check", "deterministic", FAIL,
                  f"after_swap on the same payload and storage (case {k}) wrote different storage"))
            return
    send(("check", "deterministic", PASS, f"{len(cases)} quotes and after_swap calls repeat exactly"))


def _random_u64(rng: random.Random) -> int:
    return rng.choice((0, 1, U64_MAX, rng.getrandbits(64), rng.getrandbits(rng.randint(1, 64))))


def _job_fuzz(p: _Prober, plan: Plan, send) -> None:
    rng = random.Random(f"fuzz-{plan.seed}")
    for k in range(plan.fuzz_calls):
        is_buy = rng.random() < 0.5
        amount, rx, ry = _random_u64(rng), _random_u64(rng), _random_u64(rng)
        p.compute(compute_payload(is_buy, amount, rx, ry, rng.randbytes(STORAGE)),
                  f"random payload {k}: compute_swap({_side(is_buy)}, input={amount}, "
                  f"reserves=({rx}, {ry}), random storage)")
    send(("check", "compute_swap survives random payloads", PASS, f"{plan.fuzz_calls} calls"))
    for k in range(plan.fuzz_calls):
        storage = bytearray(rng.randbytes(STORAGE))
        vals = [_random_u64(rng) for _ in range(5)]
        n = rng.randint(0, 255)
        payload = after_swap_payload(rng.random() < 0.5, vals[0], vals[1], vals[2], vals[3],
                                     vals[4], rng.randint(1, 2**32 - 1), n, rng.randint(0, 255),
                                     rng.uniform(-1e9, 1e9), rng.uniform(-1, 2),
                                     [rng.uniform(-1e6, 1e6) for _ in range(8)], bytes(storage))
        p.after(payload, storage, f"random payload {k}: after_swap(input={vals[0]}, "
                                  f"output={vals[1]}, reserves=({vals[2]}, {vals[3]}), "
                                  f"step={vals[4]}, random storage)")
    send(("check", "after_swap survives random payloads", PASS, f"{plan.fuzz_calls} calls"))
    for k in range(plan.fuzz_calls):
        storage = bytearray(rng.randbytes(STORAGE))
        rx, ry = _random_u64(rng), _random_u64(rng)
        epoch = rng.getrandbits(32)
        payload = epoch_payload(epoch, rx, ry, rng.uniform(-1e12, 1e12),
                                rng.uniform(-1e12, 1e12), rng.uniform(-1, 2), bytes(storage))
        p.after(payload, storage, f"random payload {k}: epoch hook(epoch {epoch}, "
                                  f"reserves=({rx}, {ry}), random storage)")
    send(("check", "epoch hook survives random payloads", PASS, f"{plan.fuzz_calls} calls"))


def _job_preflight(plan: Plan, send, libraries: list[str], labels: list[str],
                   board: CallBoard) -> None:
    """Score's gate, all strategies in one child: symbols, name, and the curve checks on zero
    storage. Messages are tagged with the strategy's position."""
    for i, (library, label) in enumerate(zip(libraries, labels)):
        send(("begin", i))
        tagged = lambda message, i=i: send(("of", i, message))  # noqa: E731
        try:
            prober = _Prober(library, board)
        except PropammError as exc:
            tagged(("check", "ABI symbols", FAIL, str(exc).split(": ", 1)[-1]))
            continue
        _job_load(prober, plan, tagged)
        _job_curves(prober, plan, tagged, [bytes(STORAGE)])


_JOBS = {"load": _job_load, "history": _job_history, "curves": _job_curves,
         "determinism": _job_determinism, "fuzz": _job_fuzz}


def run_child(job: dict, send: Callable) -> None:
    """A validation child (in `propamm_jax.worker`, already confined): one group of checks."""
    board = CallBoard(job["board_fd"])
    cpu_budget(JOB_CPU_SECONDS)
    name, path, plan, args = job["job"], job["path"], job["plan"], job["args"]
    if name == "preflight":
        _job_preflight(plan, send, *args, board)
        send(("end",))
        return
    try:
        prober = _Prober(path, board)
    except PropammError as exc:  # a missing symbol, or not a loadable library
        send(("check", "ABI symbols", FAIL, str(exc).split(": ", 1)[-1]))
        send(("end",))
        return
    _JOBS[name](prober, plan, send, *args)
    send(("slowest", prober.slowest[0], prober.slowest[1]))
    send(("end",))


# ─── The parent side ─────────────────────────────────────────────────────────────────────

@dataclass
class JobOutcome:
    """What one child reported, and how it ended."""

    messages: list = field(default_factory=list)
    death: str | None = None     # "<kind>: <detail> on <input>" when the child did not finish
    slowest_ns: int = 0
    slowest_what: str = ""


def run_job(job: str, library: str, plan: Plan, args: tuple = (), sandbox: str = "auto"
            ) -> JobOutcome:
    """Runs one group of checks in a sandboxed child and watches every call it makes."""
    outcome = JobOutcome()
    with tempfile.TemporaryDirectory(prefix="propamm-validate-") as tmp:
        board_path = os.path.join(tmp, "board")
        with open(board_path, "wb") as f:
            f.write(bytes(CallBoard.SIZE))
        board_fd = os.open(board_path, os.O_RDWR)
        board = CallBoard(board_fd)
        readable = list(args[0]) if job == "preflight" else [library]
        worker = launch({"kind": "validate", "limits": Limits(plan.memory_bytes), "job": job,
                         "path": library, "plan": plan, "args": args, "board_fd": board_fd},
                        readable, tmp, "validate", sandbox, pass_fds=(board_fd,))
        try:
            _watch_job(worker, board, plan, outcome)
        finally:
            worker.kill()
            worker.close()
            os.close(board_fd)
    return outcome


def _watch_job(worker: Worker, board: CallBoard, plan: Plan, outcome: JobOutcome) -> None:
    """Collects the child's messages until it ends; kills it on a hung call or past the
    job's wall time, and turns its death into `outcome.death`."""
    hang = max(10 * plan.call_budget_ms / 1000.0, 1.0)
    deadline = time.monotonic() + JOB_WALL_SECONDS
    fd = worker.channel.fd
    while True:
        ready, _, _ = select.select([fd], [], [], 0.02)
        if ready:
            try:
                messages = worker.channel.feed()
            except ValueError:
                outcome.death = "crash (the child broke the protocol) on " + (
                    board.current() or "loading the library")
                return
            for message in messages:
                if message[0] == "end":
                    return
                if message[0] == "slowest":
                    outcome.slowest_ns, outcome.slowest_what = int(message[1]), str(message[2])
                else:
                    outcome.messages.append(tuple(message))
        t0, now, current = board.started(), time.monotonic(), board.current()
        if t0 and now - t0 > hang:
            worker.kill()
            code = worker.close()
            text = _read(worker.stderr_path)
            if "panicked at" in text:  # it was dying, not hanging
                kind, detail = classify_death(-6, text)
                outcome.death = f"{kind} ({detail}) on {current}"
            else:
                outcome.death = (f"time budget: no return after {now - t0:.1f} s (per-call "
                                 f"budget {plan.call_budget_ms:g} ms) from {current}")
            return
        if now > deadline:
            outcome.death = f"time budget: checks still running after {JOB_WALL_SECONDS:g} s"
            return
        if worker.channel.eof:
            code = worker.close()
            text = _read(worker.stderr_path)
            if "Traceback" in text and not current:
                raise PropammError(f"validation child failed: {text.strip().splitlines()[-1]}")
            kind, detail = classify_death(code, text)
            if code == 0:
                detail = "exit code 0 before the checks ended (the process was ended from inside)"
            outcome.death = f"{kind} ({detail}) on {current or 'loading the library'}"
            return


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _curve_status(strict: bool, problem: str | None) -> tuple[str, str]:
    if problem is None:
        return PASS, ""
    return (FAIL if strict else WARN), problem


def validate_library(library: str, plan: Plan = Plan(), strict: bool = False,
                     sandbox: str = "auto") -> list[Check]:
    """The dynamic checks on a compiled library; each group in its own confined child."""
    checks: list[Check] = []
    slowest = (0, "")

    def run(job: str, expected: list[str], args: tuple = ()) -> JobOutcome:
        nonlocal slowest
        out = run_job(job, library, plan, args, sandbox)
        got = []
        for message in out.messages:
            if message[0] == "check":
                checks.append(Check(message[1], message[2], message[3]))
                got.append(message[1])
            elif message[0] == "curve":
                status, detail = _curve_status(strict, message[2])
                checks.append(Check(message[1], status, detail or "within rounding tolerance"))
                got.append(message[1])
        if out.death:
            missing = [name for name in expected if name not in got]
            if missing:
                checks.append(Check(missing[0], FAIL, out.death))
                checks.extend(Check(name, SKIP, "not run: the strategy failed above")
                              for name in missing[1:])
        if out.slowest_ns > slowest[0]:
            slowest = (out.slowest_ns, out.slowest_what)
        return out

    load = run("load", ["ABI symbols", "name"])
    if load.death or any(c.name == "ABI symbols" and c.status == FAIL for c in checks):
        return checks
    storages = [bytes(STORAGE)]
    if plan.histories:
        hist = run("history", ["simulated trade histories"])
        storages += [m[1] for m in hist.messages if m[0] == "storage"][:8]
    run("curves", ["output within reserve", "monotone", "concave"], (storages,))
    run("determinism", ["deterministic"], (storages,))
    if plan.fuzz_calls:
        run("fuzz", ["compute_swap survives random payloads", "after_swap survives random payloads",
                     "epoch hook survives random payloads"])
    budget_failed = any("time budget" in c.detail for c in checks if c.status == FAIL)
    if budget_failed:
        checks.append(Check("call time budget", FAIL, f"a call ran past {plan.call_budget_ms:g} ms"))
    elif slowest[0] > plan.call_budget_ms * 1e6:
        checks.append(Check("call time budget", FAIL, f"{slowest[0] / 1e6:.1f} ms > "
                            f"{plan.call_budget_ms:g} ms on {slowest[1]}"))
    else:
        checks.append(Check("call time budget", PASS, f"slowest call {slowest[0] / 1e3:.0f} us "
                            f"(budget {plan.call_budget_ms:g} ms)"))
    return checks


def validate_file(path: str | os.PathLike, *, strict: bool = False,
                  allow_unsafe_source: bool = False, plan: Plan = Plan(),
                  sandbox: str = "auto") -> Report:
    """Every check on one `.rs` or `.so` file. Never raises for a bad strategy: problems are
    FAIL lines (a missing or unreadable file too)."""
    from propamm_jax.native.build import compile_rust, read_source
    from propamm_jax.native.source import check_form, check_policy, prepare_source

    path = Path(path)
    checks: list[Check] = []
    report = lambda: Report(str(path), tuple(checks))  # noqa: E731
    if not path.exists():
        checks.append(Check("file", FAIL, "no such file"))
        return report()
    if path.suffix == ".rs":
        try:
            code = read_source(path)
            text = code.decode("utf-8")
        except (PropammError, UnicodeDecodeError) as exc:
            checks.append(Check("file", FAIL, str(exc)))
            return report()
        if allow_unsafe_source:
            checks.append(Check("source policy", SKIP, "relaxed by --allow-unsafe-source"))
        else:
            violation = check_policy(text)
            if violation:
                checks.append(Check("source policy", FAIL, violation.message(path.name)
                                    .split("source policy: ", 1)[1]
                                    .replace("`", f"line {violation.line}: `", 1)))
                return report()
            checks.append(Check("source policy", PASS, "no forbidden constructs"))
        try:
            kind = check_form(text, path.name).kind
        except PropammError as exc:
            checks.append(Check("form", FAIL, str(exc).split(": ", 1)[1]))
            return report()
        form = "safe form, exports generated" if kind == "safe" else "raw C ABI"
        try:
            library = compile_rust(path, code=prepare_source(code, str(path), True))
        except PropammError as exc:
            checks.append(Check("compiles", FAIL, str(exc).split(": does not compile: ", 1)[-1]))
            return report()
        checks.append(Check("compiles", PASS, form))
    elif path.suffix == ".so":
        library = path.resolve()
    else:
        from propamm_jax.pools.families import policy_file_note

        note = policy_file_note(path)  # a policy.json (an oracle's never exports)
        checks.append(Check("file", FAIL, note.split(" ", 1)[1] if note else
                            "not a strategy (expected a .rs source or a compiled .so)"))
        return report()
    checks.extend(validate_library(str(library), plan, strict, sandbox))
    return report()


@dataclass(frozen=True)
class Verdict:
    """Score's gate for one strategy: why it is rejected (one line naming the file), if it
    is, and warnings that do not stop it."""

    label: str
    rejected: str | None = None
    warnings: tuple[str, ...] = ()


def preflight(libraries: Sequence[str], labels: Sequence[str], strict: bool = False,
              plan: Plan = QUICK, sandbox: str = "auto") -> list[Verdict]:
    """The checks `score` runs before scoring, in one confined child for all strategies
    (a strategy that kills the child is rejected and the child restarted for the rest)."""
    verdicts: dict[int, Verdict] = {}
    todo = list(range(len(libraries)))
    while todo:
        out = run_job("preflight", "", plan, ([libraries[i] for i in todo],
                                              [labels[i] for i in todo]), sandbox)
        checks: dict[int, list[Check]] = {}
        current = None
        for message in out.messages:
            if message[0] == "begin":
                current = todo[message[1]]
                checks[current] = []
            elif message[0] == "of":
                inner = message[2]
                target = checks.setdefault(todo[message[1]], [])
                if inner[0] == "check":
                    target.append(Check(inner[1], inner[2], inner[3]))
                elif inner[0] == "curve":
                    status, detail = _curve_status(strict, inner[2])
                    target.append(Check(inner[1], status, detail))
        for i, found in checks.items():
            label = labels[i]
            fail = next((c for c in found if c.status == FAIL), None)
            warnings = tuple(c.line(label) for c in found if c.status == WARN)
            if out.death and i == current:
                fail = Check("checks before scoring", FAIL, out.death)
            verdicts[i] = Verdict(label, fail.line(label).removeprefix("FAIL ") if fail else None,
                                  warnings)
        if out.death and current is None:
            raise PropammError(f"checks before scoring could not start: {out.death}")
        done = set(checks)
        todo = [i for i in todo if i not in done]
    return [verdicts[i] for i in range(len(libraries))]
