"""`propamm --help` and every subcommand's help: each option explains itself and shows its
default, `--version` works, and parse errors carry exactly one `propamm: error:` prefix."""

from __future__ import annotations

import argparse

import pytest

from propamm_jax.cli import build_parser, main


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in p._actions if not isinstance(a, argparse._HelpAction)]


def test_every_subcommand_is_listed_with_help():
    parser = build_parser()
    text = parser.format_help()
    assert len(_subparsers()) >= 13
    for name in _subparsers():
        assert name in text


@pytest.mark.parametrize("command", sorted(_subparsers()))
def test_every_option_has_help_and_shows_its_default(command):
    p = _subparsers()[command]
    options = _options(p)
    assert options, command
    text = p.format_help()
    for action in options:
        name = action.option_strings[-1] if action.option_strings else action.dest
        assert action.help and action.help.strip(), f"{command} {name}: no help text"
        shown = action.default is not None and action.default is not False \
            and action.default is not argparse.SUPPRESS \
            and not isinstance(action.default, list) and not action.required
        if shown:
            flat = " ".join(text.split())
            assert f"(default: {action.default})" in flat \
                or f"default: {action.default}," in flat, \
                f"{command} {name}: default {action.default!r} not in --help"


@pytest.mark.parametrize("command", ["score", "submit", "simulate", "sweep", "train",
                                     "tournament"])
def test_profile_default_is_named_in_both_helps(command):
    p = _subparsers()[command]
    (profile,) = [a for a in p._actions if "--profile" in a.option_strings]
    assert f"this command's default: {profile.default}," in " ".join(p.format_help().split())
    assert f"(profile: {profile.default})" in " ".join(build_parser().format_help().split())


def test_evaluate_profile_defaults_to_the_policys():
    p = _subparsers()["evaluate"]
    (profile,) = [a for a in p._actions if "--profile" in a.option_strings]
    assert profile.default is None
    assert "the policy's training profile" in " ".join(p.format_help().split())


def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"propamm {version('propamm-jax')}"


@pytest.mark.parametrize("argv", [["scroe"], ["score", "--bogus"], ["simulate", "--dtype", "f16"],
                                  ["train"]])
def test_parse_errors_have_one_prefix(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("propamm: error: ")
    assert err[0].count("propamm:") == 1, err[0]


def test_banner_says_when_the_profile_is_the_default():
    from propamm_jax.cli import _profile_banner

    p = build_parser()
    defaulted = p.parse_args(["simulate", "--pool", "cpamm:30"])
    given = p.parse_args(["simulate", "--pool", "cpamm:30", "--profile", "corrected"])
    assert _profile_banner("corrected", defaulted) == (
        "profile: corrected (default of propamm simulate; --profile reference for the other "
        "market)")
    assert _profile_banner("corrected", given) == "profile: corrected"
