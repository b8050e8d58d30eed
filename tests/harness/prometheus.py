"""Throwaway Prometheus server for integration tests.

Runs Debian's ``prometheus`` package (``/usr/bin/prometheus``) on 127.0.0.1 and a free port, with
its storage, configuration and log under one directory; stopped by PID. Usage::

    with PrometheusServer(tmp_path / "prom", {"hub": ["127.0.0.1:8080"]}) as prom:
        prom.wait_scraped("hub")
        prom.query('sum(rate(hub_callbacks_total[1m]))')   # the API's result list
"""

from __future__ import annotations

import atexit
import json
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from .ports import free_port

__all__ = ["PROMETHEUS_BIN", "PROMTOOL_BIN", "PrometheusServer", "prometheus_available"]

PROMETHEUS_BIN = Path("/usr/bin/prometheus")
PROMTOOL_BIN = Path("/usr/bin/promtool")
_STOP_WAIT = 15.0


def prometheus_available() -> bool:
    return PROMETHEUS_BIN.exists() and PROMTOOL_BIN.exists()


class PrometheusServer:
    """One Prometheus scraping ``targets`` (job name -> ``host:port`` list, or a mapping with
    ``targets``, ``metrics_path`` and ``labels``: added to every series of the job, as Kubernetes
    service discovery adds ``namespace``) every ``scrape_interval``, evaluating ``rule_files``."""

    def __init__(
        self,
        base_dir: Path,
        targets: Mapping[str, Sequence[str] | Mapping[str, Any]],
        *,
        rule_files: Sequence[Path] = (),
        scrape_interval: str = "1s",
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.port = free_port()
        self.targets = dict(targets)
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.scrape_interval = scrape_interval
        self.config_file = self.base_dir / "prometheus.yml"
        self.log_file = self.base_dir / "prometheus.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's PID while it runs (started by us)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def config(self) -> dict[str, Any]:
        """The configuration file's content (JSON is YAML)."""
        jobs = []
        for job, spec in self.targets.items():
            if isinstance(spec, Mapping):
                static = {"targets": list(spec["targets"]), "labels": dict(spec.get("labels", {}))}
                jobs.append(
                    {
                        "job_name": job,
                        "metrics_path": spec.get("metrics_path", "/metrics"),
                        "static_configs": [static],
                    }
                )
            else:
                jobs.append({"job_name": job, "static_configs": [{"targets": list(spec)}]})
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": jobs,
        }

    def start(self, timeout: float = 30) -> None:
        """Starts the server and blocks until it answers ``/-/ready``."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(json.dumps(self.config(), indent=2))
        with open(self.log_file, "ab") as log:
            self._proc = subprocess.Popen(
                [
                    str(PROMETHEUS_BIN),
                    f"--config.file={self.config_file}",
                    f"--storage.tsdb.path={self.base_dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                    "--log.level=warn",
                ],
                cwd=self.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                detail = self.log_tail()
                self.stop()
                raise RuntimeError(f"prometheus did not become ready:\n{detail}")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a while. Idempotent."""
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=_STOP_WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=_STOP_WAIT)

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no log at {self.log_file})"

    # -- HTTP API -----------------------------------------------------------

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``: the ``data`` of a successful answer; RuntimeError otherwise
        (a query Prometheus cannot parse or evaluate included)."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{path} {params}: HTTP {exc.code}: {exc.read()!r}") from None
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result: ``[{"metric": {...}, "value": [t, "v"]}, ...]``."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def targets_health(self) -> dict[str, list[str]]:
        """Job name -> the health (``up``, ``down``, ``unknown``) of each of its targets."""
        health: dict[str, list[str]] = {}
        for target in self.api("targets")["activeTargets"]:
            health.setdefault(target["labels"]["job"], []).append(target["health"])
        return health

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule with its ``health``, ``lastError`` and (alerts) ``state``."""
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]

    def wait_scraped(self, job: str, timeout: float = 30) -> None:
        """Blocks until every target of ``job`` has been scraped successfully."""
        deadline = time.monotonic() + timeout
        while True:
            health = self.targets_health().get(job, [])
            if health and all(h == "up" for h in health):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"targets of {job} not up: {health}\n{self.log_tail()}")
            time.sleep(0.2)
