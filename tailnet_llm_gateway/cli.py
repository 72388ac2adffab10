"""Command line: `python -m tailnet_llm_gateway render|diagram|doctor|client-config|usage|smoke ...`.

Bad settings or flags exit with status 2 and one line on stderr naming the setting; no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from policy.gateway_contract import MASTER_KEY_ENV

from . import cli_flags as flags
from .client_config import FORMATS, client_access, read_outputs, render_client_config
from .errors import SettingsError
from .local_mode import LocalMode
from .plan import Plan, build_plan
from .render.diagram import render_diagram
from .settings import Settings
from .smoke import run_checks
from .tailnet.check import Outcome
from .tailnet.policy import PolicyTestFailure
from .usage import UsageError, render_usage, usage_over

PROJECT_DIR = Path(__file__).resolve().parent.parent


def stack_file(stack: str, project_dir: Path = PROJECT_DIR) -> Path:
    return project_dir / f"Pulumi.{stack}.yaml"


def load_plan(
    stack: str,
    project_dir: Path = PROJECT_DIR,
    local: LocalMode | None = None,
) -> Plan:
    """The plan for `Pulumi.<stack>.yaml`, as `pulumi up` would build it (no Pulumi CLI needed)."""
    settings = Settings.from_stack_file(stack_file(stack, project_dir))
    return build_plan(settings, stack, project_dir, local)


class _OneLineParser(argparse.ArgumentParser):
    """Bad flags, like bad settings, get one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message}\n")


def _reads_a_stack(command: argparse.ArgumentParser) -> None:
    """A command that reads Pulumi.<stack>.yaml (from the project, or a test's directory)."""
    command.add_argument("--stack", required=True, type=flags.stack, help="stack name: reads Pulumi.NAME.yaml")
    command.add_argument("--project-dir", type=Path, default=PROJECT_DIR, help=argparse.SUPPRESS)


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="python -m tailnet_llm_gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)

    render = commands.add_parser("render", help="write the Caddyfile, LiteLLM config and tailnet policy")
    _reads_a_stack(render)
    render.add_argument("--out", required=True, type=Path, help="directory to write the files into")
    render.add_argument(
        "--upstream",
        action="append",
        default=[],
        type=flags.upstream,
        metavar="SERVICE=HOST:PORT",
        help="point a service at another address everywhere it is used (repeatable)",
    )
    render.add_argument(
        "--listen",
        type=flags.listen,
        metavar="HOST:PORT",
        help="serve plain HTTP on this address instead of the tailnet name",
    )
    render.add_argument(
        "--node-address",
        type=flags.loopback_address,
        metavar="ADDRESS",
        help="tailnet-node stacks: trust Tailscale's identity headers from this loopback address, as from the node",
    )
    render.add_argument(
        "--keys-dir",
        metavar="DIR",
        help="with --listen: where the edge reads its keys (one file each; default: OUT/keys)",
    )
    render.add_argument(
        "--metrics-listen",
        type=flags.listen,
        metavar="HOST:PORT",
        help="serve the edge's Prometheus metrics on this loopback address (default: its container network)",
    )
    render.add_argument(
        "--forward-listen",
        type=flags.listen,
        metavar="HOST:PORT",
        help="with services on other machines: the edge's first forwarder to them on this loopback address "
        "(the next ones on the next ports)",
    )
    render.add_argument(
        "--egress-proxy",
        type=flags.listen,
        metavar="HOST:PORT",
        help="tailnet-node stacks: the node's SOCKS5 proxy is at this loopback address",
    )

    diagram = commands.add_parser("diagram", help="draw the stack as a Mermaid diagram (Markdown)")
    _reads_a_stack(diagram)
    diagram.add_argument("--out", type=Path, metavar="FILE", help="write it to FILE instead of printing it")

    doctor = commands.add_parser("doctor", help="check this host has what `pulumi up` will need for the stack")
    _reads_a_stack(doctor)

    config = commands.add_parser("client-config", help="print what one client needs, from the stack's outputs")
    config.add_argument("client", help="the client's name (on a stack without clients: master)")
    config.add_argument("--format", choices=FORMATS, default="json", help="json, env, continue or aider")
    config.add_argument(
        "--out",
        metavar="FILE",
        type=Path,
        help="write it to FILE, readable by you alone (0600), instead of printing it: it holds the key",
    )
    config.add_argument(
        "--outputs",
        metavar="FILE",
        help="`pulumi stack output --json --show-secrets` saved to FILE (- for stdin); default: run it",
    )

    usage = commands.add_parser("usage", help="requests, tokens and errors per client and model, from the metrics")
    usage.add_argument(
        "--stack", type=flags.stack, help="stack name: read every LiteLLM replica's metrics on this host"
    )
    usage.add_argument(
        "--url",
        action="append",
        default=[],
        metavar="URL",
        type=flags.metrics_url,
        help="a replica's metrics URL on this host instead (repeatable), e.g. http://127.0.0.1:11435/metrics/",
    )
    usage.add_argument(
        "--period",
        type=flags.seconds,
        metavar="SECONDS",
        help="count over the next SECONDS instead of since each replica started",
    )
    usage.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")
    usage.add_argument("--project-dir", type=Path, default=PROJECT_DIR, help=argparse.SUPPRESS)

    smoke = commands.add_parser("smoke", help="check a deployed gateway from the client side")
    smoke.add_argument("--base-url", required=True, help="the API base URL, e.g. https://HOST/llm/v1")
    smoke.add_argument(
        "--key",
        default=os.environ.get(MASTER_KEY_ENV) or os.environ.get("OPENAI_API_KEY"),
        help=f"the key: the master key or a client's (default: ${MASTER_KEY_ENV}, else $OPENAI_API_KEY, "
        "which keeps it off the command line)",
    )
    smoke.add_argument("--model", help="also ask this model for a short completion")
    smoke.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    return parser


