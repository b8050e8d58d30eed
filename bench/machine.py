"""What a benchmark ran on: CPU, cores, memory, kernel, Python, SQLite, the Python and Debian
packages that matter, the hub's commit (the JSON file's ``machine``)."""

from __future__ import annotations

import os
import platform
import re
import sqlite3
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any


def _first(path: str, pattern: str) -> str | None:
    try:
        match = re.search(pattern, Path(path).read_text(), re.M)
    except OSError:
        return None
    return match.group(1).strip() if match else None


def _command(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(  # noqa: S603 - fixed read-only commands
            argv, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def machine() -> dict[str, Any]:
    """What the run ran on: CPU, cores, memory, kernel, Python and the versions that matter."""
    packages = {}
    for name in ("aiohttp", "uvloop", "aio-pika", "aiormq", "orjson", "pydantic"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    debian = {
        name: _command(["dpkg-query", "-W", "-f", "${Version}", name])
        for name in ("wrk", "rabbitmq-server", "erlang-base", "libsqlite3-0")
    }
    return {
        "cpu_model": _first("/proc/cpuinfo", r"^model name\s*:\s*(.+)$"),
        "cores": os.cpu_count(),
        "memory_kib": int(_first("/proc/meminfo", r"^MemTotal:\s*(\d+)") or 0),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "packages": packages,
        "debian": debian,
        "hub_commit": _command(["git", "rev-parse", "--short", "HEAD"]),
        "hub_tree_dirty": bool(
            _command(["git", "status", "--porcelain", "--", "hub", "sinks", "parsers"])
        ),
    }
