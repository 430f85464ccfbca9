"""The `propamm` command line.

User errors print one line, `propamm: error: ...`, and exit with code 2; no tracebacks. The
profile a command ran is always printed, since the two profiles are different markets.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from propamm_jax.errors import PropammError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        raise PropammError(f"{self.prog.split()[-1]}: {message}")


def _positive_int(name: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise PropammError(f"{name} must be an integer, got {text!r}") from None
        if value < 1:
            raise PropammError(f"{name} must be at least 1, got {value}")
        return value
    return parse


def _positive_float(name: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise PropammError(f"{name} must be a number, got {text!r}") from None
        if not value > 0:
            raise PropammError(f"{name} must be positive, got {text}")
        return value
    return parse


def _add_sandbox_options(p: argparse.ArgumentParser) -> None:
    """Where strategy code runs: bubblewrap by default where it works."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--require-sandbox", dest="sandbox", action="store_const",
                       const="require", default="auto",
                       help="refuse to run strategies when the bubblewrap sandbox is "
                            "unavailable (default: say so in one line and run with rlimits only)")
    group.add_argument("--no-sandbox", dest="sandbox", action="store_const", const="off",
                       help="run strategies without bubblewrap (rlimits only; for benchmarks)")


def _add_ray_option(p: argparse.ArgumentParser) -> None:
    """`--ray ADDRESS`: the same run fanned out over a Ray cluster (propamm_jax.cluster)."""
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run on a Ray cluster: auto (the one this machine belongs to), "
                        "HOST:PORT, or local (start one here); same results, byte for byte. "
                        "Needs pip install 'propamm-jax[ray]'")


def _seed(text: str) -> int:
    from propamm_jax.tape import parse_seed

    try:
        return parse_seed(text)
    except ValueError as exc:
        raise PropammError(str(exc)) from None


