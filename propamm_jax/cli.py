"""The `propamm` command line.

User errors print one line, `propamm: error: ...`, and exit with code 2; no tracebacks. The
profile a command ran is always printed, since the two profiles are different markets, and a
profile taken by default says so (official scoring defaults to `reference`, the fast path
and training to `corrected`: see `_add_profile`).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from propamm_jax.errors import PropammError


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's formatter that appends each option's default, except where the default is
    None or False: there the help text itself says what happens without the option."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or isinstance(action.default, list):
            return action.help or ""
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # one line instead of usage + message
        where = self.prog.split()[1:]  # the subcommand, if any (main adds the "propamm: ")
        raise PropammError(f"{where[0]}: {message}" if where else message)


PROFILES = ("reference", "corrected")
_PROFILE_WHY = {
    "reference": "official scoring: bit-identical to the published engine, defects included",
    "corrected": "the market with working arbitrage and routing, where fees matter",
}


class _ProfileAction(argparse.Action):
    """Stores --profile and remembers that it was given, so the banner can say when a
    command ran its default profile."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.profile_given = True


def _add_profile(p: argparse.ArgumentParser, default: str) -> None:
    """--profile with a help text naming this command's default and why it is the default."""
    p.add_argument("--profile", default=default, choices=PROFILES, action=_ProfileAction,
                   help=f"market profile (this command's default: %(default)s, "
                        f"{_PROFILE_WHY[default]})")
    p.set_defaults(profile_given=False)


def _profile_banner(profile: str, args) -> str:
    """`profile: X`, and when X was not asked for, that it is this command's default."""
    if getattr(args, "profile_given", True):
        return f"profile: {profile}"
    other = "corrected" if profile == "reference" else "reference"
    return (f"profile: {profile} (default of propamm {args.command}; "
            f"--profile {other} for the other market)")


