"""Starts LiteLLM's server for tailnet-llm-gateway, and stops it at once if told to before it has served
(copied next to the LiteLLM config; do not edit).

Usage: python3 gateway_start.py PORT COMMAND... (COMMAND is `python3 -m granian ...` or `litellm ...`).

A replica told to stop (SIGTERM or SIGINT) while it is still starting has no request to finish; Granian
would hold the signal until its worker had loaded LiteLLM and then serve on, so a stop waited for the whole
drain bound. Until LiteLLM answers its liveliness check on PORT, a stop ends the server and its workers at
once; from then on the signal goes to the server, which finishes its requests and streams first.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import threading
import time


def _answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/health/liveliness")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def _tree(pid: int) -> list[int]:
    """`pid` and every process below it, from /proc (the server and its workers share this process group,
    so whoever stops the group stops them all)."""
    parents: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(parent, []).append(int(entry))
    tree, queue = [], [pid]
    while queue:
        current = queue.pop()
        tree.append(current)
        queue += parents.get(current, [])
    return tree


def main(argv: list[str]) -> int:
    port, command = int(argv[0]), argv[1:]
    if command[0] == "python3":
        command = [sys.executable, *command[1:]]  # the interpreter running this file: LiteLLM's
    server = subprocess.Popen(command)
    served = threading.Event()

    def watch() -> None:
        while server.poll() is None and not served.is_set():
            if _answers(port):
                served.set()
            else:
                time.sleep(0.5)

    def stop(signum: int, _frame: object) -> None:
        if served.is_set():
            server.send_signal(signum)
        else:
            for pid in _tree(server.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=watch, daemon=True).start()
    code = server.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