def _write(out: Path, files: dict[str, str]) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (out / name).write_text(content, encoding="utf-8")
    except OSError as error:
        raise SettingsError(f"--out {out}", f"cannot write there ({error.strerror})") from None


def _render(args: argparse.Namespace) -> int:
    try:
        local = LocalMode(
            dict(args.upstream),
            args.listen,
            args.node_address,
            args.keys_dir,
            args.metrics_listen,
            args.forward_listen,
            args.egress_proxy,
        ).keys_default(args.out / "keys")
        plan = load_plan(args.stack, args.project_dir, local)
    except PolicyTestFailure as failure:
        # Only the policy, so the failing test can be read in the file it names; nothing deployable.
        _write(args.out, {"tailnet-policy.hujson": failure.policy})
        raise
    files = plan.files_by_name()
    _write(args.out, files)
    print(f"wrote {', '.join(sorted(files))} to {args.out}")
    for assertion in plan.policy_assertions:
        if assertion.outcome is Outcome.NOT_EVALUATED:
            print(f"note: {assertion.line()}", file=sys.stderr)
    return 0


def _diagram(args: argparse.Namespace) -> int:
    text = render_diagram(load_plan(args.stack, args.project_dir).topology, args.stack)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import FAIL, preflight  # the Docker SDK, only for this command

    findings = preflight(load_plan(args.stack, args.project_dir), stack_file(args.stack, args.project_dir))
    print(f"ok   settings: Pulumi.{args.stack}.yaml is valid, and the tailnet policy's tests pass")
    for finding in findings:
        print(finding.line())
    failed = [f.what for f in findings if f.status == FAIL]
    if failed:
        print(f"pulumi up would fail: {', '.join(failed)}")
        return 1
    print("pulumi up has what it needs on this host")
    return 0


def _smoke(args: argparse.Namespace) -> int:
    if not args.key:
        print(f"error: smoke needs the key: --key, ${MASTER_KEY_ENV} or $OPENAI_API_KEY", file=sys.stderr)
        return 2
    failed = 0
    for check in run_checks(args.base_url, args.key, args.model, args.timeout):
        print(check.line(), flush=True)
        failed += not check.ok
    return 1 if failed else 0


def _usage(args: argparse.Namespace) -> int:
    key = os.environ.get(MASTER_KEY_ENV)
    if not key:
        print(f"error: usage reads the metrics with the master key: set ${MASTER_KEY_ENV}", file=sys.stderr)
        return 2
    if bool(args.url) == (args.stack is not None):
        print("error: usage needs --stack (this host's replicas) or --url, not both", file=sys.stderr)
        return 2
    urls = args.url or list(load_plan(args.stack, args.project_dir).topology.gateway.metrics_urls)
    try:
        usage = usage_over(urls, key, args.period)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    period = f"over {args.period:g} s" if args.period else "since each replica started"
    sys.stdout.write(render_usage(usage, args.format, period))
    return 0


def _client_config(args: argparse.Namespace) -> int:
    access = client_access(read_outputs(args.outputs), args.client)
    text = render_client_config(access, args.format)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    # Created 0600, and made 0600 if it was there already: the file holds the client's key.
    descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(text)
    print(f"wrote {args.out} (0600)", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "render":
            return _render(args)
        if args.command == "diagram":
            return _diagram(args)
        if args.command == "doctor":
            return _doctor(args)
        if args.command == "client-config":
            return _client_config(args)
        if args.command == "usage":
            return _usage(args)
        return _smoke(args)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {error.filename or 'the system'}: {error.strerror or error}", file=sys.stderr)
        return 2
