"""The soak's traffic: steady clients sending short completions (each keeping its connection, and one
opening a new one for every request), long streams, and what happened to them while one operation ran."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from harness.engine import DEV_HOST
from harness.resend import send_resending_once

# One word a second: a stream of STREAM_WORDS lasts that many seconds.
STREAM_WORDS = 30
WORD_PAUSE_MS = 1000
CLIENTS = 8
THINK_S = 0.25


@dataclass
class Window:
    """What happened while one operation ran."""

    operation: str
    # The steady clients, each keeping its connection as SDKs and browsers do.
    requests: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    # Requests sent again, once, because the server closed the kept-alive connection before answering
    # anything, as SDKs, browsers and Go's client do; failed only if that failed too.
    retried: int = 0
    # One more client that opens a new connection for every request.
    fresh_requests: int = 0
    fresh_failed: int = 0
    streams: int = 0
    # Streams that did not finish: seen by the client as an error, or (the bad case) ending as if complete.
    cut_with_error: int = 0
    cut_cleanly: int = 0
    worst_latency_s: float = 0.0
    operation_s: float = 0.0
    # For a dockerd restart: seconds from the restart until the API answered again.
    api_back_s: float | None = None

    @property
    def cut(self) -> int:
        return self.cut_with_error + self.cut_cleanly

    def row(self) -> str:
        back = f", API back after {self.api_back_s:.1f} s" if self.api_back_s is not None else ""
        return (
            f"{self.operation:<33} {self.failed:>3}/{self.requests:<5} failed ({self.retried} retried) "
            f"(new connections {self.fresh_failed}/{self.fresh_requests})  {self.cut}/{self.streams} cut "
            f"({self.cut_cleanly} cleanly)  worst {self.worst_latency_s:5.2f} s  took {self.operation_s:5.1f} s{back}"
        )


class Clients:
    """Steady clients and long streams to the API at `url` (for the name `server_name`), as an API client sends
    them; through a SOCKS5 `proxy` (a tailnet device's) when given."""

    def __init__(self, url: str, ca_file: str, key: str, server_name: str = DEV_HOST, proxy: str | None = None) -> None:
        self.url, self.server_name, self.proxy = url, server_name, proxy
        self.verify = ssl.create_default_context(cafile=ca_file)
        self.headers = {"Host": server_name, "Authorization": f"Bearer {key}"}
        # start, end, failure (None: ok), whether it was sent again on a new connection
        self.records: list[tuple[float, float, str | None, bool]] = []
        self.fresh_records: list[tuple[float, float, str | None, bool]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _client(self) -> httpx.Client:
        return httpx.Client(verify=self.verify, timeout=120, headers=self.headers, proxy=self.proxy)

    def _post(self, client: httpx.Client, body: dict) -> httpx.Response:
        return client.post(f"{self.url}/chat/completions", json=body, extensions={"sni_hostname": self.server_name})

    def _one(self, client: httpx.Client, records: list, retry: bool) -> None:
        body = {"model": "local-chat", "messages": [{"role": "user", "content": "ping"}]}
        started, retried = time.monotonic(), False
        try:
            if retry:
                response, retried = send_resending_once(lambda: self._post(client, body))
            else:
                response = self._post(client, body)
            failure = None if response.status_code == 200 else f"{response.status_code} {response.text[:120]}"
        except httpx.HTTPError as error:
            failure = f"{type(error).__name__}: {error}"
        records.append((started, time.monotonic(), failure, retried))
        time.sleep(THINK_S)

    def _steady(self) -> None:
        with self._client() as client:
            while not self._stop.is_set():
                self._one(client, self.records, retry=True)

    def _fresh(self) -> None:
        while not self._stop.is_set():
            with self._client() as client:
                self._one(client, self.fresh_records, retry=False)

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._steady, daemon=True) for _ in range(CLIENTS)]
        self._threads.append(threading.Thread(target=self._fresh, daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=150)

    def stream(self, results: list[str]) -> threading.Thread:
        """A long stream in a thread; appends "complete", "error: ..." or "clean-but-short: ..." to results."""

        def run() -> None:
            body = {
                "model": "local-chat",
                "messages": [{"role": "user", "content": f"stream {STREAM_WORDS} words"}],
                "stream": True,
            }
            words, finished = 0, False
            try:
                with self._client() as client:
                    request = client.build_request(
                        "POST", f"{self.url}/chat/completions", json=body, extensions={"sni_hostname": self.server_name}
                    )
                    response = client.send(request, stream=True)
                    try:
                        if response.status_code != 200:
                            results.append(f"error: {response.status_code}")
                            return
                        for line in response.iter_lines():
                            if not line.startswith("data: "):
                                continue
                            if line == "data: [DONE]":
                                finished = True
                                continue
                            chunk = json.loads(line[6:])
                            if "error" in chunk:
                                results.append(f"error: {chunk['error']}")
                                return
                            words += bool(chunk["choices"] and chunk["choices"][0]["delta"].get("content"))
                    finally:
                        response.close()
            except (httpx.HTTPError, ValueError) as error:
                results.append(f"error: {type(error).__name__}: {error}")
                return
            complete = finished and words == STREAM_WORDS
            results.append("complete" if complete else f"clean-but-short: {words} words, [DONE] {finished}")

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread


def window(clients: Clients, name: str, operation: Callable[[], float | None], streams: int = 2) -> Window:
    """Run one operation with `streams` long streams in flight and the steady `clients` going."""
    results: list[str] = []
    started = time.monotonic()
    threads = [clients.stream(results) for _ in range(streams)]
    time.sleep(2)  # the streams are under way before the operation starts
    began = time.monotonic()
    api_back = operation()
    took = time.monotonic() - began
    for thread in threads:
        thread.join(timeout=STREAM_WORDS * 3 + 60)
    ended = time.monotonic()
    seen = [r for r in clients.records if started <= r[0] < ended]
    failures = [r[2] for r in seen if r[2] is not None]
    fresh = [r for r in clients.fresh_records if started <= r[0] < ended]
    return Window(
        operation=name,
        requests=len(seen),
        failed=len(failures),
        failures=failures[:5],
        retried=sum(r[3] for r in seen),
        fresh_requests=len(fresh),
        fresh_failed=sum(r[2] is not None for r in fresh),
        streams=streams,
        cut_with_error=sum(r.startswith("error") for r in results) + (streams - len(results)),
        cut_cleanly=sum(r.startswith("clean-but-short") for r in results),
        worst_latency_s=max((r[1] - r[0] for r in seen), default=0.0),
        operation_s=took,
        api_back_s=api_back,
    )


def table(windows: list[Window], title: str) -> str:
    return "\n".join([title, *(w.row() for w in windows)])
