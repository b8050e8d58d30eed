"""Dashboards and alert rules: valid files, queries on the hub's own metrics, and end to end.

End to end, the test runs the monitoring stack for real: a RabbitMQ node (with its Prometheus
plugin and ``deploy/rabbitmq/definitions.json`` loaded), a ``hub serve`` process publishing to it
(with a shared index, on a throwaway PostgreSQL), and Debian's Prometheus scraping both and
evaluating the alert rules. It sends every golden case
of every provider, then asks Prometheus each dashboard panel's query: each must return data.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import math
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import promql_parser
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from core.models import Provider
from hub import journaled
from hub.app import create_app, endpoints
from hub.settings import Settings
from sinks import journal as store
from sinks.memory import MemorySink
from sinks.progress import ProgressCollector
from tests.fakes.base import Running
from tests.fakes.smsmode import BASE_PATH, TOKEN, FakeSmsmode, Reply
from tests.golden import Case, all_cases
from tests.harness.ports import free_port
from tests.harness.postgres import PostgresServer
from tests.harness.prometheus import PROMTOOL_BIN, PrometheusServer, prometheus_available
from tests.harness.rabbitmq import RabbitNode, broker_required, rabbitmq_available
from tests.support import SECRET, eventually, hub_env, make_settings, metric, raw_url, wait_until

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((ROOT / "dashboards" / "grafana").glob("*.json"))
SCHEMA = ROOT / "dashboards" / "schema" / "grafana-dashboard.schema.json"
ALERTS = ROOT / "dashboards" / "prometheus" / "hub-alerts.yml"
ALERT_TESTS = ROOT / "dashboards" / "prometheus" / "hub-alerts.test.yml"
DEFINITIONS = ROOT / "deploy" / "rabbitmq" / "definitions.json"

GRAFANA_GLOBALS = {"__rate_interval": "5m", "__range": "1h", "__interval": "1m"}
"""Grafana's own variables, as the end-to-end test evaluates them (the test lasts seconds)."""
TARGET_LABELS = {"instance", "job"}
"""Labels Prometheus adds to every scraped series."""
ALLOWED_LABELS = {
    *("provider", "endpoint", "channel", "kind", "state", "outcome", "reason", "failure"),
    *("route", "method", "status", "le", "version", "python"),
}
RABBITMQ_LABELS = {"vhost", "queue", "rabbitmq_node", "rabbitmq_cluster", "namespace"}
"""Labels of RabbitMQ's metrics the dashboards use: its per-object metrics' (``vhost``,
``queue``), its ``rabbitmq_identity_info``'s, and ``namespace``, which Kubernetes service
discovery adds (the end-to-end test adds it as a target label). Proven end to end."""
NAMESPACE = "callback-hub"
"""The ``namespace`` target label of the end-to-end test's RabbitMQ."""
_VARIABLE = re.compile(r"\$\{?(\w+)(?::\w+)?\}?")


@dataclass(frozen=True)
class Query:
    where: str
    expr: str
    variables: frozenset[str] = frozenset()

    def concrete(self, **chosen: str) -> str:
        """The expression with Grafana's variables replaced: every dashboard variable's "All",
        but those ``chosen`` (name -> a regular expression, as Grafana puts a selection)."""

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in GRAFANA_GLOBALS:
                return GRAFANA_GLOBALS[name]
            if name in self.variables:
                return chosen.get(name, ".*")
            raise AssertionError(f"{self.where}: ${name} is no variable of the dashboard")

        return _VARIABLE.sub(value, self.expr)

    def named(self) -> set[str]:
        """The dashboard variables the expression uses."""
        return {m.group(1) for m in _VARIABLE.finditer(self.expr)} & self.variables


