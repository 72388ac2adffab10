"""The edge's logs: JSON lines without headers and without query values."""

from __future__ import annotations

from .writer import Writer

# The logs keep a query's parameter names and drop every value (and any parameter without a name), so no
# key reaches them whatever the parameter is called, even in a query that does not parse. (RE2, as Caddy's
# regexp log filter runs it.)
QUERY_VALUES = "([?&])(?:([^=&]*)=[^&]*|[^&]*)"
QUERY_NAMES_ONLY = "${1}${2}"


def log_filter(w: Writer) -> None:
    w.open("format filter")
    w.line("request>headers delete")
    w.line("resp_headers delete")
    w.line(f'request>uri regexp "{QUERY_VALUES}" "{QUERY_NAMES_ONLY}"')
    w.line("wrap json")
    w.close()


def access_log(w: Writer) -> None:
    w.line("# One JSON line a request: method, path, status, duration, who (where known). No headers, so")
    w.line("# no key and no cookie, and of the query only the parameter names.")
    w.open("log")
    w.line("output stdout")
    log_filter(w)
    w.close()