def _add_run_options(p: argparse.ArgumentParser, simulations: int = 100) -> None:
    p.add_argument("--simulations", type=_positive_int("--simulations"), default=simulations)
    p.add_argument("--steps", type=_positive_int("--steps"), default=10_000)
    p.add_argument("--epoch-len", type=_positive_int("--epoch-len"), default=1_000)
    p.add_argument("--seed-start", type=_seed, default=0)
    p.add_argument("--seed-stride", type=_positive_int("--seed-stride"), default=1)
    p.add_argument("--workers", type=_positive_int("--workers"), default=None,
                   help="worker processes (default: one per CPU core)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="propamm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("score", help="score compiled strategies officially")
    p.add_argument("files", nargs="*", help=".rs sources or compiled .so files")
    _add_run_options(p)
    p.add_argument("--profile", default="reference", choices=["reference", "corrected"])
    p.add_argument("--output", type=Path, default=None, help="write results JSON (golden schema)")
    p.add_argument("--trace-seeds", type=_seed, nargs="*", default=[],
                   help="also record per-step traces (first 300 steps) for these seeds")
    p.add_argument("--sim-timeout", type=_positive_int("--sim-timeout"), default=300,
                   help="seconds one simulation may take before it is reported as a failure")
    p.add_argument("--call-timeout", type=_positive_float("--call-timeout"), default=5.0,
                   help="seconds of wall time one strategy call may take before its "
                        "simulation is reported as a timeout")
    _add_robustness_options(p)
    _add_ray_option(p)
    p.set_defaults(run=cmd_score)

    p = sub.add_parser("simulate", help="simulate parametric pools on the fast JAX path")
    p.add_argument("--pool", action="append", default=[], metavar="SPEC",
                   help="cpamm:FEE_BPS or cpamm:BUY/SELL (repeat for several pools)")
    p.add_argument("--simulations", type=_positive_int("--simulations"), default=1000)
    p.add_argument("--steps", type=_positive_int("--steps"), default=10_000)
    p.add_argument("--epoch-len", type=_positive_int("--epoch-len"), default=1_000)
    p.add_argument("--seed-start", type=_seed, default=0)
    p.add_argument("--seed-stride", type=_positive_int("--seed-stride"), default=1)
    p.add_argument("--profile", default="corrected", choices=["reference", "corrected"])
    p.add_argument("--batch-size", type=_positive_int("--batch-size"), default=1000)
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--output", type=Path, default=None)
    p.add_argument("--no-progress", action="store_true")
    _add_ray_option(p)
    p.set_defaults(run=cmd_simulate)

    p = sub.add_parser("sweep", help="run a pool over a parameter grid x seeds (one batch)")
    p.add_argument("--pool", default="cpamm", metavar="SPEC",
                   help="the swept pool: cpamm (fees from the grid) or a --pool spec")
    p.add_argument("--fee-bps", metavar="RANGE", default=None,
                   help="both cpamm fees: START:STOP:STEP (stop included), N or N,M,...")
    p.add_argument("--fee-buy-bps", metavar="RANGE", default=None)
    p.add_argument("--fee-sell-bps", metavar="RANGE", default=None)
    p.add_argument("--param", action="append", default=[], metavar="NAME=RANGE",
                   help="any parameter of the swept pool, e.g. w_vol=0:2:0.5 (repeatable)")
    p.add_argument("--opponent", action="append", default=[], metavar="SPEC",
                   help="a fixed pool competing at every grid point (repeatable)")
    p.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE",
                   help="fix a market parameter on the same draws, e.g. sigma=0.001")
    p.add_argument("--simulations", type=_positive_int("--simulations"), default=100)
    p.add_argument("--steps", type=_positive_int("--steps"), default=10_000)
    p.add_argument("--epoch-len", type=_positive_int("--epoch-len"), default=1_000)
    p.add_argument("--seed-start", type=_seed, default=0)
    p.add_argument("--seed-stride", type=_positive_int("--seed-stride"), default=1)
    p.add_argument("--profile", default="corrected", choices=["reference", "corrected"])
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="the (point, seed) table: .parquet, .csv or .json")
    p.add_argument("--no-progress", action="store_true")
    _add_ray_option(p)
    p.set_defaults(run=cmd_sweep)

    p = sub.add_parser("frame", help="a results file as a tidy table (.json/.csv/.parquet)")
    p.add_argument("results", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--epochs", action="store_true",
                   help="one row per (simulation, strategy, epoch) instead of per simulation")
    p.set_defaults(run=cmd_frame)

    p = sub.add_parser("report", help="a self-contained HTML report of a results file")
    p.add_argument("results", type=Path)
    p.add_argument("-o", "--output", type=Path, default=Path("report.html"))
    p.add_argument("--training-log", type=Path, default=None,
                   help="a training log (generation + fitness columns) to plot")
    p.set_defaults(run=cmd_report)

    p = sub.add_parser("submit", help="score .rs strategies officially into a bundle directory")
    p.add_argument("files", nargs="*", help=".rs sources")
    p.add_argument("-o", "--output", type=Path, required=True, help="new bundle directory")
    _add_run_options(p, simulations=20)
    p.add_argument("--profile", default="reference", choices=["reference", "corrected"])
    p.set_defaults(run=cmd_submit)

    p = sub.add_parser("verify", help="re-run a bundle and confirm identical results")
    p.add_argument("bundle", type=Path)
    p.add_argument("--workers", type=_positive_int("--workers"), default=None)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=cmd_verify)

    p = sub.add_parser("leaderboard", help="rank the bundles under a directory")
    p.add_argument("root", type=Path)
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="also write the table (.json/.csv/.parquet)")
    p.set_defaults(run=cmd_leaderboard)

    _add_validate_parser(sub)
    _add_training_parsers(sub)

    p = sub.add_parser("demo", help="build the starter strategies and score them in both profiles")
    _add_run_options(p, simulations=20)
    p.set_defaults(run=cmd_demo)
    return parser


def _config(args):
    from propamm_jax.config import SimConfig

    return SimConfig(steps=args.steps, epoch_len=args.epoch_len)


def _add_robustness_options(p: argparse.ArgumentParser) -> None:
    """score's options for untrusted strategies and for not losing work."""
    p.add_argument("--strict", action="store_true",
                   help="reject non-monotone or non-concave curves instead of warning")
    p.add_argument("--allow-unsafe-source", action="store_true",
                   help="relax the source policy (files, network, processes, env, threads, FFI)")
    p.add_argument("--journal", type=Path, default=None,
                   help="append each finished simulation here (default: one file per run "
                        "under the cache)")
    p.add_argument("--resume", action="store_true",
                   help="read back the journal's finished simulations and score only the rest")
    p.add_argument("--no-journal", action="store_true", help="do not keep a results journal")
    _add_sandbox_options(p)


