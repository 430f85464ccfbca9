"""The wheel holds every module and data file of the source tree.

pyproject.toml lists the packages by hand (native/ and training/ install under
propamm_jax), so a new subpackage can be forgotten: a non-editable install then fails with
ModuleNotFoundError while every editable-install test passes. This test builds the wheel from
a clean copy of the tree (no stale build/ folder can fill a gap) and compares file lists.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import SOURCE_LAYOUT as LAYOUT

ROOT = Path(__file__).parents[1]
BUILD_FILES = ("pyproject.toml", "README.md")


def _source_files() -> set[str]:
    """Every file the tree ships, as its path inside the wheel (caches and builds aside)."""
    out = set()
    for folder, target in LAYOUT.items():
        for path in (ROOT / folder).rglob("*"):
            rel = path.relative_to(ROOT / folder)
            if path.is_file() and "__pycache__" not in rel.parts \
                    and path.suffix not in (".pyc", ".so"):
                out.add(f"{target}/{rel.as_posix()}")
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in BUILD_FILES:
        shutil.copy(ROOT / name, src / name)
    for folder in LAYOUT:
        shutil.copytree(ROOT / folder, src / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so"))
    dist = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(src),
                           "-w", str(dist)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"pip wheel failed:\n{proc.stderr[-3000:]}")
    (path,) = dist.glob("propamm_jax-*.whl")
    return path


def test_every_source_file_is_in_the_wheel(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = _source_files()
    assert "propamm_jax/fast/solvers.py" in expected  # the walk found the tree
    missing = sorted(expected - names)
    assert not missing, f"missing from the wheel (pyproject.toml's packages/package-data): {missing}"


def test_wheel_has_the_console_script(wheel):
    with zipfile.ZipFile(wheel) as z:
        (entry,) = [n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt")]
        assert "propamm = propamm_jax.cli:entry" in z.read(entry).decode()