def _integer(name: str, minimum: int, maximum: int | None = None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise PropammError(f"{name} must be an integer, got {text!r}") from None
        if value < minimum:
            raise PropammError(f"{name} must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise PropammError(f"{name} must be at most {maximum}, got {value}")
        return value
    return parse


def _positive_int(name: str):
    return _integer(name, 1)


def _number(name: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise PropammError(f"{name} must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise PropammError(f"{name} must be finite, got {text!r}")
        return value
    return parse


def _positive_float(name: str):
    def parse(text: str) -> float:
        value = _number(name)(text)
        if not value > 0:
            raise PropammError(f"{name} must be positive, got {text}")
        return value
    return parse


def _version() -> str:
    from propamm_jax import __version__

    return __version__


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
    from propamm_jax.tape.generate import parse_seed

    try:
        return parse_seed(text)
    except ValueError as exc:
        raise PropammError(str(exc)) from None


def _add_market_options(p: argparse.ArgumentParser, simulations: int | None = 100,
                        seeds: bool = True) -> None:
    """The size of a run: how many simulations (if the command takes a number), how long,
    which seeds (if the command takes a range)."""
    if simulations is not None:
        p.add_argument("--simulations", type=_positive_int("--simulations"),
                       default=simulations, help="number of simulations (one seed each)")
    p.add_argument("--steps", type=_positive_int("--steps"), default=10_000,
                   help="steps per simulation")
    p.add_argument("--epoch-len", type=_positive_int("--epoch-len"), default=1_000,
                   help="steps between capital rebalances")
    if seeds:
        p.add_argument("--seed-start", type=_seed, default=0, help="first seed (u64)")
        p.add_argument("--seed-stride", type=_positive_int("--seed-stride"), default=1,
                       help="distance between consecutive seeds")


def _add_no_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_workers(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=_positive_int("--workers"), default=None,
                   help="confined worker processes (default: one per CPU core)")


def _add_run_options(p: argparse.ArgumentParser, simulations: int = 100) -> None:
    _add_market_options(p, simulations)
    _add_workers(p)
    _add_no_progress(p)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="propamm", description="Simulate, train and officially score "
                     "prop-AMM fee strategies.")
    parser.add_argument("--version", action="version", version=f"propamm {_version()}",
                        help="print the package version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    p = sub.add_parser("score", help="score compiled strategies officially (profile: reference)")
    p.add_argument("files", nargs="*", help=".rs sources or compiled .so files")
    _add_run_options(p)
    _add_profile(p, "reference")
    p.add_argument("--output", type=Path, default=None,
                   help="write the results: .json (golden schema, every field) or .csv/.parquet "
                        "(one row per simulation and strategy); checked before scoring")
    p.add_argument("--trace-seeds", type=_seed, nargs="*", default=[],
                   help="also record per-step traces (first 300 steps) for these seeds")
    _add_timeout_options(p)
    _add_robustness_options(p)
    _add_ray_option(p)
    p.set_defaults(run=cmd_score)

    _add_tournament_parser(sub)

    p = sub.add_parser("simulate",
                       help="simulate parametric pools on the fast JAX path (profile: corrected)")
    p.add_argument("--pool", action="append", default=[], metavar="SPEC",
                   help="cpamm:FEE_BPS, cpamm:BUY/SELL or dynamic:POLICY.json "
                        "(repeat for several pools)")
    _add_market_options(p, simulations=1000)
    _add_profile(p, "corrected")
    p.add_argument("--batch-size", type=_positive_int("--batch-size"), default=1000,
                   help="simulations run together in one compiled batch")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                   help="floating-point precision of the fast path (float32 for GPUs)")
    p.add_argument("--output", type=Path, default=None,
                   help="write the results: .json (golden schema, every field) or .csv/.parquet "
                        "(one row per simulation and pool); checked before simulating")
    _add_no_progress(p)
    _add_ray_option(p)
    p.set_defaults(run=cmd_simulate)

    p = sub.add_parser("sweep", help="run a pool over a parameter grid x seeds (profile: corrected)")
    p.add_argument("--pool", default="cpamm", metavar="SPEC",
                   help="the swept pool: cpamm (fees from the grid) or a --pool spec")
    p.add_argument("--fee-bps", metavar="RANGE", default=None,
                   help="both cpamm fees: START:STOP:STEP (stop included), N or N,M,...")
    p.add_argument("--fee-buy-bps", metavar="RANGE", default=None,
                   help="the cpamm buy-side fee (X bought from the pool), same forms as --fee-bps")
    p.add_argument("--fee-sell-bps", metavar="RANGE", default=None,
                   help="the cpamm sell-side fee (X sold to the pool), same forms as --fee-bps")
    p.add_argument("--param", action="append", default=[], metavar="NAME=RANGE",
                   help="any parameter of the swept pool, e.g. w_vol=0:2:0.5 (repeatable)")
    p.add_argument("--opponent", action="append", default=[], metavar="SPEC",
                   help="a fixed pool competing at every grid point (repeatable)")
    p.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE",
                   help="fix a market parameter on the same draws, e.g. sigma=0.001")
    _add_market_options(p, simulations=100)
    _add_profile(p, "corrected")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                   help="floating-point precision of the fast path (float32 for GPUs)")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="also write the (point, seed) table: .parquet, .csv or .json")
    _add_no_progress(p)
    _add_ray_option(p)
    p.set_defaults(run=cmd_sweep)

    p = sub.add_parser("frame", help="a results file as a tidy table (.json/.csv/.parquet)")
    p.add_argument("results", type=Path, help="a results .json (score, simulate, submit)")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="the table to write: .json, .csv or .parquet")
    p.add_argument("--epochs", action="store_true",
                   help="one row per (simulation, strategy, epoch) instead of per simulation")
    p.set_defaults(run=cmd_frame)

    p = sub.add_parser("report", help="a self-contained HTML report of a results file, a "
                       "sweep table or a training log")
    p.add_argument("results", type=Path, help="results .json (score/simulate), sweep table "
                   "(sweep -o: .parquet/.csv/.json) or training log (train's log.jsonl)")
    p.add_argument("-o", "--output", type=Path, default=Path("report.html"),
                   help="the .html file to write")
    p.add_argument("--training-log", type=Path, default=None,
                   help="with a results file: also plot this training log's fitness curves")
    p.set_defaults(run=cmd_report)

    p = sub.add_parser("submit", help="score .rs strategies officially into a bundle directory "
                       "(profile: reference)")
    p.add_argument("files", nargs="*", help=".rs sources: the submission(s) to rank")
    p.add_argument("--opponent", action="append", default=[], type=Path, metavar="FILE.rs",
                   help="a .rs strategy in the same simulations that is not ranked "
                        "(repeatable); leaderboard compares only bundles with the same field")
    p.add_argument("-o", "--output", type=Path, required=True, help="new bundle directory")
    _add_run_options(p, simulations=20)
    _add_profile(p, "reference")
    p.set_defaults(run=cmd_submit)

    p = sub.add_parser("verify", help="re-run a bundle and confirm identical results")
    p.add_argument("bundle", type=Path, help="a bundle directory written by `propamm submit`")
    _add_workers(p)
    _add_no_progress(p)
    p.set_defaults(run=cmd_verify)

    p = sub.add_parser("leaderboard", help="rank the submissions of the bundles under a "
                       "directory (same profile, config, seeds and field)")
    p.add_argument("root", type=Path, help="a directory searched (any depth) for bundles")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="also write the table (.json/.csv/.parquet)")
    p.set_defaults(run=cmd_leaderboard)

    _add_validate_parser(sub)
    _add_wrap_parser(sub)
    _add_cache_parser(sub)
    _add_training_parsers(sub)
    _add_compare_parser(sub)

    from propamm_jax.server.commands import add_parsers as add_server_parsers

    add_server_parsers(sub, _positive_int)   # serve, worker, team add

    p = sub.add_parser("demo", help="build the starter strategies and score them in both "
                       "profiles (reference, then corrected)")
    _add_run_options(p, simulations=20)
    p.set_defaults(run=cmd_demo)
    return parser


