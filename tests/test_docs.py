"""What the README and docs/ say against what the code does, for facts that drifted before:
``hub urls``' output, the sample event, the metrics' labels, dead-letter queues, where the
quarantine is listed. A doc that says otherwise fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry

from core.models import Provider
from hub.server import Guard, Limits
from hub.subscribe import DELIVERY_LIMIT, dead_letter_name
from sinks.metrics import Metrics
from sinks.tallies import TallyCounter, TallyHistogram
from tests.support import clean_env, run_hub

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
MONITORING = (ROOT / "docs" / "monitoring.md").read_text()
SUBSCRIBE = (ROOT / "docs" / "subscribe.md").read_text()


def blocks(text: str, language: str = "") -> list[str]:
    """The fenced code blocks of a Markdown text opened with ```LANGUAGE, each whole."""
    found, current, opened = [], [], None
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            if opened is None:
                opened, current = line[3:].strip(), []
            else:
                if opened == language:
                    found.append("".join(current))
                opened = None
        elif opened is not None:
            current.append(line)
    return found


def test_the_readme_shows_hub_urls_output_as_printed(tmp_path) -> None:
    env = clean_env(tmp_path)
    env.update({f"HUB_SECRET_{p.value.upper()}": "<secret>" for p in Provider})
    proc = run_hub("urls", "--base", "https://hooks.example.com", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout in blocks(README)


def test_the_readme_sample_event_is_the_golden_one() -> None:
    golden = orjson.loads(
        (ROOT / "parsers/samples/isendpro/seed-delivery-report.json").read_bytes()
    )
    [sample] = [json.loads(b) for b in blocks(README, "json") if '"specversion"' in b]
    assert sample == golden["events"][0]


def test_every_metric_label_is_in_the_readme_table() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    Guard(Limits(), 1, registry)  # the server's own: connections
    rows = re.findall(r"^\| (`hub_[^|]*) \| ([^\n]*) \|$", README, flags=re.M)
    # a metric's label names, known before any sample (prometheus_client keeps them there)
    metrics = {id(c): c for c in registry._names_to_collectors.values()}.values()
    assert metrics
    for metric in metrics:
        if isinstance(metric, TallyCounter | TallyHistogram):  # ours say it in the open
            metric_name, labelnames = metric.name, metric.labelnames
        else:
            metric_name, labelnames = metric._name, metric._labelnames  # type: ignore[attr-defined]
        # a counter's family drops its _total, an info its _info
        name = re.compile(rf"`{metric_name}(_total|_info)?`")
        found = [names + " " + labels for names, labels in rows if name.search(names)]
        assert len(found) == 1, f"{metric}: {len(found)} rows of the README's metrics table"
        for label in labelnames:
            assert f"`{label}`" in found[0], (metric, label)
    assert "not export" not in MONITORING


def test_dead_letter_queues_are_named_as_the_code_names_them() -> None:
    assert dead_letter_name("NAME") == "NAME.dead"
    for doc in (README, SUBSCRIBE):
        assert f"more than {DELIVERY_LIMIT} times" in doc
        assert "`NAME.dead`" in doc
    definitions = json.loads((ROOT / "deploy/rabbitmq/definitions.json").read_text())
    [example] = [q for q in definitions["queues"] if q["name"] == "example.failed-deliveries"]
    limit = example["arguments"]["x-delivery-limit"]
    dead = example["arguments"]["x-dead-letter-exchange"]
    assert f"fails to handle {limit} times" in MONITORING and f"`{dead}`" in MONITORING
    assert f"after {DELIVERY_LIMIT} deliveries" in MONITORING


def test_the_quarantine_is_listed_by_hub_quarantine_list() -> None:
    texts = [README, MONITORING, SUBSCRIBE]
    texts += [p.read_text() for p in (ROOT / "dashboards").rglob("*") if p.is_file()]
    for text in texts:
        assert "quarantine (hub journal stats)" not in text
