"""``sinks.tallies``: the callbacks' counters and histograms give Prometheus exactly the series
prometheus_client's own would, for the same observations."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics

from sinks.tallies import TallyCounter, TallyHistogram

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
LABELS = ("provider", "endpoint")


def exposed(registry: CollectorRegistry) -> list[str]:
    """Both exposition formats, the ``_created`` times (each metric's own clock) left out."""
    lines = []
    for generate in (generate_latest, openmetrics):
        for line in generate(registry).decode().splitlines():
            lines.append(re.sub(r"(_created\{.*\}) \S+$", r"\1 T", line))
    return lines


values = st.one_of(
    st.sampled_from(BUCKETS),  # on a bound: that bucket (le)
    st.floats(min_value=0, max_value=10, allow_nan=False),
)


@given(
    st.lists(
        st.tuples(st.sampled_from(["dmc", "ecall"]), st.sampled_from(["cra", "a b"]), values),
        max_size=30,
    )
)
def test_the_same_series_as_prometheus_client(observations: list[tuple[str, str, float]]) -> None:
    mine, theirs = CollectorRegistry(), CollectorRegistry()
    counter = TallyCounter("hub_x", "Some count.", LABELS, mine)
    counter_ref = Counter("hub_x", "Some count.", LABELS, registry=theirs)
    histogram = TallyHistogram("hub_x_seconds", "Some time.", LABELS, mine, BUCKETS)
    histogram_ref = Histogram(
        "hub_x_seconds", "Some time.", LABELS, registry=theirs, buckets=BUCKETS
    )
    counter.labels("dmc", "cra")  # a child made before any observation shows at zero
    counter_ref.labels("dmc", "cra")
    for provider, endpoint, value in observations:
        counter.labels(provider, endpoint).inc()
        counter_ref.labels(provider, endpoint).inc(2.5)
        counter.labels(provider, endpoint).inc(1.5)
        histogram.labels(provider, endpoint).observe(value)
        histogram_ref.labels(provider, endpoint).observe(value)
    assert exposed(mine) == exposed(theirs)


def test_a_sample_value_reads_back_from_the_registry() -> None:
    registry = CollectorRegistry()
    histogram = TallyHistogram("hub_y_seconds", "Some time.", ("route",), registry, BUCKETS)
    for value in (0.0001, 0.001, 0.002, 9.0):
        histogram.labels("/a").observe(value)
    value = registry.get_sample_value
    assert value("hub_y_seconds_bucket", {"route": "/a", "le": "0.001"}) == 2
    assert value("hub_y_seconds_bucket", {"route": "/a", "le": "5.0"}) == 3
    assert value("hub_y_seconds_bucket", {"route": "/a", "le": "+Inf"}) == 4
    assert value("hub_y_seconds_count", {"route": "/a"}) == 4
    assert value("hub_y_seconds_sum", {"route": "/a"}) == pytest.approx(9.0031)


def test_label_values_must_match_the_names() -> None:
    counter = TallyCounter("hub_z", "Some count.", LABELS, CollectorRegistry())
    with pytest.raises(ValueError, match="2 label values"):
        counter.labels("dmc")


def test_a_name_taken_in_the_registry_is_refused() -> None:
    registry = CollectorRegistry()
    Counter("hub_w", "Taken.", registry=registry)
    with pytest.raises(ValueError, match="Duplicated"):
        TallyCounter("hub_w", "Again.", (), registry)