def _config(args):
    from propamm_jax.config import SimConfig

    return SimConfig(steps=args.steps, epoch_len=args.epoch_len)


def _add_timeout_options(p) -> None:
    """--sim-timeout and --call-timeout of the commands that score officially."""
    p.add_argument("--sim-timeout", type=_positive_int("--sim-timeout"), default=300,
                   help="seconds one simulation may take before it is reported as a failure")
    p.add_argument("--call-timeout", type=_positive_float("--call-timeout"), default=5.0,
                   help="seconds of wall time one strategy call may take before its "
                        "simulation is reported as a timeout")


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
                   help="read back the journal's finished simulations and score only the rest "
                        "(also with more --simulations of the same seed sequence)")
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


def _add_wrap_parser(sub) -> None:
    p = sub.add_parser("wrap", help="write the file actually compiled for a safe-form .rs "
                       "(C exports added): build it with plain rustc")
    p.add_argument("file", type=Path, help="a strategy in the safe form (NAME, compute_swap, "
                   "after_swap)")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="where to write the raw-ABI file")
    p.add_argument("--allow-unsafe-source", action="store_true",
                   help="relax the source policy (as score's option of that name)")
    p.set_defaults(run=cmd_wrap)


def cmd_wrap(args) -> int:
    from propamm_jax.native.source import wrap_file

    out = wrap_file(args.file, args.output, args.allow_unsafe_source)
    print(f"wrote {out}: build it with rustc --edition 2021 --crate-type cdylib -O {out}")
    return 0


def _add_cache_parser(sub) -> None:
    from propamm_jax.cache import ENV_MAX, KINDS

    p = sub.add_parser("cache", help="show the disk cache's size by kind, or clear it")
    p.add_argument("action", nargs="?", choices=["show", "clear"], default="show",
                   help="show sizes, or clear the cache (all of it, or --kind)")
    p.add_argument("--kind", choices=[*KINDS, "other"], default=None,
                   help="with clear: only this kind (default: everything)")
    p.epilog = (f"The cache lives in $PROPAMM_CACHE (default ~/.cache/propamm-jax); "
                f"${ENV_MAX} caps its size (default 4G; 0: no cap).")
    p.set_defaults(run=cmd_cache)


def cmd_cache(args) -> int:
    from propamm_jax.cache import clear, format_usage, human, usage

    if args.action == "clear":
        freed = clear(args.kind)
        print(f"cleared {args.kind or 'the whole cache'}: {human(freed)} freed")
        return 0
    if args.kind is not None:
        raise PropammError("cache: --kind goes with clear (propamm cache clear --kind K)")
    print(format_usage(usage()))
    return 0


def cmd_validate(args) -> int:
    """One line per check per file; exit code 1 if any check failed."""
    from propamm_jax.official.validate import Plan, validate_file

    if not args.files:
        raise PropammError("no strategy given: pass at least one .rs or .so file")
    from propamm_jax.official.sandbox import sandboxed

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


def _score_options(args, profile: str, trace_seeds=(), sim_timeout: float = 300.0) -> dict:
    """score()'s keyword arguments from a scoring command's options (score, tournament, demo),
    after printing the run's banner."""
    config = _config(args)
    print(f"{_profile_banner(profile, args)}  |  {args.simulations} simulations x {config.steps} steps, "
          f"epoch {config.epoch_len}, seeds from {args.seed_start} stride {args.seed_stride}",
          flush=True)
    return dict(config=config, simulations=args.simulations, seed_start=args.seed_start,
                seed_stride=args.seed_stride, profile=profile, workers=args.workers,
                trace_seeds=trace_seeds, progress=None if not args.no_progress else False,
                sim_timeout=sim_timeout, ray=getattr(args, "ray", None),
                **_robustness_kwargs(args))


def _score_and_print(files, args, profile: str, output: Path | None = None, trace_seeds=(),
                     sim_timeout: float = 300.0):
    from propamm_jax.official.scoring import format_table, score

    options = _score_options(args, profile, trace_seeds, sim_timeout)
    started = time.perf_counter()
    result = score(files, **options)
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


def _add_tournament_parser(sub) -> None:
    p = sub.add_parser("tournament", help="score a field officially and rank it: mean edge with "
                       "standard errors, paired gaps to the leader, ranks over seeds "
                       "(profile: reference)")
    p.add_argument("files", nargs="*", help=".rs sources, compiled .so files, or fixed fees "
                   "cpamm:BPS / fixed:BPS (2 to 16 strategies)")
    _add_run_options(p)
    _add_profile(p, "reference")
    p.add_argument("--output", type=Path, default=None,
                   help="write the standings (one row per strategy, rank counts as rank_1.."
                        "rank_N): .json, .csv or .parquet; checked before scoring")
    p.add_argument("--results", type=Path, default=None,
                   help="also write the run's results (.json golden schema, or .csv/.parquet)")
    p.add_argument("--plot", type=Path, default=None,
                   help="also draw mean edge with 2-SE bars and the rank distribution (.png)")
    _add_timeout_options(p)
    _add_robustness_options(p)
    _add_ray_option(p)
    p.set_defaults(run=cmd_tournament)


