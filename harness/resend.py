"""What SDKs and browsers do when a kept-alive connection turns out to be closed before any answer: send
the request once more, on a new connection. Caddy closes its idle kept-alive connections when it loads a
new config, so a request sent in that very instant meets a closed connection (docs/operations.md)."""

from __future__ import annotations

from collections.abc import Callable

import httpx


def send_resending_once(send: Callable[[], httpx.Response]) -> tuple[httpx.Response, bool]:
    """The response, and whether the request had to be sent again."""
    try:
        return send(), False
    except httpx.RemoteProtocolError as error:
        if "without sending a response" not in str(error):
            raise
        return send(), True
