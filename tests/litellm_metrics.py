"""Reading LiteLLM's Prometheus text in the live tests: a counter's total over matching labels, the series."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def counter_sum(text: str, family: str, **labels: str) -> float:
    """The sum of a counter family's `_total` samples whose labels hold the given values."""
    return sum(
        sample.value
        for metric in text_string_to_metric_families(text)
        if metric.name == family
        for sample in metric.samples
        if sample.name == f"{family}_total" and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def series(text: str) -> set[str]:
    """Every series (name and labels) the text has a sample of."""
    return {line.split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
