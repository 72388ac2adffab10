"""A stream that a fault cuts ends with an error the client sees, never like a finished answer: the real
Caddy, the real LiteLLM and the real openai SDK on loopback, with a backend or LiteLLM itself killed while
a stream is under way (as llama.cpp does, the fake backend streams with chunked encoding)."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import httpx
import openai
import pytest

from harness.loopback import LoopbackStack
from harness.ports import free_port
from harness.processes import THIS_BUILD, Process, start_fake_backend
from harness.processes import render as render_cli
from harness.stacks import ROOT
from tailnet_llm_gateway.gateway_process import gateway_process

WORDS = 40
WORD_PAUSE_MS = 200


@dataclass
class FaultEdge:
    base_url: str
    key: str
    backend: Process
    litellm: Process


@pytest.fixture
def fault_edge(tmp_path):
    """A stack of its own: the test kills part of it."""
    stack = LoopbackStack("dev", tmp_path)
    stack.ports["llamacpp-embed"] = stack.ports["llamacpp"]
    backend = start_fake_backend(stack.ports["llamacpp"], "llamacpp", stack.logs, WORD_PAUSE_MS)
    try:
        base_url = stack.start()
        yield FaultEdge(f"{base_url}/llm/v1", stack.master_key, backend, stack.litellm)
    finally:
        stack.stop()
        backend.stop()


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


# ---- stopping a replica ----------------------------------------------------------------------------------


def test_a_replica_that_has_served_finishes_its_stream_when_told_to_stop(fault_edge):
    """SIGTERM (a `pulumi up` replacing the replica) reaches the server through the launcher: it drains."""
    words, caught = _stream_while(fault_edge, fault_edge.litellm.popen.terminate)
    assert caught is None and len(words) == WORDS, f"a stop cut a stream it should have finished: {len(words)} words"
    fault_edge.litellm.popen.wait(timeout=30)


def test_a_replica_told_to_stop_while_it_starts_stops_at_once(tmp_path):
    """A replica still loading LiteLLM has nothing to drain: it must not hold a stop for the drain bound (Granian
    alone would serve on and ignore it). Measured from the signal to the launcher's exit, with no process left."""
    out = tmp_path / "rendered"
    port = free_port()
    result = render_cli("dev", out, ROOT, {}, free_port())
    process = gateway_process("granian", 1, str(result / "litellm.yaml"), "127.0.0.1", port)
    replica = Process(
        "starting-replica",
        process.local_argv(THIS_BUILD.python, THIS_BUILD.litellm),
        tmp_path,
        env=process.local_environment("sk-test-master-0123456789", "sk-test-edge-0123456789"),
        group=True,
    )
    try:
        time.sleep(2)  # the server listens; its worker is still importing LiteLLM
        assert replica.popen.poll() is None, f"the replica did not start:\n{replica.log_tail()}"
        started = time.monotonic()
        replica.popen.terminate()
        replica.popen.wait(timeout=60)
        stopped_in = time.monotonic() - started
        left = [pid for pid in os.listdir("/proc") if pid.isdigit() and _holds_port(pid, port)]
    finally:
        replica.stop()
    assert stopped_in < 5, f"a replica told to stop while starting took {stopped_in:.1f} s (the drain bound is 300 s)"
    assert not left, f"processes of the stopped replica are still running: {left}"


def _holds_port(pid: str, port: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return f"--port\0{port}\0".encode() in cmdline.read()
    except OSError:
        return False