def load_dashboard(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def variables_of(dashboard: dict[str, Any]) -> frozenset[str]:
    return frozenset(v["name"] for v in dashboard["templating"]["list"])


def panel_queries() -> list[Query]:
    queries = []
    for path in DASHBOARDS:
        board = load_dashboard(path)
        for panel in board["panels"]:
            for target in panel["targets"]:
                where = f"{path.name}: {panel['title']} ({target['refId']})"
                queries.append(Query(where, target["expr"], variables_of(board)))
    return queries


def variable_queries() -> list[tuple[Query, str]]:
    """Each ``label_values(selector, label)`` variable: the selector as a query, and the label."""
    found = []
    for path in DASHBOARDS:
        board = load_dashboard(path)
        for var in board["templating"]["list"]:
            if var["type"] != "query":
                continue
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"])
            assert match, f"{path.name}: variable {var['name']}: {var['query']}"
            where = f"{path.name}: variable {var['name']}"
            found.append((Query(where, match.group(1), variables_of(board)), match.group(2)))
    return found


def rule_queries() -> list[Query]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [
        Query(f"{ALERTS.name}: {rule.get('alert') or rule['record']}", rule["expr"])
        for group in groups
        for rule in group["rules"]
    ]


def every_query() -> list[Query]:
    return [*panel_queries(), *(q for q, _ in variable_queries()), *rule_queries()]


# -- the hub's metrics, from an in-process hub fed every golden case --------------------------


def request_of(case: Case, secret: str = SECRET) -> tuple[str, str, bytes | None, dict[str, str]]:
    """Method, path, body and headers of a golden case, as the provider sends it."""
    path = f"/callbacks/{case.provider.value}/{secret}/{case.spec['callback']}"
    headers = {"Content-Type": case.spec["content_type"]} if case.spec.get("content_type") else {}
    if case.input_kind == "query":
        return case.spec["method"], f"{path}?{case.input.decode('ascii')}", None, headers
    return case.spec["method"], path, case.input, headers


def _replies() -> FakeSmsmode:
    """sMsmode's fake with two replies of the last minutes, for the hub's pull source."""
    now = datetime.now(UTC)
    return FakeSmsmode(replies=[Reply("r-1", now - timedelta(minutes=3)), Reply("r-2", now)])


async def _expositions(data_dir: Path) -> tuple[str, str]:
    """The metrics of a fresh hub, then after every golden case (with an in-memory broker), its
    sMsmode pull source polling the fake: the replies are put in the fake once the fresh
    metrics are read (the source's first poll comes at once, and may come before them)."""
    replies = _replies()
    waiting, replies.replies = replies.replies, []
    async with TestServer(replies.app()) as fake:
        url = str(fake.make_url(BASE_PATH))
        settings = make_settings(
            data_dir, smsmode_access_token=TOKEN, smsmode_api_url=url, smsmode_pull_interval=0.2
        )
        return await _fed(settings, lambda: replies.add(*waiting))


async def _fed(
    settings: Settings, after_fresh: Callable[[], None] = lambda: None
) -> tuple[str, str]:
    data_dir = settings.data_dir
    async with TestClient(TestServer(create_app(settings, sink=MemorySink()))) as c:
        fresh = await (await c.get("/metrics")).text()
        after_fresh()
        for case in all_cases():
            method, path, body, headers = request_of(case)
            url = raw_url(c, path)
            await (await c.session.request(method, url, data=body, headers=headers)).read()
        await (await c.get(f"/callbacks/isendpro/wrong-{SECRET}/delivery")).read()

        async def processed() -> bool:  # events are counted by the worker, after the answer
            return journaled.processed(data_dir) == store.last_seq(data_dir / store.JOURNAL_FILE)

        await eventually(processed)

        async def polled() -> bool:  # the pull source's first poll, done
            exposition = await (await c.get("/metrics")).text()
            return bool(metric(exposition, "hub_pull_polls_total", outcome="items"))

        await eventually(polled)
        return fresh, await (await c.get("/metrics")).text()


@pytest.fixture(scope="module")
def expositions(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return asyncio.run(_expositions(tmp_path_factory.mktemp("hub") / "data"))


@pytest.fixture(scope="module")
def exported(
    expositions: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, set[str]]:
    """Every sample name the hub exports, with its label names; those of a hub with a shared
    index too (``HUB_INDEX_URL``: the worker's families then, as ``/metrics`` collects them)."""
    shared = ProgressCollector(
        tmp_path_factory.mktemp("shared"), [], forwarding=True, shared=True
    ).collect()
    names: dict[str, set[str]] = {}
    for family in [*text_string_to_metric_families(expositions[1]), *shared]:
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_count", "_sum", "_created"),
            "info": ("_info",),
        }.get(family.type, ("",))
        for suffix in suffixes:
            names.setdefault(family.name + suffix, set())
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


# -- files ------------------------------------------------------------------------------------


def test_the_three_dashboards_exist_with_distinct_uids_and_titles() -> None:
    boards = [load_dashboard(p) for p in DASHBOARDS]
    assert {b["uid"] for b in boards} == {
        "callback-hub-overview",
        "callback-hub-delivery",
        "callback-hub-pipeline",
    }
    assert len({b["title"] for b in boards}) == len(boards)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_follows_the_schema_and_its_layout_holds(path: Path) -> None:
    board = load_dashboard(path)
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(board)
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs), panel["title"]
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_schema_refuses_what_provisioning_cannot_load() -> None:
    """The schema is no rubber stamp: __inputs, a fixed datasource, a missing expr all fail."""
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    good = load_dashboard(DASHBOARDS[0])
    assert validator.is_valid(good)
    broken = [
        {**good, "__inputs": [{"name": "DS_PROMETHEUS", "type": "datasource"}]},
        {**good, "uid": "Not A Stable UID!"},
        {**good, "templating": {"list": good["templating"]["list"][1:]}},
        {
            **good,
            "panels": [{**good["panels"][0], "datasource": {"type": "prometheus", "uid": "x"}}],
        },
        {**good, "panels": [{**good["panels"][0], "targets": [{"refId": "A"}]}]},
    ]
    for board in broken:
        assert not validator.is_valid(board)


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    if not PROMTOOL_BIN.exists():
        pytest.fail(f"{PROMTOOL_BIN} missing: install Debian's prometheus package (make test does)")
    return subprocess.run(
        [str(PROMTOOL_BIN), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


def test_alert_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alert_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", ALERT_TESTS.name, cwd=ALERT_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_proven_to_fire_by_a_unit_test() -> None:
    alerts = {q.where.split(": ")[1] for q in rule_queries()}
    assert {
        "HubBrokerUnreachable",
        "HubSharedIndexUnreachable",
        "HubJournalBacklogGrowing",
        "HubOldestUnforwardedTooOld",
        "HubWorkerBehind",
        "HubRejectedCallbacksSpike",
        "HubProviderSilent",
    } <= alerts
    firing = {
        case["alertname"]
        for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts == firing


def test_every_expression_parses_with_prometheus(tmp_path: Path) -> None:
    """Prometheus' own parser (promtool) reads every dashboard and rule expression."""
    rules = [
        {"record": f"check:expression_{i}", "expr": q.concrete()}
        for i, q in enumerate(every_query())
    ]
    path = tmp_path / "expressions.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "expressions", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def selectors(node: Any) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(n: Any) -> bool:
        if isinstance(n, promql_parser.VectorSelector):
            found.append(n)
        return True

    promql_parser.walk(node, visit)
    return found


@pytest.mark.parametrize("query", every_query(), ids=lambda q: q.where)
def test_expression_names_only_metrics_the_hub_exports(query: Query, exported) -> None:
    """Metric names and the labels matched or grouped by exist (RabbitMQ's rabbitmq_* aside)."""
    tree = promql_parser.parse(query.concrete())
    found = selectors(tree)
    assert found, "an expression with no metric"
    known: set[str] = {*TARGET_LABELS, "le"}
    for selector in found:
        name = selector.name
        assert name, f"{query.where}: a selector without a metric name"
        if name.startswith("rabbitmq_"):  # RabbitMQ's own: proven by the end-to-end test
            labels = RABBITMQ_LABELS | TARGET_LABELS
        else:
            assert name in exported, f"{query.where}: {name} is not exported by the hub"
            labels = exported[name] | TARGET_LABELS
        for matcher in selector.matchers.matchers:
            assert matcher.name in labels, f"{query.where}: {name} has no label {matcher.name}"
        known |= labels

    def grouped(n: Any) -> bool:
        by = promql_parser.AggModifierType.By
        if isinstance(n, promql_parser.AggregateExpr) and n.modifier and n.modifier.type == by:
            unknown = set(n.modifier.labels) - known
            assert not unknown, f"{query.where}: grouped by unknown labels {unknown}"
        return True

    promql_parser.walk(tree, grouped)


VARIABLES = {
    "hub-overview.json": {"instance", "provider"},
    "hub-delivery.json": {"instance", "provider", "channel"},
    "hub-pipeline.json": {"instance", "provider", "namespace", "rabbitmq_cluster"}
    | {"rabbitmq_node", "vhost"},
}
"""The filters each dashboard offers (issue 15)."""
IDENTITY_FILTERS = {"namespace", "rabbitmq_cluster", "rabbitmq_node"}


def test_each_dashboard_offers_its_filters() -> None:
    for path in DASHBOARDS:
        assert variables_of(load_dashboard(path)) - {"datasource"} == VARIABLES[path.name]


def _matchers(selector: promql_parser.VectorSelector) -> dict[str, str]:
    return {m.name: str(m.value) for m in selector.matchers.matchers}


@pytest.mark.parametrize("query", panel_queries(), ids=lambda q: q.where)
def test_every_selector_obeys_the_dashboards_filters(query: Query, exported) -> None:
    """Each hub metric is filtered by every variable naming one of its labels (a panel that
    ignored the provider filter would show all providers under one provider's name); each
    RabbitMQ metric is joined on ``rabbitmq_identity_info`` filtered by namespace, cluster and
    node, as RabbitMQ's own dashboards do, and per-queue ones by virtual host."""
    found = selectors(promql_parser.parse(query.concrete(**{v: v for v in query.variables})))
    hub = [s for s in found if not s.name.startswith("rabbitmq_")]
    for selector in hub:
        wanted = {v for v in query.variables if v in exported[selector.name] | {"instance"}}
        matchers = _matchers(selector)
        for variable in wanted:
            assert matchers.get(variable) == variable, f"{query.where}: {selector.name}"
    metrics = [s for s in found if s.name.startswith("rabbitmq_")]
    identities = [s for s in metrics if s.name == "rabbitmq_identity_info"]
    others = [s for s in metrics if s.name != "rabbitmq_identity_info"]
    assert len(identities) == len(others), f"{query.where}: each RabbitMQ metric joined"
    for identity in identities:
        assert {k: v for k, v in _matchers(identity).items() if k in IDENTITY_FILTERS} == {
            f: f for f in IDENTITY_FILTERS
        }, query.where
    for selector in others:
        if selector.name.startswith("rabbitmq_queue_"):
            assert _matchers(selector).get("vhost") == "vhost", query.where
    if others:
        assert "group_left (rabbitmq_cluster, rabbitmq_node)" in query.expr, query.where


def test_metric_names_and_labels_follow_the_conventions(exported) -> None:
    """hub_ prefix, _total counters, _seconds histograms, bounded label names only."""
    for name, labels in exported.items():
        assert name.startswith("hub_"), name
        assert labels <= ALLOWED_LABELS, f"{name}: {labels - ALLOWED_LABELS}"
    assert "hub_callbacks_total" in exported and "hub_events_total" in exported
    histograms = {n.removesuffix("_bucket") for n in exported if n.endswith("_bucket")}
    assert histograms and all(h.endswith("_seconds") for h in histograms), histograms


def test_known_label_sets_start_at_zero(expositions) -> None:
    fresh, _ = expositions
    for e in endpoints():
        p, name = e.provider.value, e.callback.name
        for outcome in ("accepted", "disconnected"):
            found = metric(fresh, "hub_callbacks_total", provider=p, endpoint=name, outcome=outcome)
            assert found == 0, (p, name, outcome)
        assert metric(fresh, "hub_callback_duration_seconds_count", provider=p, endpoint=name) == 0
    for provider in Provider:
        assert metric(fresh, "hub_forwarded_events_total", provider=provider.value) == 0
        assert metric(fresh, "hub_duplicate_events_total", provider=provider.value) == 0


# -- end to end: real RabbitMQ, real hub process, real Prometheus ------------------------------


@dataclass
class Stack:
    node: RabbitNode
    prometheus: PrometheusServer
    hub_url: str
    cases: list[Case]


def _send(base: str, case: Case, secret: str = SECRET) -> int:
    method, path, body, headers = request_of(case, secret)
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _value(prometheus: PrometheusServer, expr: str) -> float | None:
    result = prometheus.query(expr)
    return float(result[0]["value"][1]) if result else None


def _wait_for(
    prometheus: PrometheusServer, expr: str, expected: float, timeout: float = 60
) -> None:
    """Blocks until Prometheus' latest sample of ``expr`` equals ``expected``."""
    got: list[float | None] = [None]

    def equal() -> bool:
        got[0] = _value(prometheus, expr)
        return got[0] == expected

    wait_until(equal, timeout, failure=lambda: f"{expr}: {got[0]}, expected {expected}")


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Blocks until the hub says its broker is connected (fails at once if the hub exits)."""

    def connected() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the hub exited ({proc.returncode}) before it connected")
        try:
            with urllib.request.urlopen(f"{url}/metrics", timeout=2) as resp:
                return metric(resp.read().decode(), "hub_broker_connected") == 1
        except OSError:
            return False

    wait_until(connected, timeout, failure=lambda: "the hub did not connect to the broker")


def _start_or_fail(start: Any, what: str) -> None:
    try:
        start()
    except (RuntimeError, OSError) as exc:
        if broker_required():
            pytest.fail(f"{what} could not start: {exc}")
        pytest.skip(f"{what} could not start (CI=true makes this a failure): {exc}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer) -> Iterator[Stack]:
    if not (rabbitmq_available() and prometheus_available()):
        if broker_required():
            pytest.fail("rabbitmq-server and prometheus must be installed (make test does)")
        pytest.skip("rabbitmq-server or prometheus not installed")
    base = tmp_path_factory.mktemp("stack")
    node = RabbitNode(base / "rabbitmq", plugins=("rabbitmq_prometheus",))
    hub: subprocess.Popen[bytes] | None = None
    prometheus: PrometheusServer | None = None
    hub_log = open(base / "hub.log", "wb")  # noqa: SIM115 (closed in the finally below)
    fake = Running(_replies()).__enter__()  # sMsmode's API, for the hub's pull source
    try:
        _start_or_fail(node.start, "RabbitMQ")
        node.rabbitmqctl("import_definitions", str(DEFINITIONS))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env.update(hub_env())
        env.update(
            HUB_PORT=str(port),
            HUB_DATA_DIR=str(base / "hub"),
            # the user of the definitions: proves its password and permissions fit the hub
            HUB_RABBITMQ_URL=f"amqp://hub:hub@127.0.0.1:{node.port}/",
            HUB_SMSMODE_ACCESS_TOKEN=TOKEN,
            HUB_SMSMODE_API_URL=fake.api_url,
            HUB_SMSMODE_PULL_INTERVAL="1",
            # a shared index too, so that its gauge is scraped (the panel, the alert)
            HUB_INDEX_URL=_database(postgres, "stack_index"),
        )
        hub = subprocess.Popen(
            [sys.executable, "-m", "hub", "serve"],
            env=env,
            stdout=hub_log,
            stderr=subprocess.STDOUT,
        )
        hub_url = f"http://127.0.0.1:{port}"
        _wait_ready(hub_url, hub)
        rabbit_port = node.plugin_ports["rabbitmq_prometheus"]
        prometheus = PrometheusServer(
            base / "prometheus",
            {
                "hub": [f"127.0.0.1:{port}"],
                "rabbitmq": {
                    "targets": [f"127.0.0.1:{rabbit_port}"],
                    "metrics_path": "/metrics/per-object",
                    "labels": {"namespace": NAMESPACE},  # as Kubernetes discovery adds it
                },
            },
            rule_files=[ALERTS],
        )
        _start_or_fail(prometheus.start, "Prometheus")
        prometheus.wait_scraped("hub")
        prometheus.wait_scraped("rabbitmq")
        cases = all_cases()
        _feed(prometheus, hub_url, cases)
        yield Stack(node, prometheus, hub_url, cases)
    finally:
        if prometheus is not None:
            prometheus.stop()
        if hub is not None:
            hub.send_signal(signal.SIGTERM)
            try:
                hub.wait(timeout=30)
            except subprocess.TimeoutExpired:
                hub.kill()
                hub.wait(timeout=10)
        hub_log.close()
        node.stop()
        fake.__exit__(None, None, None)


def _database(postgres: PostgresServer, name: str) -> str:
    """The URL of a new, empty database on the harness's PostgreSQL."""
    postgres.psql(f"CREATE DATABASE {name}")
    return postgres.url.rsplit("/", 1)[0] + "/" + name


def _feed(prometheus: PrometheusServer, hub_url: str, cases: list[Case]) -> None:
    """Two waves a scrape apart, so that rates see counters move: half the golden cases, then
    the other half, the first half again (provider retries) and one wrong secret per provider."""
    first, second = cases[::2], cases[1::2]
    total = "sum(hub_callbacks_total)"
    forwarded = "sum(hub_events_total) - sum(hub_forwarded_events_total)"
    for case in first:
        _send(hub_url, case)
    _wait_for(prometheus, total, len(first))
    _wait_for(prometheus, forwarded, 0)
    for case in [*second, *first]:
        _send(hub_url, case)
    for provider in Provider:
        wrong = next(c for c in cases if c.provider == provider)
        assert _send(hub_url, wrong, secret=f"wrong-{SECRET}") == 404
    _wait_for(prometheus, total, len(first) * 2 + len(second) + len(Provider))
    _wait_for(prometheus, forwarded, 0)
    _wait_for(prometheus, "sum(hub_journal_backlog_events)", 0)


def _has_data(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result)


@pytest.mark.broker
@pytest.mark.parametrize("query", panel_queries(), ids=lambda q: q.where)
def test_panel_query_returns_data_from_a_real_prometheus(query: Query, stack: Stack) -> None:
    result = stack.prometheus.query(query.concrete())
    assert _has_data(result), f"{query.where}: {query.concrete()} -> {result}"


@pytest.mark.broker
@pytest.mark.parametrize(
    ("query", "label"), variable_queries(), ids=lambda v: getattr(v, "where", str(v))
)
def test_dashboard_variable_offers_values(query: Query, label: str, stack: Stack) -> None:
    values = stack.prometheus.api(f"label/{label}/values", **{"match[]": query.concrete()})
    assert values, query.where
    if label == "provider":
        assert set(values) == {p.value for p in Provider}


def _offered(query: Query, label: str, prometheus: PrometheusServer) -> list[str]:
    values: list[str] = prometheus.api(f"label/{label}/values", **{"match[]": query.concrete()})
    return values


def _regex(value: str) -> str:
    """``value`` as Grafana puts a selected value in a PromQL regex string (escaped twice)."""
    return re.escape(value).replace("\\", "\\\\")


def _filtered() -> list[tuple[Query, str]]:
    """Each panel query with each dashboard variable it names."""
    return [(q, v) for q in panel_queries() for v in sorted(q.named())]


@pytest.mark.broker
@pytest.mark.parametrize(
    ("query", "variable"), _filtered(), ids=lambda v: getattr(v, "where", str(v))
)
def test_choosing_a_value_filters_the_panel(query: Query, variable: str, stack: Stack) -> None:
    """A variable set to a value nothing has empties the panel (nothing but an ``or vector(0)``
    fallback); set to one of the values it offers, the panel shows data for at least one."""
    board = query.where.split(": ")[0]
    [(selector, label)] = [
        (q, label) for q, label in variable_queries() if q.where == f"{board}: variable {variable}"
    ]
    nothing = stack.prometheus.query(query.concrete(**{variable: "no-such-value"}))
    assert all(float(r["value"][1]) == 0 and not r["metric"] for r in nothing), nothing
    values = _offered(selector, label, stack.prometheus)
    assert any(
        _has_data(stack.prometheus.query(query.concrete(**{variable: _regex(value)})))
        for value in values
    ), f"{query.where}: no data for any {variable} among {values}"


def _panel(board: str, title: str) -> Query:
    [query] = [q for q in panel_queries() if q.where.startswith(f"{board}: {title} (")]
    return query


@pytest.mark.broker
def test_streams_are_apart_from_the_messages_ready_by_queue(stack: Stack) -> None:
    """The stream keeps every event (millions in a week): it is not in the ready-by-queue panel,
    whose queues hold what consumers have not taken yet, but in a panel of its own."""
    ready = _panel("hub-pipeline.json", "RabbitMQ: messages ready by queue (streams apart)")
    kept = _panel("hub-pipeline.json", "RabbitMQ: messages kept by stream")
    events = len(_golden_events(stack.cases)) + len(_replies().replies)  # and the pulled ones
    _wait_for(stack.prometheus, kept.concrete(), events)
    queues = {r["metric"]["queue"] for r in stack.prometheus.query(ready.concrete())}
    assert "callback-hub.unrouted" in queues and "example.failed-deliveries" in queues
    assert not any(q.endswith(".stream") for q in queues), queues
    streams = stack.prometheus.query(kept.concrete())
    assert [(r["metric"]["vhost"], r["metric"]["queue"]) for r in streams] == [
        ("/", "callback-hub.stream")
    ]
    everything = "sum by (queue) (rabbitmq_queue_messages_ready)"
    assert "callback-hub.stream" in {
        r["metric"]["queue"] for r in stack.prometheus.query(everything)
    }


@pytest.mark.broker
def test_rabbitmq_labels_the_dashboards_use_exist(stack: Stack) -> None:
    """What the static checks take for RabbitMQ's labels is what a real node and Prometheus give."""
    for label in RABBITMQ_LABELS:
        values = stack.prometheus.api(f"label/{label}/values", **{"match[]": '{job="rabbitmq"}'})
        assert values, label
    [identity] = stack.prometheus.query("rabbitmq_identity_info")
    assert identity["metric"]["namespace"] == NAMESPACE
    assert identity["metric"]["rabbitmq_node"] == stack.node.nodename


@pytest.mark.broker
def test_failure_classes_reach_the_failures_panel(stack: Stack) -> None:
    """Golden cases hold permanent and temporary failures: the panel splits them."""
    result = stack.prometheus.query(
        'sum by (failure) (hub_events_total{kind="delivery", state=~"failed|expired"})'
    )
    assert {r["metric"].get("failure") for r in result} >= {"permanent", "temporary"}


@pytest.mark.broker
def test_alert_rules_evaluate_cleanly_on_live_data(stack: Stack) -> None:
    rules = stack.prometheus.rules()
    assert {r["name"] for r in rules} == {q.where.split(": ")[1] for q in rule_queries()}
    for rule in rules:
        assert rule["health"] == "ok", rule
    quiet = {r["name"]: r["state"] for r in rules}
    for name in (
        "HubBrokerUnreachable",
        "HubSharedIndexUnreachable",
        "HubAbsent",
        "HubProviderSilent",
        "HubCallbacksUnavailable",
    ):
        assert quiet[name] == "inactive", (name, quiet[name])


def _golden_events(cases: list[Case]) -> dict[str, dict[str, Any]]:
    return {e["id"]: e["data"] for c in cases for e in c.spec.get("events", [])}


@pytest.mark.broker
async def test_definitions_route_failed_deliveries_to_a_subscriber_that_dead_letters(
    stack: Stack,
) -> None:
    """The broker as deploy/rabbitmq/definitions.json sets it up: every event in the stream (so
    nothing unrouted), failed and expired deliveries in the example queue; what the subscriber
    rejects goes to its dead-letter queue."""
    import aio_pika

    events = _golden_events(stack.cases)
    failed = [
        d
        for d in events.values()
        if d["kind"] == "delivery" and d["state"] in {"failed", "expired"}
    ]
    expected = {
        "example.failed-deliveries": len(failed),
        "callback-hub.stream": len(events) + len(_replies().replies),  # and the pulled ones
        "callback-hub.unrouted": 0,
        "example.failed-deliveries.dead-letter": 0,
    }
    depth: dict[str, int] = {}

    async def settled() -> bool:  # quorum queues report their length every few seconds
        out = await asyncio.to_thread(
            stack.node.rabbitmqctl, "list_queues", "-q", "--no-table-headers", "name", "messages"
        )
        depth.update((name, int(n)) for name, n in (line.split() for line in out.splitlines()))
        return all(depth.get(name) == n for name, n in expected.items())

    with contextlib.suppress(TimeoutError):
        await eventually(settled, timeout=30)
    assert depth == expected
    assert len(failed) > 0

    connection = await aio_pika.connect(f"amqp://admin:admin@127.0.0.1:{stack.node.port}/")
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue("example.failed-deliveries", ensure=False)
        message = await queue.get(timeout=10)
        await message.reject(requeue=False)
        dead = await channel.get_queue("example.failed-deliveries.dead-letter", ensure=False)

        async def dead_lettered() -> bool:
            found = await dead.get(no_ack=True, fail=False)
            return found is not None and found.message_id == message.message_id

        await eventually(dead_lettered, timeout=10)
