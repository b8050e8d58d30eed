"""Driving wrk (Debian's ``/usr/bin/wrk``) and reading its ``--latency`` report."""

from __future__ import annotations

import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

WRK = "/usr/bin/wrk"
UNIQUE_LUA = Path(__file__).with_name("unique.lua")
PACED = "\nfunction delay()\n  return math.random(0, 2 * pace_ms)\nend\n"
"""wrk's ``delay`` hook for a paced run: a connection waits 0 to twice ``pace_ms`` (``pace_ms``
on average) between an answer and its next request. A fixed delay keeps every connection that
one journal commit answered in step: they wait the same time and come back together, so a
paced run was a burst of all its connections every cycle (seen in a trace of the journal's
commits at half rate: about 30 requests within 2 ms, then nothing for 15), not the steady
arrivals of providers that do not wait for one another."""

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_DURATION = re.compile(r"([\d.]+)(us|ms|s|m|h)")


@dataclass(frozen=True)
class Load:
    """What one wrk run sends: a URL path, and a query (GET) or body (POST) template with
    ``{id}`` where each request's unique id goes."""

    method: str
    path: str
    template: str
    content_type: str = ""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    """Socket errors (connect, read, write, timeout) plus non-2xx/3xx answers."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def milliseconds(text: str) -> float:
    """A wrk duration (``812.00us``, ``1.52ms``, ``2.00s``, ``1.00m``) in milliseconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse(output: str) -> WrkResult:
    """The figures of a ``wrk --latency`` report."""
    percentiles = {
        int(m.group(1)): milliseconds(m.group(2))
        for m in re.finditer(r"^\s+(50|75|90|99)(?:\.0+)?%\s+(\S+)\s*$", output, re.M)
    }
    latency = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", output, re.M)
    total = re.search(r"^\s*(\d+) requests in (\S+),", output, re.M)
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if total is None or rate is None or latency is None or len(percentiles) != 4:
        raise ValueError(f"not a wrk --latency report:\n{output}")
    errors = sum(
        int(n)
        for n in re.findall(
            r"(?:connect|read|write|timeout) (\d+)",
            _line(output, "Socket errors:"),
        )
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return WrkResult(
        requests=int(total.group(1)),
        seconds=milliseconds(total.group(2)) / 1e3,
        rps=float(rate.group(1)),
        p50_ms=percentiles[50],
        p75_ms=percentiles[75],
        p90_ms=percentiles[90],
        p99_ms=percentiles[99],
        max_ms=milliseconds(latency.group(3)),
        errors=errors,
    )


def _line(output: str, start: str) -> str:
    for line in output.splitlines():
        if line.strip().startswith(start):
            return line
    return ""


def script(paced: bool) -> str:
    """The Lua script: unique ids, and wrk's ``delay`` hook when the run is paced."""
    return UNIQUE_LUA.read_text() + (PACED if paced else "")


def command(
    url: str,
    load: Load,
    script_path: Path,
    *,
    prefix: str,
    seconds: float,
    connections: int,
    pace_ms: int = 0,
    cpu: int | None = None,
) -> list[str]:
    """The wrk command line (one thread), pinned to ``cpu`` when given."""
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    return [
        *pin,
        WRK,
        "-t1",
        f"-c{connections}",
        f"-d{max(round(seconds), 1)}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script_path),
        url,
        "--",
        load.method,
        load.path,
        load.template,
        prefix,
        load.content_type,
        str(pace_ms),
    ]


def run(
    url: str,
    load: Load,
    workdir: Path,
    *,
    prefix: str,
    seconds: float,
    connections: int,
    pace_ms: int = 0,
    cpu: int | None = None,
) -> WrkResult:
    """Runs wrk against ``url`` for ``seconds`` and returns its figures."""
    script_path = workdir / ("paced.lua" if pace_ms else "unique.lua")
    script_path.write_text(script(paced=bool(pace_ms)))
    argv = command(
        url,
        load,
        script_path,
        prefix=prefix,
        seconds=seconds,
        connections=connections,
        pace_ms=pace_ms,
        cpu=cpu,
    )
    done = subprocess.run(  # noqa: S603 - wrk at its Debian path, arguments of our own
        argv, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse(done.stdout)