def _add_validate_parser(sub) -> None:
    p = sub.add_parser("validate", help="check strategies before scoring: PASS/WARN/FAIL per check")
    p.add_argument("files", nargs="*", help=".rs sources or compiled .so files")
    p.add_argument("--strict", action="store_true",
                   help="non-monotone or non-concave curves fail instead of warning")
    p.add_argument("--allow-unsafe-source", action="store_true", help="relax the source policy")
    p.add_argument("--call-budget-ms", type=_positive_int("--call-budget-ms"), default=100,
                   help="time one strategy call may take (ms)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the generated inputs")
    _add_sandbox_options(p)
    p.set_defaults(run=cmd_validate)


def cmd_validate(args) -> int:
    """One line per check per file; exit code 1 if any check failed."""
    from propamm_jax.validate import Plan, validate_file

    if not args.files:
        raise PropammError("no strategy given: pass at least one .rs or .so file")
    from propamm_jax.sandbox import sandboxed

    plan = Plan(seed=args.seed, call_budget_ms=float(args.call_budget_ms))
    sandboxed(args.sandbox)  # refuses up front with --require-sandbox
    status = 0
    for path in args.files:
        report = validate_file(path, strict=args.strict,
                               allow_unsafe_source=args.allow_unsafe_source, plan=plan,
                               sandbox=args.sandbox)
        for line in report.lines():
            print(line, flush=True)
        status |= 0 if report.ok else 1
    return status


def _score_and_print(files, args, profile: str, output: Path | None = None, trace_seeds=(),
                     sim_timeout: float = 300.0):
    from propamm_jax.scoring import format_table, score

    config = _config(args)
    print(f"profile: {profile}  |  {args.simulations} simulations x {config.steps} steps, "
          f"epoch {config.epoch_len}, seeds from {args.seed_start} stride {args.seed_stride}",
          flush=True)
    started = time.perf_counter()
    result = score(files, config=config, simulations=args.simulations,
                   seed_start=args.seed_start, seed_stride=args.seed_stride, profile=profile,
                   workers=args.workers, trace_seeds=trace_seeds,
                   progress=None if not args.no_progress else False, sim_timeout=sim_timeout,
                   ray=getattr(args, "ray", None), **_robustness_kwargs(args))
    elapsed = time.perf_counter() - started
    _print_rejections(result)
    print()
    print(format_table(result))
    resumed = f", {result.resumed} read back from the journal" if result.resumed else ""
    print(f"\n{len(result.results.sims)} simulations in {elapsed:.1f} s ({profile} profile"
          f"{resumed})")
    for failure in result.failures:
        print(f"FAILED {failure.line()}", file=sys.stderr)
    if output is not None:
        result.results.save(output)
        print(f"results written to {output}")
    return result


def _robustness_kwargs(args) -> dict:
    """score()'s keyword arguments for the options of `_add_robustness_options` (demo has
    none of them: defaults, and no journal)."""
    if not hasattr(args, "resume"):
        return {}
    return {"strict": args.strict, "allow_unsafe_source": args.allow_unsafe_source,
            "journal": None if args.no_journal else (args.journal or "auto"),
            "resume": args.resume, "sandbox": args.sandbox, "call_timeout": args.call_timeout}


def _print_rejections(result) -> None:
    for line in result.warnings:
        print(line, file=sys.stderr)
    for line in result.rejected:
        print(f"REJECTED {line}", file=sys.stderr)


def cmd_score(args) -> int:
    result = _score_and_print(args.files, args, args.profile, args.output, args.trace_seeds,
                              args.sim_timeout)
    return 1 if result.failures or result.rejected else 0


def _configure_jax() -> None:
    """The command line owns its process: 64-bit JAX, a persistent compilation cache and, on a
    CPU, one XLA device per core so that batches run on every core."""
    import os

    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={cores or 1}"
    import jax

    from propamm_jax.native.build import cache_dir

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def cmd_simulate(args) -> int:
    from propamm_jax.results import aggregate_table
    from propamm_jax.scoring import seed_list
    from propamm_jax.simulate import simulate

    if not args.pool:
        raise PropammError("no pool given: pass --pool cpamm:30 (repeatable)")
    _configure_jax()
    config = _config(args)
    seeds = seed_list(args.simulations, args.seed_start, args.seed_stride)
    print(f"profile: {args.profile}  |  fast path ({args.dtype})  |  {len(seeds)} simulations x "
          f"{config.steps} steps, epoch {config.epoch_len}", flush=True)
    started = time.perf_counter()
    results = simulate(args.pool, config, seeds, args.profile, args.batch_size, args.dtype,
                       progress=None if not args.no_progress else False, ray=args.ray)
    elapsed = time.perf_counter() - started
    print()
    print(aggregate_table(results))
    print(f"\n{len(results.sims)} simulations in {elapsed:.1f} s ({args.profile} profile)")
    if args.output is not None:
        results.save(args.output)
        print(f"results written to {args.output}")
    return 0