def cmd_tournament(args) -> int:
    """The field scored through `score`'s path (journal, sandbox, workers), then its
    standings (propamm_jax.official.tournament); exit code 1 if a strategy or simulation failed."""
    from propamm_jax.official import tournament

    tournament.check_field(args.files)
    options = _score_options(args, args.profile, sim_timeout=args.sim_timeout)
    started = time.perf_counter()
    outcome = tournament.run(args.files, **options)
    elapsed = time.perf_counter() - started
    result = outcome.result
    _print_rejections(result)
    print()
    print("\n".join(tournament.lines(outcome.standings)))
    resumed = f", {result.resumed} read back from the journal" if result.resumed else ""
    print(f"\n{len(result.results.sims)} simulations in {elapsed:.1f} s ({args.profile} profile"
          f"{resumed})")
    for failure in result.failures:
        print(f"FAILED {failure.line()}", file=sys.stderr)
    _write_tournament(outcome, args)
    return 1 if result.failures or result.rejected else 0


def _write_tournament(outcome, args) -> None:
    from propamm_jax.official import tournament
    from propamm_jax.outputs.frames import write_frame

    if args.output is not None:
        write_frame(tournament.frame(outcome.standings), args.output)
        print(f"standings written to {args.output}")
    if args.results is not None:
        outcome.result.results.save(args.results)
        print(f"results written to {args.results}")
    if args.plot is not None:
        try:
            args.plot.write_bytes(tournament.figure(outcome.standings))
        except OSError as exc:
            raise PropammError(f"{args.plot}: cannot write ({exc.strerror or exc})") from None
        print(f"plot written to {args.plot}")


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
    from propamm_jax.outputs.results import aggregate_table
    from propamm_jax.official.scoring import seed_list
    from propamm_jax.simulation import simulate

    if not args.pool:
        raise PropammError("no pool given: pass --pool cpamm:30 (repeatable)")
    _configure_jax()
    config = _config(args)
    seeds = seed_list(args.simulations, args.seed_start, args.seed_stride)
    print(f"{_profile_banner(args.profile, args)}  |  fast path ({args.dtype})  |  {len(seeds)} simulations x "
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
    from propamm_jax.outputs.frames import check_format, write_frame
    from propamm_jax.official.scoring import seed_list
    from propamm_jax.sweeps import Grid, format_summary, parse_fixed, parse_range, summarize, sweep

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
    print(f"{_profile_banner(args.profile, args)}  |  sweep of {args.pool}: {n_points} grid points x "
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


def _add_compare_parser(sub) -> None:
    p = sub.add_parser("compare", help="two results files on the same seeds: paired "
                       "differences and ranking changes")
    p.add_argument("a", type=Path, help="results file A (.json, golden schema)")
    p.add_argument("b", type=Path, help="results file B, same seeds, profile and config")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="also write the table (.json/.csv/.parquet)")
    p.set_defaults(run=cmd_compare)


def cmd_compare(args) -> int:
    """One row per strategy position: mean A, mean B, B - A with its standard error and
    95% interval (paired by seed); then whether the ranking changed."""
    from propamm_jax.outputs.comparison import compare
    from propamm_jax.outputs.frames import write_frame

    result = compare(args.a, args.b)
    print(f"{result.seeds} seeds, paired  |  A: {args.a}  |  B: {args.b}")
    print("\n".join(result.lines()))
    if args.output is not None:
        write_frame(result.frame, args.output)
        print(f"table written to {args.output}")
    return 0


def cmd_frame(args) -> int:
    from propamm_jax.outputs.frames import check_format, epoch_frame, write_frame
    from propamm_jax.outputs.results import Results

    check_format(args.output)
    results = Results.load(args.results)
    frame = epoch_frame(results) if args.epochs else results.frame()
    write_frame(frame, args.output)
    print(f"{len(frame)} rows x {len(frame.columns)} columns written to {args.output}")
    return 0


def cmd_report(args) -> int:
    from propamm_jax.outputs.report import write_report

    path = write_report(args.results, args.output, args.training_log)
    print(f"report written to {path}")
    return 0


def cmd_submit(args) -> int:
    from propamm_jax.outputs.bundle import submit
    from propamm_jax.outputs.results import aggregate_table
    from propamm_jax.official.scoring import seed_list

    config = _config(args)
    seeds = seed_list(args.simulations, args.seed_start, args.seed_stride)
    print(f"{_profile_banner(args.profile, args)}  |  {len(seeds)} simulations x {config.steps} steps, "
          f"epoch {config.epoch_len}", flush=True)
    if args.opponent:
        print(f"submission: {', '.join(Path(f).name for f in args.files)}  |  opponents: "
              f"{', '.join(o.name for o in args.opponent)}", flush=True)
    sub = submit(args.files, args.output, config=config, seeds=seeds, profile=args.profile,
                 workers=args.workers, progress=None if not args.no_progress else False,
                 opponents=args.opponent)
    from propamm_jax.outputs.results import Results

    print()
    print(aggregate_table(Results.load(sub.path / "results.json")))
    for failure in sub.failures:
        print(f"FAILED {failure.line()}", file=sys.stderr)
    print(f"\nbundle written to {sub.path} (receipt.json, results.json, sources/)")
    return 1 if sub.failures else 0


def cmd_verify(args) -> int:
    from propamm_jax.outputs.bundle import load_receipt, verify

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
    from propamm_jax.outputs.bundle import format_leaderboard, leaderboard
    from propamm_jax.outputs.frames import check_format, write_frame

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
    p = sub.add_parser("train", help="train a fee policy (evosax / optax) on the fast path "
                       "(profile: corrected)")
    from propamm_jax.pools.families import FAMILIES

    p.add_argument("--family", default="dynamic_fee", help="policy family: " + "; ".join(
        f"{f.name} ({f.summary})" for f in FAMILIES.values()))
    p.add_argument("--hidden", type=_positive_int("--hidden"), default=8,
                   help="mlp: hidden units (8: 82 parameters)")
    p.add_argument("--oracle", action="store_true",
                   help="train the family's oracle, which sees the step's TRUE fair price: the "
                        "ceiling better fair-price estimation could reach. Fast path only, "
                        "never exported")
    p.add_argument("--compare", type=Path, default=None, metavar="POLICY",
                   help="with --oracle: after training, the edge of this (non-oracle) policy "
                        "as a share of the oracle's, on fresh seeds")
    p.add_argument("--algorithm", default="cma_es", help="cma_es, open_es, snes (evosax) or adam (optax)")
    p.add_argument("--generations", type=_positive_int("--generations"), default=50,
                   help="generations (adam: gradient steps)")
    p.add_argument("--population", type=_positive_int("--population"), default=16,
                   help="candidate parameter sets per generation")
    p.add_argument("--batch-seeds", type=_positive_int("--batch-seeds"), default=16,
                   help="training seeds per generation (resampled every generation)")
    p.add_argument("--train-seed-start", type=_seed, default=1_000_000,
                   help="first training seed (each generation draws the next batch)")
    p.add_argument("--heldout-start", type=_seed, default=0,
                   help="first held-out seed (a range disjoint from the training seeds)")
    p.add_argument("--heldout", type=_positive_int("--heldout"), default=32,
                   help="held-out seeds monitored during training (never trained on)")
    p.add_argument("--eval-every", type=_positive_int("--eval-every"), default=5,
                   help="generations between two evaluations on the held-out seeds")
    p.add_argument("--seed", type=_integer("--seed", 0, 2**32 - 1), default=0,
                   help="random seed of the algorithm")
    p.add_argument("--sigma-init", type=_number("--sigma-init"), default=1.0,
                   help="initial search spread (evolution strategies)")
    p.add_argument("--learning-rate", type=_number("--learning-rate"), default=0.05,
                   help="step size (adam; open_es)")
    p.add_argument("--clip", type=_number("--clip"), default=1.0,
                   help="adam: gradient clipping norm")
    p.add_argument("--smooth", type=_number("--smooth"), default=0.01,
                   help="adam: arbitrage floor smoothing")
    _add_profile(p, "corrected")
    p.add_argument("--objective", default=None, help="edge, risk, vs_normalizer, margin "
                   "(edge minus the best other strategy's, paired by seed), beaten (share of "
                   "the others with a lower edge) or placed (margin + --rank-weight x beaten); "
                   "default: edge, margin under --league")
    p.add_argument("--risk-lambda", type=_number("--risk-lambda"), default=2.0,
                   help="risk objective: mean edge - lambda x its standard deviation")
    p.add_argument("--rank-weight", type=_number("--rank-weight"), default=100.0,
                   help="placed objective: what beating the whole field is worth, in edge units")
    p.add_argument("--opponent", action="append", default=[],
                   help="fixed pool (cpamm:30) or compiled strategy (.rs/.so; scored officially)")
    _add_market_options(p, seeds=False, simulations=None)
    p.add_argument("--init", action="append", default=[], metavar="NAME=VALUE",
                   help="starting value of a parameter (repeatable; default bias=-1.2, "
                   "w_dev=1, others 0; mlp: bias and w_dev of its embedded dynamic_fee start)")
    p.add_argument("--fee-min-bps", type=_number("--fee-min-bps"), default=0.0,
                   help="lowest fee the policy charges")
    p.add_argument("--fee-max-bps", type=_number("--fee-max-bps"), default=300.0,
                   help="highest fee the policy charges")
    p.add_argument("--out", type=Path, required=True, help="run directory (log, checkpoint, policy)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out (same options; a larger --generations "
                        "extends a finished run)")
    _add_league_options(p)
    _add_no_progress(p)
    _add_ray_option(p)
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("export", help="a policy.json as a single-file Rust submission")
    p.add_argument("policy", type=Path, help="a policy.json written by `propamm train`")
    p.add_argument("-o", "--output", type=Path, required=True, help="the .rs file to write")
    p.add_argument("--name", default=None, help="strategy name (default: the file stem)")
    p.set_defaults(run=cmd_export)

    _add_evaluate_parser(sub)


def _add_league_options(p) -> None:
    """`train --league` (training/league.py: fictitious self-play in drawn fields)."""
    g = p.add_argument_group("league (fictitious self-play; see README)")
    g.add_argument("--league", action="store_true",
                   help="each generation plays a field drawn from fixed fees, the starter "
                   "strategies, --opponent strategies and snapshots of the run")
    g.add_argument("--league-field", type=_positive_int("--league-field"), default=7,
                   help="opponents per generation (the normalizer comes on top)")
    g.add_argument("--league-snapshots", type=_positive_int("--league-snapshots"), default=2,
                   help="snapshots in a fast generation's field")
    g.add_argument("--snapshot-every", type=_positive_int("--snapshot-every"), default=5,
                   help="generations between two snapshots of the run joining the pool")
    g.add_argument("--compiled-every", type=_integer("--compiled-every", 0, 10**6), default=5,
                   help="every n-th generation plays the compiled strategies (officially; "
                   "slow); 0: never")
    g.add_argument("--league-fees", default="10:100:10", metavar="RANGE",
                   help="the fixed fees of the pool in bps, e.g. 10:100:10 or 20,30,50")
    g.add_argument("--no-starters", action="store_true",
                   help="leave the starter strategies out of the pool")


def _league_config(args):
    from propamm_jax.training.league import LeagueConfig

    league_only = [a for a, d in (("league_field", 7), ("league_snapshots", 2),
                                  ("snapshot_every", 5), ("compiled_every", 5),
                                  ("league_fees", "10:100:10"), ("no_starters", False))
                   if getattr(args, a) != d]
    if not args.league:
        if league_only:
            raise PropammError(f"--{league_only[0].replace('_', '-')} goes with --league")
        return None
    return LeagueConfig(field=args.league_field, snapshots=args.league_snapshots,
                        snapshot_every=args.snapshot_every, compiled_every=args.compiled_every,
                        fees=tuple(_fee_list(args.league_fees, "--league-fees")),
                        starters=not args.no_starters)


def cmd_train(args) -> int:
    from propamm_jax.training.train import TrainConfig, train

    if args.compare is not None and not args.oracle:
        raise PropammError("--compare: only with --oracle (the policy's share of the oracle's edge)")
    cfg = TrainConfig(
        family=args.family, hidden=args.hidden, oracle=args.oracle,
        algorithm=args.algorithm, generations=args.generations, population=args.population,
        batch_seeds=args.batch_seeds, train_seed_start=args.train_seed_start,
        heldout_start=args.heldout_start, heldout=args.heldout, eval_every=args.eval_every,
        seed=args.seed, sigma_init=args.sigma_init, learning_rate=args.learning_rate,
        clip=args.clip, smooth=args.smooth, profile=args.profile,
        objective=args.objective or ("margin" if args.league else "edge"),
        risk_lambda=args.risk_lambda, rank_weight=args.rank_weight,
        opponents=tuple(args.opponent), steps=args.steps,
        epoch_len=args.epoch_len, fee_min_bps=args.fee_min_bps, fee_max_bps=args.fee_max_bps,
        init=_init_values(args.init, args.family), league=_league_config(args))
    cfg.check()
    if args.compare is not None:
        from propamm_jax.pools.families import read_policy

        if read_policy(args.compare)[1].oracle:
            raise PropammError(f"--compare {args.compare}: an oracle policy; give the ordinary "
                               "policy whose share of the ceiling you want")
    print(f"{_profile_banner(args.profile, args)}  |  {args.family}"
          f"{' ORACLE' if args.oracle else ''}, {args.algorithm}: {args.generations} "
          f"generations x {args.population} members x {args.batch_seeds} seeds x "
          f"{args.steps} steps", flush=True)
    _configure_jax()
    policy = train(cfg, args.out, resume=args.resume,
                   progress=False if args.no_progress else None, ray=args.ray)
    held = policy["heldout_mean"]
    print(f"policy written to {args.out / 'policy.json'} (held-out mean "
          f"{'n/a' if held is None else f'{held:.2f}'}, generation {policy['generation']})")
    if args.oracle:
        print("this is an ORACLE policy (it sees the true fair price): a ceiling for "
              f"{args.family}, which export, validate and score refuse")
    if args.compare is not None:
        from propamm_jax.training.ceiling import ceiling

        share = ceiling(args.compare, args.out / "policy.json", simulations=args.heldout,
                        ray=args.ray)
        print(share.line())
    return 0


def _init_values(items: list[str], family: str = "dynamic_fee") -> dict:
    """`--init NAME=VALUE` pairs (the starting mean of the search), over the family's default
    start (`Family.default_init`)."""
    from propamm_jax.pools.families import family as family_named

    values = family_named(family).default_init()
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


def _add_evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="a policy on fresh seeds: fast path, official, against "
                       "the normalizer, fixed fees and in a field (--field)")
    p.add_argument("policy", type=Path, help="a policy.json of any family (as `train` writes)")
    p.add_argument("--profile", choices=("corrected", "reference"), default=None,
                   help="default: the policy's training profile")
    p.add_argument("--simulations", type=_positive_int("--simulations"), default=100,
                   help="seeds to evaluate on")
    p.add_argument("--seed-start", type=_seed, default=None,
                   help="default: the first seed past every range the policy's training used "
                        "(policy.json 'seeds')")
    p.add_argument("--opponent", action="append", default=None,
                   help="fixed pool (cpamm:30) or compiled strategy (.rs/.so; scored "
                        "officially), repeatable; default: the policy's training opponents")
    p.add_argument("--normalizer-only", action="store_true",
                   help="no opponents but the normalizer, whatever the policy trained against")
    p.add_argument("--steps", type=_positive_int("--steps"), default=None,
                   help="default: the policy's training config")
    p.add_argument("--epoch-len", type=_positive_int("--epoch-len"), default=None,
                   help="default: the policy's training config")
    p.add_argument("--fast-only", action="store_true", help="skip official scoring")
    p.add_argument("--vs-fixed", metavar="RANGE", default=None,
                   help="also the fixed fees in this range of bps on the same seeds, e.g. "
                        "5:100:5 or 30,60 (the best officially scored)")
    p.add_argument("--official-within", type=float, default=5.0,
                   help="with --vs-fixed: score officially the fees whose fast-path mean is "
                        "within this %% of the best")
    p.add_argument("--output", type=Path, default=None,
                   help="the policy's run: .json (golden schema; official unless --fast-only) "
                        "or .csv/.parquet (one row per simulation and strategy)")
    p.add_argument("--field", action="append", default=[], metavar="A.rs,B.rs,...",
                   help="also rank the policy officially in this field on the same seeds, as "
                        "`propamm tournament` does: .rs/.so files or cpamm:BPS/fixed:BPS, "
                        "comma-separated or repeated (at most 15)")
    p.add_argument("--field-output", type=Path, default=None,
                   help="with --field: write the field's standings (.json/.csv/.parquet)")
    _add_workers(p)
    _add_no_progress(p)
    _add_ray_option(p)
    p.set_defaults(run=cmd_evaluate)


