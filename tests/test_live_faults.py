"""A stream that a fault cuts ends with an error the client sees, never like a finished answer: the real
Caddy, the real LiteLLM and the real openai SDK on loopback, with a backend or LiteLLM itself killed while
a stream is under way (as llama.cpp does, the fake backend streams with chunked encoding)."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from components.settings import Settings
from components.topology import GATEWAY_ENV, build_topology
from tests.conftest import ROOT, stack_values
from tests.processes import Process, free_port, render, start_caddy, start_fake_backend, start_litellm

WORDS = 40
WORD_PAUSE_MS = 200


@dataclass
class FaultEdge:
    base_url: str
    key: str
    ports: dict[str, int]
    work: Path
    backend: Process
    litellm: Process


def _start(work: Path, ports: dict[str, int], edge_port: int, key: str) -> tuple[Process, Process, Process]:
    out = render("dev", work / "rendered", ROOT, ports, edge_port)
    gateway = build_topology(Settings.from_mapping(stack_values("dev"))).gateway
    backend = start_fake_backend(ports["llamacpp"], "llamacpp", work, WORD_PAUSE_MS)
    litellm = start_litellm(
        out / "litellm.yaml",
        ports["model-gateway"],
        work,
        key,
        GATEWAY_ENV,
        gateway.workers,
        gateway.server,
        group=True,
    )
    caddy = start_caddy(out / "Caddyfile", edge_port, work, key)
    return backend, litellm, caddy


@pytest.fixture
def fault_edge(tmp_path):
    """A stack of its own: the test kills part of it."""
    key = "sk-" + secrets.token_urlsafe(24)
    names = ("llamacpp", "llamacpp-embed", "oauth2-proxy", "dashboard", "open-webui", "model-gateway")
    ports = {name: free_port() for name in names}
    ports["llamacpp-embed"] = ports["llamacpp"]
    edge_port = free_port()
    backend, litellm, caddy = _start(tmp_path, ports, edge_port, key)
    try:
        yield FaultEdge(f"http://127.0.0.1:{edge_port}/llm/v1", key, ports, tmp_path, backend, litellm)
    finally:
        for process in (caddy, litellm, backend):
            process.stop()


def _stream_while(fault_edge: FaultEdge, fault, after_words: int = 3) -> tuple[list[str], BaseException | None]:
    """Read a long stream with the openai SDK; `fault()` runs once `after_words` words arrived."""
    client = openai.OpenAI(base_url=fault_edge.base_url, api_key=fault_edge.key, max_retries=0, timeout=60)
    words: list[str] = []
    caught: BaseException | None = None
    fired = threading.Event()
    try:
        stream = client.chat.completions.create(
            model="local-chat", messages=[{"role": "user", "content": f"stream {WORDS} words"}], stream=True
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                words.append(chunk.choices[0].delta.content)
            if len(words) == after_words and not fired.is_set():
                fired.set()
                threading.Thread(target=fault, daemon=True).start()
    except (openai.APIError, httpx.HTTPError) as error:  # what a client sees when its stream breaks
        caught = error
    return words, caught


def test_a_backend_dying_mid_stream_is_an_error_to_the_openai_sdk(fault_edge):
    started = time.monotonic()
    words, caught = _stream_while(fault_edge, fault_edge.backend.kill)
    assert len(words) < WORDS, "the stream went on although its backend was killed: the test did not cut it"
    assert caught is not None, f"the SDK got {len(words)} of {WORDS} words and a clean end: a cut answer looks whole"
    assert time.monotonic() - started < 30, "the client waited long for a backend that was gone"


def test_litellm_dying_mid_stream_is_an_error_to_the_openai_sdk(fault_edge):
    words, caught = _stream_while(fault_edge, fault_edge.litellm.kill_group)
    assert len(words) < WORDS, "the stream went on although LiteLLM was killed: the test did not cut it"
    assert caught is not None, f"the SDK got {len(words)} of {WORDS} words and a clean end: a cut answer looks whole"