def cmd_sweep(args) -> int:
    from propamm_jax.frames import check_format, write_frame
    from propamm_jax.scoring import seed_list
    from propamm_jax.sweep import Grid, format_summary, parse_fixed, parse_range, summarize, sweep

    axes = [(name, parse_range(text, "--" + name.replace("_", "-")))
            for name, text in (("fee_bps", args.fee_bps), ("fee_buy_bps", args.fee_buy_bps),
                               ("fee_sell_bps", args.fee_sell_bps)) if text is not None]
    for item in args.param:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise PropammError(f"--param {item!r}: expected NAME=RANGE, e.g. w_vol=0:2:0.5")
        axes.append((name.strip(), parse_range(text, f"--param {name.strip()}")))
    if len({name for name, _ in axes}) < len(axes):
        raise PropammError("sweep: the same axis is given twice")
    if not axes:
        raise PropammError("no sweep axis: pass e.g. --fee-bps 5:100:5 or --param NAME=RANGE")
    if args.fee_bps is not None and len(axes) > 1:
        raise PropammError("--fee-bps sets both fees: do not combine it with "
                           "--fee-buy-bps/--fee-sell-bps")
    if args.output is not None:
        check_format(args.output)
    fixed = parse_fixed(args.fix)
    _configure_jax()
    config = _config(args)
    seeds = seed_list(args.simulations, args.seed_start, args.seed_stride)
    grid = Grid(tuple(axes))
    n_points = len(grid.points())
    print(f"profile: {args.profile}  |  sweep of {args.pool}: {n_points} grid points x "
          f"{len(seeds)} seeds x {config.steps} steps"
          + (f"  |  fixed {fixed}" if fixed else ""), flush=True)
    started = time.perf_counter()
    frame = sweep(args.pool, grid, config, seeds, args.profile, args.opponent, fixed,
                  args.dtype, progress=None if not args.no_progress else False, ray=args.ray)
    elapsed = time.perf_counter() - started
    print()
    print(format_summary(summarize(frame)))
    print(f"\n{len(frame)} simulations in {elapsed:.1f} s ({args.profile} profile)")
    if args.output is not None:
        write_frame(frame, args.output)
        print(f"table written to {args.output}")
    return 0


def cmd_frame(args) -> int:
    from propamm_jax.frames import check_format, epoch_frame, write_frame
    from propamm_jax.results import Results

    check_format(args.output)
    results = Results.load(args.results)
    frame = epoch_frame(results) if args.epochs else results.frame()
    write_frame(frame, args.output)
    print(f"{len(frame)} rows x {len(frame.columns)} columns written to {args.output}")
    return 0


def cmd_report(args) -> int:
    from propamm_jax.report import write_report

    path = write_report(args.results, args.output, args.training_log)
    print(f"report written to {path}")
    return 0


def cmd_submit(args) -> int:
    from propamm_jax.bundle import submit
    from propamm_jax.results import aggregate_table
    from propamm_jax.scoring import seed_list

    config = _config(args)
    seeds = seed_list(args.simulations, args.seed_start, args.seed_stride)
    print(f"profile: {args.profile}  |  {len(seeds)} simulations x {config.steps} steps, "
          f"epoch {config.epoch_len}", flush=True)
    sub = submit(args.files, args.output, config=config, seeds=seeds, profile=args.profile,
                 workers=args.workers, progress=None if not args.no_progress else False)
    from propamm_jax.results import Results

    print()
    print(aggregate_table(Results.load(sub.path / "results.json")))
    for failure in sub.failures:
        print(f"FAILED {failure.line()}", file=sys.stderr)
    print(f"\nbundle written to {sub.path} (receipt.json, results.json, sources/)")
    return 1 if sub.failures else 0


def cmd_verify(args) -> int:
    from propamm_jax.bundle import load_receipt, verify

    receipt = load_receipt(args.bundle)
    print(f"profile: {receipt['profile']}  |  re-running {len(receipt['seeds'])} simulations "
          f"of {args.bundle}", flush=True)
    report = verify(args.bundle, workers=args.workers,
                    progress=None if not args.no_progress else False)
    for check in report.checks:
        print(f"ok: {check}")
    for problem in report.problems:
        print(f"MISMATCH: {problem}")
    print("verified: identical" if report.ok else "NOT verified")
    return 0 if report.ok else 1