def _fee_list(text: str | None, option: str = "--vs-fixed") -> list[int]:
    """--vs-fixed's (or --league-fees') fees: whole bps in 0..9999."""
    from propamm_jax.sweeps import parse_range

    if text is None:
        return []
    fees = parse_range(text, option)
    bad = [f for f in fees if f != int(f) or not 0 <= f < 10_000]
    if bad:
        raise PropammError(f"{option} {text!r}: fee {bad[0]:g} is not a whole number of bps "
                           "in 0..9999")
    return [int(f) for f in fees]


def cmd_evaluate(args) -> int:
    from propamm_jax.config import SimConfig
    from propamm_jax.official.scoring import seed_list
    from propamm_jax.training.evaluate import evaluate, plan, policy_setting

    fees = _fee_list(args.vs_fixed)
    if args.normalizer_only and args.opponent:
        raise PropammError("--normalizer-only and --opponent contradict each other")
    field = [spec.strip() for item in args.field for spec in item.split(",") if spec.strip()]
    if field and args.fast_only:
        raise PropammError("--field is scored officially: it does not go with --fast-only")
    if args.field_output is not None and not field:
        raise PropammError("--field-output goes with --field")
    trained = policy_setting(args.policy).config or SimConfig()
    config = SimConfig(steps=args.steps or trained.steps,
                       epoch_len=args.epoch_len or trained.epoch_len)
    seeds = None if args.seed_start is None else seed_list(args.simulations, args.seed_start)
    p = plan(args.policy, seeds, args.profile, config,
             () if args.normalizer_only else args.opponent, args.simulations)
    for line in p.warnings:
        print(line, file=sys.stderr)
    print(f"profile: {p.profile}  |  {len(p.seeds)} seeds {p.seeds[0]}..{p.seeds[-1]}  |  "
          f"{config.steps} steps, epoch {config.epoch_len}  |  opponents: "
          f"{', '.join(p.opponents) or 'normalizer only'}", flush=True)
    _configure_jax()
    ev = evaluate(args.policy, p.seeds, p.profile, p.config, p.opponents,
                  official=not args.fast_only, workers=args.workers,
                  progress=False if args.no_progress else None, vs_fixed=fees,
                  official_within=args.official_within, ray=args.ray, field=field)
    _print_evaluation(ev)
    if args.output is not None:
        ev.results.save(args.output)
        print(f"results written to {args.output}")
    if ev.in_field is None:
        return 1 if ev.official_failures else 0
    from propamm_jax.outputs.frames import write_frame
    from propamm_jax.official.tournament import frame

    if args.field_output is not None:
        write_frame(frame(ev.in_field.standings), args.field_output)
        print(f"field standings written to {args.field_output}")
    failed = ev.in_field.result.failures or ev.in_field.result.rejected
    return 1 if ev.official_failures or failed else 0


