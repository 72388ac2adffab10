"""Stand-ins for the services around the gateway, for the live edge tests (loopback only).

- `OpenAIBackend`: what llama.cpp serves: models, chat (plain and streamed), text completions,
  embeddings; no `/v1/responses`. A chat whose last message is "usage P C" reports P prompt and C
  completion tokens. A test can make it fail the next calls (`POST /_fake/fail-next`) and
  read the paths it served (`GET /_fake/requests`), in process or in its own process (`python -m
  harness.fakes`).
- `FakeSso`: oauth2-proxy's `/oauth2/auth` (202 with X-Auth-Request-* for a valid session cookie,
  401 otherwise) and a `/oauth2/start` page.
- `Mcp`: an MCP server's event stream (`/sse`), events written with a pause between them.
- `HeaderEcho`: a protected upstream that answers with the path and headers it received, and keeps them
  with the body (`requests` of its server) so a test can tell whether anything reached it.
"""

from .backend import STREAM_PAUSE_S, STREAM_WORDS, OpenAIBackendHandler
from .server import FakeServer
from .services import (
    SESSION_COOKIE,
    SSE_PAUSE_S,
    SSO_EMAIL,
    SSO_USER,
    VALID_SESSION,
    FakeSsoHandler,
    HeaderEchoHandler,
    McpHandler,
    RecordingEchoHandler,
)

__all__ = [
    "SESSION_COOKIE",
    "SSE_PAUSE_S",
    "SSO_EMAIL",
    "SSO_USER",
    "STREAM_PAUSE_S",
    "STREAM_WORDS",
    "VALID_SESSION",
    "FakeServer",
    "FakeSsoHandler",
    "HeaderEchoHandler",
    "McpHandler",
    "OpenAIBackendHandler",
    "RecordingEchoHandler",
]