def cmd_leaderboard(args) -> int:
    from propamm_jax.bundle import format_leaderboard, leaderboard
    from propamm_jax.frames import check_format, write_frame

    if args.output is not None:
        check_format(args.output)
    board = leaderboard(args.root)
    print(format_leaderboard(board))
    if args.output is not None:
        write_frame(board, args.output)
        print(f"table written to {args.output}")
    return 0


def cmd_demo(args) -> int:
    from propamm_jax.native.build import starter_strategies

    files = starter_strategies()
    print("starter strategies: " + ", ".join(f.name for f in files))
    status = 0
    for profile in ("reference", "corrected"):
        print()
        result = _score_and_print(files, args, profile)
        status |= 1 if result.failures else 0
    return status


def _add_training_parsers(sub) -> None:
    """`train`, `export` and `evaluate` (issue #4; code in propamm_jax.training)."""
    p = sub.add_parser("train", help="train a dynamic-fee policy (evosax / optax) on the fast path")
    p.add_argument("--algorithm", default="cma_es", help="cma_es, open_es, snes (evosax) or adam (optax)")
    p.add_argument("--generations", type=_positive_int("--generations"), default=50)
    p.add_argument("--population", type=_positive_int("--population"), default=16)
    p.add_argument("--batch-seeds", type=_positive_int("--batch-seeds"), default=16,
                   help="training seeds per generation (resampled every generation)")
    p.add_argument("--train-seed-start", type=_seed, default=1_000_000)
    p.add_argument("--heldout-start", type=_seed, default=0)
    p.add_argument("--heldout", type=_positive_int("--heldout"), default=32,
                   help="held-out seeds monitored during training (never trained on)")
    p.add_argument("--eval-every", type=_positive_int("--eval-every"), default=5)
    p.add_argument("--seed", type=int, default=0, help="random seed of the algorithm")
    p.add_argument("--sigma-init", type=float, default=1.0)
    p.add_argument("--learning-rate", type=float, default=0.05)
    p.add_argument("--clip", type=float, default=1.0, help="adam: gradient clipping norm")
    p.add_argument("--smooth", type=float, default=0.01, help="adam: arbitrage floor smoothing")
    p.add_argument("--profile", choices=("corrected", "reference"), default="corrected")
    p.add_argument("--objective", default="edge", help="edge, risk or vs_normalizer")
    p.add_argument("--risk-lambda", type=float, default=2.0)
    p.add_argument("--opponent", action="append", default=[],
                   help="fixed pool (cpamm:30) or compiled strategy (.rs/.so; scored officially)")
    p.add_argument("--steps", type=_positive_int("--steps"), default=10_000)
    p.add_argument("--epoch-len", type=_positive_int("--epoch-len"), default=1_000)
    p.add_argument("--init", action="append", default=[], metavar="NAME=VALUE",
                   help="starting value of a parameter (repeatable; default bias=-1.2, "
                   "w_dev=1, others 0)")
    p.add_argument("--fee-min-bps", type=float, default=0.0, help="lowest fee the policy charges")
    p.add_argument("--fee-max-bps", type=float, default=300.0, help="highest fee the policy charges")
    p.add_argument("--out", type=Path, required=True, help="run directory (log, checkpoint, policy)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--no-progress", action="store_true")
    _add_ray_option(p)
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("export", help="a policy.json as a single-file Rust submission")
    p.add_argument("policy", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--name", default=None, help="strategy name (default: the file stem)")
    p.set_defaults(run=cmd_export)

    p = sub.add_parser("evaluate", help="a policy on held-out seeds: fast path and official")
    p.add_argument("policy", type=Path)
    p.add_argument("--profile", choices=("corrected", "reference"), default="corrected")
    p.add_argument("--simulations", type=_positive_int("--simulations"), default=100)
    p.add_argument("--seed-start", type=_seed, default=0)
    p.add_argument("--opponent", action="append", default=[],
                   help="fixed pool (cpamm:30) or compiled strategy (.rs/.so; scored officially)")
    p.add_argument("--steps", type=_positive_int("--steps"), default=10_000)
    p.add_argument("--epoch-len", type=_positive_int("--epoch-len"), default=1_000)
    p.add_argument("--fast-only", action="store_true", help="skip official scoring")
    p.add_argument("--workers", type=_positive_int("--workers"), default=None)
    _add_ray_option(p)
    p.set_defaults(run=cmd_evaluate)


def cmd_train(args) -> int:
    from propamm_jax.training.train import TrainConfig, train

    cfg = TrainConfig(
        algorithm=args.algorithm, generations=args.generations, population=args.population,
        batch_seeds=args.batch_seeds, train_seed_start=args.train_seed_start,
        heldout_start=args.heldout_start, heldout=args.heldout, eval_every=args.eval_every,
        seed=args.seed, sigma_init=args.sigma_init, learning_rate=args.learning_rate,
        clip=args.clip, smooth=args.smooth, profile=args.profile, objective=args.objective,
        risk_lambda=args.risk_lambda, opponents=tuple(args.opponent), steps=args.steps,
        epoch_len=args.epoch_len, fee_min_bps=args.fee_min_bps, fee_max_bps=args.fee_max_bps,
        init=_init_values(args.init))
    cfg.check()
    _configure_jax()
    policy = train(cfg, args.out, resume=args.resume,
                   progress=False if args.no_progress else None, ray=args.ray)
    held = policy["heldout_mean"]
    print(f"policy written to {args.out / 'policy.json'} (held-out mean "
          f"{'n/a' if held is None else f'{held:.2f}'}, generation {policy['generation']})")
    return 0


def _init_values(items: list[str]) -> dict:
    """`--init NAME=VALUE` pairs (the starting mean of the search)."""
    from propamm_jax.training.train import DEFAULT_INIT

    values = dict(DEFAULT_INIT)
    for item in items:
        name, sep, text = item.partition("=")
        try:
            values[name.strip()] = float(text)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise PropammError(f"--init {item!r}: expected NAME=NUMBER, e.g. w_dev=1.0")
    return values


def cmd_export(args) -> int:
    from propamm_jax.training.export import export

    out = export(args.policy, args.output, args.name)
    print(f"wrote {out}")
    return 0


def cmd_evaluate(args) -> int:
    from propamm_jax.scoring import seed_list
    from propamm_jax.training.evaluate import evaluate

    _configure_jax()
    from propamm_jax.config import SimConfig

    config = SimConfig(steps=args.steps, epoch_len=args.epoch_len)
    seeds = seed_list(args.simulations, args.seed_start)
    print(f"profile: {args.profile}  |  {len(seeds)} held-out seeds from {seeds[0]}  |  "
          f"opponents: {', '.join(args.opponent) or 'normalizer only'}", flush=True)
    ev = evaluate(args.policy, seeds, args.profile, config, tuple(args.opponent),
                  official=not args.fast_only, workers=args.workers, ray=args.ray)
    if ev.fast_mean is None:
        print("fast path mean edge:  n/a (compiled opponents run only officially)")
    else:
        print(f"fast path mean edge:  {ev.fast_mean:.3f}")
    if ev.official_mean is not None:
        print(f"official mean edge:   {ev.official_mean:.3f}")
        if ev.gap is not None:
            print(f"official vs fast:     {100 * ev.gap:+.3f}%")
    if ev.official_failures:
        print(f"{ev.official_failures} official simulations failed")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    on_ray = False
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "run", None):
            parser.print_help()
            return 2
        if getattr(args, "ray", None):  # Ray's workers start while the command prepares
            from propamm_jax import cluster

            on_ray = True
            cluster.start(args.ray, jax=args.command != "score")
        return args.run(args)
    except PropammError as exc:
        print(f"propamm: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("propamm: interrupted", file=sys.stderr)
        return 130
    finally:
        if on_ray:  # entry() exits without atexit handlers: leave Ray now
            from propamm_jax import cluster

            if cluster.took_part():
                print(cluster.took_part(), file=sys.stderr)
            cluster.shutdown()


def entry() -> None:
    """The `propamm` console script: `main`, then a fast exit. Once JAX is loaded, the
    interpreter's orderly teardown (JAX's runtime, its thread pools, every module) takes
    0.3-0.4 s on a 2-core machine, longer than many commands' own work; every file this
    package writes is closed by then, so flush the two streams and leave."""
    import os

    code = main()
    if "jax" not in sys.modules:
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code if isinstance(code, int) else 1)


if __name__ == "__main__":
    entry()