def _print_evaluation(ev) -> None:
    if ev.fast_mean is None:
        print("fast path mean edge:  n/a (compiled opponents run only officially)")
    else:
        print(f"fast path mean edge:  {ev.fast_mean:.3f}")
    if ev.official_mean is not None:
        print(f"official mean edge:   {ev.official_mean:.3f}")
        if ev.gap is not None:
            print(f"official vs fast:     {100 * ev.gap:+.3f}%")
    if ev.vs_normalizer is not None:
        mean, se = ev.vs_normalizer
        print(f"vs normalizer:        {mean:+.3f} (paired SE "
              f"{'n/a' if not math.isfinite(se) else f'{se:.3f}'})")
    if ev.official_failures:
        print(f"{ev.official_failures} official simulations failed")
    if ev.fixed is not None:
        print()
        print("\n".join(ev.fixed.lines()))
    if ev.in_field is not None:
        from propamm_jax.official.tournament import lines

        _print_rejections(ev.in_field.result)
        print(f"\nin the field ({len(ev.in_field.standings.labels)} strategies, the policy as "
              f"policy_export.rs, official):")
        print("\n".join(lines(ev.in_field.standings)))
        for failure in ev.in_field.result.failures:
            print(f"FAILED {failure.line()}", file=sys.stderr)


