"""Policy families (issue 17, items 3-4): the registry, the `mlp` family and its exact export,
and the oracle, which sees the true fair price and must never become a submission."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess

import numpy as np
import pytest

from propamm_jax.errors import PropammError

TINY = dict(generations=2, population=4, batch_seeds=2, heldout=2, eval_every=1, steps=300,
            epoch_len=100)
needs_rustc = pytest.mark.skipif(shutil.which("rustc") is None, reason="needs rustc")


def random_feature_states(rng, n: int) -> np.ndarray:
    """[n, 9] FeatureState fields of every size; the fair price known in 80% of them."""
    states = np.column_stack([
        rng.uniform(500, 2000, n), rng.exponential(0.003, n), rng.uniform(0, 1, n),
        rng.uniform(0, 1, n), rng.uniform(0, 1, n), rng.exponential(0.002, n),
        rng.uniform(1, 200, n), rng.normal(0, 0.05, n), np.zeros(n)])
    states[:, 8] = np.where(rng.uniform(size=n) < 0.8,
                            states[:, 0] * np.exp(rng.normal(0, 0.004, n)), 0.0)
    return states


def validated_fast_and_official(path, rs):
    """Exports `path` to `rs`, asserts it validates strictly, and returns its fast-path and
    official edges on seeds 11-13 (1500 steps, corrected): (seeds, fast, official, failures)."""
    from propamm_jax.config import SimConfig
    from propamm_jax.official.validate import validate_file
    from propamm_jax.training.evaluate import fast_edges, official_edges
    from propamm_jax.training.export import export

    report = validate_file(export(path, rs), strict=True)
    assert report.ok, "\n".join(report.lines())
    seeds, config = [11, 12, 13], SimConfig(steps=1500, epoch_len=100)
    fast = fast_edges(path, seeds, "corrected", config)
    official, failed = official_edges(path, seeds, "corrected", config, workers=1,
                                      progress=False)
    return seeds, fast, official, failed


def _mlp_policy(path, hidden=4, seed=5, scale=0.7, oracle=False):
    """An mlp policy with awkward f64 weights (none f32-representable) of every sign."""
    from propamm_jax.pools.mlp import MLPFee, save_policy

    pool = MLPFee(3.7, 287.123456789, 100, oracle, hidden)
    rng = np.random.default_rng(seed)
    vec = pool.initial({"bias": -1.1234567890123457, "w_dev": 1.3}, seed)
    vec = vec + rng.normal(0.0, scale, vec.shape) / 3.0
    return save_policy(path, pool, pool.unflatten(vec)), pool, vec


def test_registry_reads_every_family_and_refuses_unknown_ones(tmp_path):
    from propamm_jax.pools.dynamic_fee import DynamicFee, save_policy
    from propamm_jax.pools.families import read_policy

    path, pool, vec = _mlp_policy(tmp_path / "mlp.json")
    fam, got, params = read_policy(path)
    assert fam.name == "mlp" and got == pool
    assert np.array_equal(got.flatten(params), vec)  # bit for bit through JSON
    df = DynamicFee(1.0, 99.0, 100)
    save_policy(tmp_path / "df.json", df, df.params(bias=-0.5))
    assert read_policy(tmp_path / "df.json")[0].name == "dynamic_fee"
    data = json.loads(path.read_text())
    for change, message in (({"family": "nope"}, "policy family 'nope' is not one of"),
                            ({"hidden": 0}, "field 'hidden'"),
                            ({"oracle": "yes"}, "field 'oracle'")):
        (tmp_path / "bad.json").write_text(json.dumps({**data, **change}))
        with pytest.raises(PropammError, match=re.escape(message)) as err:
            read_policy(tmp_path / "bad.json")
        assert "bad.json" in str(err.value) and "\n" not in str(err.value)
    bad = json.loads(path.read_text())
    bad["params"]["w1"][2][3] = "x"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(PropammError, match=r"field 'params\.w1\[2\]\[3\]' must be a number"):
        read_policy(tmp_path / "bad.json")
    bad["params"]["w1"] = bad["params"]["w1"][:3]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(PropammError, match=r"field 'params\.w1' must be a list of 4 lists"):
        read_policy(tmp_path / "bad.json")


def test_train_help_names_every_registered_family_with_its_summary(capsys):
    from propamm_jax.cli import main
    from propamm_jax.pools.families import FAMILIES

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for fam in FAMILIES.values():
        assert fam.summary and f"{fam.name} ({fam.summary})" in text, fam.name


def test_mlp_literals_are_the_json_f64_bit_for_bit(tmp_path):
    from propamm_jax.training.export import export

    path, pool, vec = _mlp_policy(tmp_path / "policy.json")
    text = export(path, tmp_path / "p.rs").read_text()
    found = []
    for name in ("W1", "B1", "W2", "B2"):
        block = re.search(rf"const {name}: [^=]+= (\[.*?\]);\n", text, re.S).group(1)
        found += re.findall(r"-?\d[\d.e+-]*", block)
    assert len(found) == pool.size()
    got = [struct.pack("<d", float(t)) for t in found]
    assert got == [struct.pack("<d", v) for v in vec.tolist()]


def _rust_fees(tmp_path, rs, states: np.ndarray) -> np.ndarray:
    """The exported `fees` on storages holding `states` ([n, 9] f64), run natively."""
    main = tmp_path / "harness.rs"
    main.write_text(f'include!("{rs}");\n' + r"""
