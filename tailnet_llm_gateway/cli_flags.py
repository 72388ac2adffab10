"""The grammar of each command-line flag that is more than a string: a bad value is one line on stderr
(argparse's error), like a bad setting, and a value that reaches a rendered file has its setting's grammar."""

from __future__ import annotations

import argparse
import ipaddress
from urllib.parse import urlsplit

from .addresses import HostPort, parse_host_port, require_loopback_bind
from .settings import grammar


def upstream(text: str) -> tuple[str, HostPort]:
    name, sep, address = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not SERVICE=HOST:PORT")
    try:
        # The address reaches the rendered files like a service's `host` setting, so it has its grammar.
        target = parse_host_port(address)
        return name, HostPort(grammar.host(target.host), target.port)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def stack(text: str) -> str:
    try:
        return grammar.stack_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def listen(text: str) -> HostPort:
    # The local check mode serves plain HTTP with no SSO in front of the API key: loopback only.
    try:
        return require_loopback_bind(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds between 0 and 86400")
    return value


def metrics_url(text: str) -> str:
    """A replica's metrics URL: usage sends it the master key, so only one on this host's loopback."""
    url = urlsplit(text)
    host = url.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if url.scheme not in ("http", "https") or not loopback:
        raise argparse.ArgumentTypeError(
            f"{text!r}: usage sends the master key to it, so it must be a replica on this host's loopback "
            "(http://127.0.0.1:PORT/metrics/)"
        )
    return text


def loopback_address(text: str) -> str:
    try:
        if ipaddress.ip_address(text).is_loopback:
            return text
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{text!r} is not a loopback address")