_TABLES = (".json", ".csv", ".parquet")
# Where each command writes, checked before it starts any work, so that a typo in a path costs
# one line and not a whole run: command -> ((attribute, option, extensions, is a directory),).
OUTPUTS = {
    "score": (("output", "--output", _TABLES, False), ("journal", "--journal", (), False)),
    "tournament": (("output", "--output", _TABLES, False), ("results", "--results", _TABLES, False),
                   ("plot", "--plot", (".png",), False), ("journal", "--journal", (), False)),
    "simulate": (("output", "--output", _TABLES, False),),
    "evaluate": (("output", "--output", _TABLES, False),
                 ("field_output", "--field-output", _TABLES, False)),
    "compare": (("output", "--output", _TABLES, False),),
    "sweep": (("output", "--output", _TABLES, False),),
    "frame": (("output", "--output", _TABLES, False),),
    "report": (("output", "--output", (".html", ".htm"), False),),
    "leaderboard": (("output", "--output", _TABLES, False),),
    "export": (("output", "--output", (".rs",), False),),
    "submit": (("output", "--output", (), True),),
    "train": (("out", "--out", (), True),),
}


def check_outputs(args) -> None:
    """The output paths of `args.command` (see OUTPUTS), checked before the command runs."""
    from propamm_jax.errors import check_output

    for attribute, option, suffixes, directory in OUTPUTS.get(args.command, ()):
        path = getattr(args, attribute, None)
        if path is not None:
            check_output(path, suffixes, option, directory)