use std::io::Read;
fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).unwrap();
    for line in input.lines() {
        let mut s = [0u8; 1024];
        for (i, word) in line.split_whitespace().enumerate() {
            set_slot(&mut s, i, f64::from_bits(u64::from_str_radix(word, 16).unwrap()));
        }
        let (b, q) = fees(&s);
        println!("{:016x} {:016x}", b.to_bits(), q.to_bits());
    }
}
""")
    exe = tmp_path / "harness"
    subprocess.run(["rustc", "--edition", "2021", "-O", "-A", "dead_code", str(main), "-o",
                    str(exe)], check=True, capture_output=True, timeout=300)
    lines = "\n".join(" ".join(f"{np.float64(v).view(np.uint64):016x}" for v in row)
                      for row in states)
    out = subprocess.run([str(exe)], input=lines, capture_output=True, text=True, check=True)
    return np.array([[int(w, 16) for w in line.split()] for line in out.stdout.split("\n")
                     if line], np.uint64).view(np.float64)


@needs_rustc
def test_mlp_rust_fees_equal_the_fast_path_fees_on_the_same_feature_states(tmp_path, x64):
    """Random feature states (fair price known or not): the exported `fees` and the family's
    `fees` on the fast path, compared to the last bit."""
    import jax

    from propamm_jax.pools.features import FeatureState
    from propamm_jax.pools.families import load_policy
    from propamm_jax.training.export import export

    path, _, _ = _mlp_policy(tmp_path / "policy.json", hidden=6)
    rs = export(path, tmp_path / "p.rs")
    pool, params = load_policy(path)
    states = random_feature_states(np.random.default_rng(3), 400)
    fast = jax.jit(jax.vmap(lambda st: pool.fees(params, FeatureState(*st), None)))(
        tuple(states.T))
    fast = np.column_stack([np.asarray(f) for f in fast])
    native = _rust_fees(tmp_path, rs, states)
    assert np.all(np.isfinite(native)) and native.shape == fast.shape
    assert np.allclose(native, fast, rtol=1e-14, atol=0.0), np.abs(native / fast - 1).max()
    # About half agree to the bit (measured 47% at 8 hidden units); the rest differ by a few
    # ulps, from XLA's exp (1 ulp from glibc's in ~13% of inputs) or a fused multiply-add.
    assert np.mean(native == fast) > 0.25, np.mean(native == fast)


@needs_rustc
def test_mlp_export_validates_and_scores_like_the_fast_path(tmp_path, x64):
    path, _, _ = _mlp_policy(tmp_path / "policy.json")
    seeds, fast, official, failed = validated_fast_and_official(path, tmp_path / "mlp_policy.rs")
    off = np.array([official[s] for s in seeds])
    assert failed == 0
    assert np.allclose(off, fast, rtol=0.01, atol=0.5), (off, fast)


# ─── The oracle ──────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("family", ["dynamic_fee", "mlp"])
def test_oracle_deviation_is_the_true_one_and_the_estimate_is_not_used(family, x64):
    """The oracle's fees are its family's fees at deviation = log(spot / fair) of the view,
    exactly; the ordinary policy's ignore the view."""
    import jax.numpy as jnp

    from propamm_jax.pools.base import FeeView
    from propamm_jax.pools.families import family as fam
    from propamm_jax.pools.features import FeatureState, deviation

    oracle = fam(family).pool(0.0, 300.0, 100, oracle=True, hidden=4)
    plain = fam(family).pool(0.0, 300.0, 100, oracle=False, hidden=4)
    params = oracle.unflatten(jnp.asarray(oracle.initial({"bias": -1.0, "w_dev": 1.5}, 1)))
    state = FeatureState(*(jnp.asarray(v) for v in
                           (1000.0, 0.002, 0.4, 0.3, 0.5, 0.001, 10.0, 0.02, 1003.0)))
    view = FeeView(jnp.asarray(996.5), jnp.asarray(10.0), jnp.asarray(10_020.0), jnp.asarray(7))
    true_dev = jnp.log((10_020.0 / 10.0) / 996.5)
    got = oracle.fees(params, state, view)
    assert [float(g) for g in got] == [float(f) for f in oracle.fees_at(params, state, true_dev)]
    assert [float(g) for g in got] != [float(f) for f in oracle.fees_at(params, state,
                                                                        deviation(state))]
    assert plain.fees(params, state, view) == plain.fees(params, state, None)
    with pytest.raises(PropammError, match="fee view"):
        oracle.fees(params, state, None)


