"""Usage per caller and model, read from LiteLLM's Prometheus metrics (`python -m tailnet_llm_gateway usage`).

Each replica counts in its own memory since it started, so every replica's /metrics is read and summed.
Over a period, the counters are read twice and the difference is shown. The caller is the name LiteLLM was
given by the gateway's custom auth: a client's name, `tailnet:<login>`, or `host:admin` for the master key.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

# Counter families (as the parser names them, without `_total`) -> the column they feed.
COLUMNS = {
    "litellm_proxy_total_requests_metric": "requests",
    "litellm_input_tokens_metric": "input_tokens",
    "litellm_output_tokens_metric": "output_tokens",
    "litellm_proxy_failed_requests_metric": "errors",
}
# A failed request refused by a limit (LiteLLM's limiter answers 429).
LIMIT_STATUS = "429"


@dataclass
class Usage:
    caller: str
    model: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    errors: int = 0
    limited: int = 0


Key = tuple[str, str]
_COUNTED = ("requests", "input_tokens", "output_tokens", "errors", "limited")


def parse_metrics(text: str) -> dict[Key, Usage]:
    """One replica's /metrics text -> usage per (caller, model)."""
    usage: dict[Key, Usage] = {}
    for family in text_string_to_metric_families(text):
        column = COLUMNS.get(family.name)
        if column is None:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue  # the `_created` timestamps
            caller, model = sample.labels.get("user", "None"), sample.labels.get("requested_model", "None")
            row = usage.setdefault((caller, model), Usage(caller, model))
            setattr(row, column, getattr(row, column) + int(sample.value))
            if column == "errors" and sample.labels.get("exception_status") == LIMIT_STATUS:
                row.limited += int(sample.value)
    return usage


def combine(parts: Iterable[dict[Key, Usage]], sign: int = 1) -> dict[Key, Usage]:
    """The sum of several replicas' usage (sign -1: subtract, for a difference)."""
    total: dict[Key, Usage] = {}
    for part in parts:
        for key, row in part.items():
            into = total.setdefault(key, Usage(*key))
            for name in _COUNTED:
                setattr(into, name, getattr(into, name) + sign * getattr(row, name))
    return total


def difference(after: dict[Key, Usage], before: dict[Key, Usage]) -> dict[Key, Usage]:
    changed = combine([after, combine([before], sign=-1)])
    return {key: row for key, row in changed.items() if any(getattr(row, name) for name in _COUNTED)}


def read_usage(urls: Sequence[str], key: str, timeout_s: float = 10.0) -> dict[Key, Usage]:
    """Every replica's counters, summed. A replica that does not answer is an error, not a zero."""
    parts = []
    with httpx.Client(timeout=timeout_s, headers={"Authorization": f"Bearer {key}"}) as client:
        for url in urls:
            try:
                response = client.get(url)
            except httpx.HTTPError as error:
                raise UsageError(f"{url}: {error}") from None
            if response.status_code != 200:
                raise UsageError(f"{url} answered {response.status_code} (is the key the master key?)")
            parts.append(parse_metrics(response.text))
    return combine(parts)


def usage_over(urls: Sequence[str], key: str, period_s: float | None) -> dict[Key, Usage]:
    """Usage since each replica started, or over the next `period_s` seconds."""
    if period_s is None:
        return read_usage(urls, key)
    before = read_usage(urls, key)
    time.sleep(period_s)
    return difference(read_usage(urls, key), before)


class UsageError(RuntimeError):
    """The metrics could not be read."""


def printable(label: str) -> str:
    """A label as text a terminal shows and never obeys: control characters (escape sequences) written as
    Python escapes; the JSON output escapes them by itself."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in label)


def render_usage(usage: dict[Key, Usage], output: str, period: str) -> str:
    rows = [usage[key] for key in sorted(usage)]
    if output == "json":
        return json.dumps({"period": period, "usage": [asdict(row) for row in rows]}, indent=2) + "\n"
    header = ("caller", "model", "requests", "input tokens", "output tokens", "errors", "limited")
    named = ((printable(r.caller), printable(r.model), *(str(getattr(r, name)) for name in _COUNTED)) for r in rows)
    table = [header, *named]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = [f"usage {period}"]
    for line in table:
        cells = [
            cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"
