"""Starting the local stack, saying where each part is, and stopping it all (``make stack``).

In order: a RabbitMQ node (its Prometheus and management plugins, ``deploy/rabbitmq/
definitions.json`` loaded: the ``hub`` and ``admin`` users, the example queues, the stream),
``hub serve`` publishing to it as ``hub``, and a Prometheus scraping both and evaluating
``dashboards/prometheus/hub-alerts.yml``. RabbitMQ and Prometheus start afresh in the stack's
directory (``var/stack`` by default); the hub keeps its data directory (``HUB_DATA_DIR``,
default ``var``: its secrets, hence its URLs, stay the same from one run to the next) and
writes its log to this terminal.

Ctrl-C (SIGINT) or SIGTERM (``make stack-down``, by the PID in ``<dir>/stack.pid``) stops the
hub, then Prometheus, then RabbitMQ, each by the PID it was started with, and waits for each.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from tests.harness.prometheus import PrometheusServer, prometheus_available
from tests.harness.rabbitmq import RabbitNode, rabbitmq_available

ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = ROOT / "deploy" / "rabbitmq" / "definitions.json"
ALERTS = ROOT / "dashboards" / "prometheus" / "hub-alerts.yml"
PID_FILE = "stack.pid"
HUB_USER = "hub:hub"
"""The hub's user in the definitions (its password is its name: a loopback-only broker)."""
ADMIN = "user admin, password admin"
"""The administrator of the definitions, for the management UI."""

_START_WAIT = 120.0
_HUB_STOP_WAIT = 30.0


class Stop(Exception):
    """SIGINT or SIGTERM came: stop everything."""


def _stop_now(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def run(base: Path) -> int:
    """Runs the stack until a signal (0), or until something fails (1)."""
    base = base.resolve()
    if not (rabbitmq_available() and prometheus_available()):
        print("rabbitmq-server or prometheus is not installed: `make stack` installs them (apt)")
        return 1
    pid_file = base / PID_FILE
    running = running_pid(pid_file)
    if running is not None:
        print(f"a stack is running already (PID {running}): `make stack-down` stops it")
        return 1
    host = os.environ.get("HUB_HOST", "127.0.0.1")
    port = int(os.environ.get("HUB_PORT", "8080"))
    data_dir = Path(os.environ.get("HUB_DATA_DIR", "var"))
    if not _free(host, port):
        print(f"port {port} is taken (a `make run`?): stop it, or set HUB_PORT")
        return 1
    for old in ("rabbitmq", "prometheus"):  # a past run's, thrown away
        shutil.rmtree(base / old, ignore_errors=True)
    base.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{os.getpid()}\n")
    stops: list[Callable[[], None]] = []
    previous = {sig: signal.signal(sig, _stop_now) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        node = RabbitNode(base / "rabbitmq", plugins=("rabbitmq_prometheus", "rabbitmq_management"))
        print("starting RabbitMQ...", flush=True)
        stops.append(node.stop)
        node.start(timeout=_START_WAIT)
        node.rabbitmqctl("import_definitions", str(DEFINITIONS))
        amqp = f"amqp://{HUB_USER}@127.0.0.1:{node.port}/"
        print("starting the hub...", flush=True)
        hub = _start_hub(host, port, data_dir, amqp)
        stops.append(lambda: _stop_hub(hub))
        _wait_ready(hub, f"http://127.0.0.1:{port}/health/ready")
        prometheus = PrometheusServer(
            base / "prometheus",
            {
                "hub": [f"127.0.0.1:{port}"],
                "rabbitmq": {
                    "targets": [f"127.0.0.1:{node.plugin_ports['rabbitmq_prometheus']}"],
                    "metrics_path": "/metrics/per-object",
                },
            },
            rule_files=[ALERTS],
            scrape_interval="5s",
        )
        print("starting Prometheus...", flush=True)
        stops.append(prometheus.stop)
        prometheus.start(timeout=_START_WAIT)
        _print_places(base, host, port, data_dir, hub, node, prometheus, amqp)
        code = hub.wait()  # until a signal; or the hub ends by itself
        print(f"the hub exited by itself (code {code}): stopping the stack", flush=True)
        return 1
    except Stop as why:
        print(f"\n{why}: stopping the hub, Prometheus and RabbitMQ...", flush=True)
        return 0
    except (RuntimeError, OSError) as exc:
        print(f"the stack could not start: {exc}", flush=True)
        return 1
    finally:
        for sig in previous:  # stopping takes seconds: a second Ctrl-C must not cut it short
            signal.signal(sig, signal.SIG_IGN)
        for stop in reversed(stops):
            stop()
        pid_file.unlink(missing_ok=True)
        print("stack stopped", flush=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def running_pid(pid_file: Path) -> int | None:
    """The PID in ``pid_file`` if a stack runner still runs under it (not a reused PID)."""
    try:
        pid = int(pid_file.read_text().strip())
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if b"-m" in argv and b"stack" in argv else None


def _free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _start_hub(host: str, port: int, data_dir: Path, amqp: str) -> subprocess.Popen[bytes]:
    """``hub serve`` with the caller's ``HUB_*`` variables and this broker; its output goes to
    this terminal. A session of its own: Ctrl-C reaches the runner only, which stops it."""
    env = dict(os.environ)
    env.update(HUB_HOST=host, HUB_PORT=str(port), HUB_DATA_DIR=str(data_dir))
    env["HUB_RABBITMQ_URL"] = amqp
    return subprocess.Popen(
        [sys.executable, "-m", "hub", "serve"],
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_ready(hub: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + _START_WAIT
    while True:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=1) as resp,  # noqa: S310 - loopback
        ):
            if resp.status == 200:
                return
        if hub.poll() is not None:
            raise RuntimeError(f"the hub exited at start (code {hub.returncode}): see above")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the hub was not ready within {_START_WAIT:.0f} s")
        time.sleep(0.1)  # polling a server's readiness


def _stop_hub(hub: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the hub drains, stops its forwarder); SIGKILL if it outlasts the wait."""
    if hub.poll() is None:
        hub.send_signal(signal.SIGTERM)
    try:
        hub.wait(timeout=_HUB_STOP_WAIT)
    except subprocess.TimeoutExpired:
        hub.kill()
        hub.wait(timeout=_HUB_STOP_WAIT)


def _print_places(
    base: Path,
    host: str,
    port: int,
    data_dir: Path,
    hub: subprocess.Popen[bytes],
    node: RabbitNode,
    prometheus: PrometheusServer,
    amqp: str,
) -> None:
    management = node.plugin_ports["rabbitmq_management"]
    url = f"http://{host}:{port}"
    lines = [
        "",
        "callback hub stack: ready (Ctrl-C here, or `make stack-down`, stops it all)",
        f"  hub         {url}  data {data_dir.resolve()}  PID {hub.pid}  (its log: below)",
        f"  rabbitmq    {amqp}  data {node.base_dir}  PID {node.beam_pid()}  node {node.nodename}",
        f"  management  http://127.0.0.1:{management}/  ({ADMIN})",
        f"  prometheus  {prometheus.url}  data {prometheus.base_dir}  PID {prometheus.pid}",
        f"  pid file    {base / PID_FILE}",
        "",
        "In another terminal:",
        f"  export HUB_DATA_DIR={data_dir.resolve()} HUB_RABBITMQ_URL={amqp}",
        f"  .venv/bin/hub urls --base {url}",
        "  .venv/bin/hub subscribe '#'",
        "Grafana: import dashboards/grafana/*.json with Prometheus at the address above.",
        "",
    ]
    print("\n".join(lines), flush=True)