def test_oracle_sees_the_fair_price_in_the_fast_path(tmp_path, x64):
    """The same parameters earn differently as an oracle (the view reaches its fees), and
    identically when the deviation has no weight."""
    from propamm_jax.config import SimConfig
    from propamm_jax.pools.dynamic_fee import DynamicFee
    from propamm_jax.training.objective import Setting, population_values

    config = SimConfig(steps=400, epoch_len=100)
    vec = np.array([[-1.2, 0, 0, 0, 0, 0, 0, 1.5], [-1.2, 0, 0, 0, 0, 0, 0, 0.0]])
    edges = {}
    for oracle in (False, True):
        pool = DynamicFee(0.0, 300.0, 100, oracle)
        edges[oracle] = population_values(Setting(pool, (), "corrected", config),
                                          pool.unflatten(vec), [5, 6])
    assert not np.allclose(edges[True][0], edges[False][0])
    assert np.array_equal(edges[True][1], edges[False][1])


def test_oracle_never_exports_validates_or_scores(tmp_path, capsys):
    from propamm_jax.cli import main
    from propamm_jax.official.validate import validate_file

    path, _, _ = _mlp_policy(tmp_path / "oracle.json", oracle=True)
    assert json.loads(path.read_text())["oracle"] is True
    assert main(["export", str(path), "-o", str(tmp_path / "o.rs")]) == 2
    err = capsys.readouterr().err.strip()
    assert "oracle policy" in err and "never exports" in err and "\n" not in err
    assert not (tmp_path / "o.rs").exists()
    report = validate_file(path)
    assert not report.ok and "oracle policy" in report.lines()[0]
    assert main(["score", str(path), "--simulations", "1"]) == 2
    assert "oracle policy" in capsys.readouterr().err


def test_train_mlp_and_oracle_from_the_command_line(tmp_path, capsys):
    from propamm_jax.cli import main
    from propamm_jax.pools.families import read_policy

    common = ["--generations", "1", "--population", "4", "--batch-seeds", "2", "--heldout",
              "2", "--steps", "300", "--epoch-len", "100", "--no-progress",
              "--algorithm", "open_es"]
    assert main(["train", "--family", "mlp", "--hidden", "3", *common,
                 "--out", str(tmp_path / "m")]) == 0
    fam, pool, _ = read_policy(tmp_path / "m" / "policy.json")
    assert fam.name == "mlp" and pool.hidden == 3 and not pool.oracle
    assert main(["train", "--family", "mlp", "--hidden", "3", "--oracle", *common,
                 "--compare", str(tmp_path / "m" / "policy.json"),
                 "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert read_policy(tmp_path / "o" / "policy.json")[1].oracle
    share = re.search(r"ceiling: the policy's mean edge (\S+) is (\S+)% of the oracle's (\S+) ",
                      out)
    assert share, out
    mine, pct, best = (float(g) for g in share.groups())
    assert abs(100 * mine / best - pct) < 0.1
    assert main(["train", "--family", "nope", *common, "--out", str(tmp_path / "x")]) == 2
    assert "unknown policy family 'nope'" in capsys.readouterr().err


def test_train_virtual_reserves_from_the_command_line_starts_from_its_own_defaults(tmp_path):
    """`--init`'s dynamic_fee defaults (bias, w_dev) are not this family's parameters."""
    from propamm_jax.cli import main
    from propamm_jax.pools.families import read_policy

    assert main(["train", "--family", "virtual_reserves", "--generations", "1", "--population",
                 "4", "--batch-seeds", "2", "--heldout", "2", "--steps", "300", "--epoch-len",
                 "100", "--no-progress", "--algorithm", "open_es",
                 "--out", str(tmp_path / "v")]) == 0
    fam, pool, params = read_policy(tmp_path / "v" / "policy.json")
    assert fam.name == "virtual_reserves" and set(params) == {"fee_buy_bps", "fee_sell_bps",
                                                             "concentration"}
    assert main(["train", "--family", "virtual_reserves", "--init", "bias=1", "--generations",
                 "1", "--out", str(tmp_path / "w")]) == 2