def main(argv: list[str] | None = None) -> int:
    import signal

    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:  # SIGTERM ends a run as Ctrl-C does: what is finished is kept and said
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    on_ray = False
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "run", None):
            parser.print_help()
            return 2
        check_outputs(args)
        if getattr(args, "ray", None):  # Ray's workers start while the command prepares
            from propamm_jax import cluster

            if getattr(args, "workers", None):
                print(f"propamm: note: --workers {args.workers} has no effect with --ray (the "
                      "cluster's CPUs set the parallelism)", file=sys.stderr)

            on_ray = True
            cluster.start(args.ray, jax=args.command != "score")
        return args.run(args)
    except PropammError as exc:
        print(f"propamm: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        _print_interrupted(exc, argv)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if on_ray:  # entry() exits without atexit handlers: leave Ray now
            from propamm_jax import cluster

            if cluster.took_part():
                print(cluster.took_part(), file=sys.stderr)
            cluster.shutdown()


def _terminate(signum, frame):
    raise KeyboardInterrupt


def _print_interrupted(exc: KeyboardInterrupt, argv: list[str]) -> None:
    """What an interrupted run kept, and the exact command that continues it."""
    import shlex

    from propamm_jax.errors import Interrupted

    if not isinstance(exc, Interrupted):
        print("propamm: interrupted", file=sys.stderr)
        return
    print(f"propamm: interrupted: {exc.kept}", file=sys.stderr)
    if exc.resumable:
        command = ["propamm", *argv] + ([] if "--resume" in argv else ["--resume"])
        print(f"propamm: resume with: {shlex.join(command)}", file=sys.stderr)


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
