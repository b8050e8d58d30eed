"""How the hub is installed: ``make run`` brings the runtime package alone, the checks bring the
dev tools; the package metadata is what current setuptools reads without a deprecation."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def planned(target: str, venv: Path) -> str:
    """What ``make TARGET`` would run on a fresh venv (``make -n``: nothing is run)."""
    proc = subprocess.run(
        ["make", "-n", target, f"VENV={venv}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return proc.stdout


def test_make_run_installs_the_runtime_package_only(tmp_path) -> None:
    run = planned("run", tmp_path / "venv")
    assert "pip install -q -e .\n" in run
    assert "[dev]" not in run
    for target in ("lint", "test"):
        assert "pip install -q -e '.[dev]'" in planned(target, tmp_path / "venv"), target


def test_the_license_is_an_spdx_expression_for_a_setuptools_that_reads_it() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"  # PEP 639; a table is deprecated
    assert "setuptools>=77" in project["build-system"]["requires"]  # the first to read it
