"""The test tailnet's programs, built with Go from pinned sources and cached between runs.

- `tailscaled`, `tailscale` and `containerboot`: `go install tailscale.com/cmd/...@v<TAILSCALE_VERSION>`,
  the release the node image pins, with the build tags its image is built with (ts_kube,
  ts_package_container). `go install pkg@version` builds with that module's own go.mod, so the
  dependencies are the release's.
- `testnet-control` and `testnet-grants`: this repository's Go module `testnet/` (a control server, and
  headscale's policy engine answering what a policy grants).

The binaries go to a directory named after everything that goes into them (the version, the Go
toolchain, the module's files), under ~/.cache; a second run finds them there. Go's own build cache
makes a rebuild after a change take seconds. `python -m harness.testnet.build` builds them and prints
one line (scripts/test runs it before pytest).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tailnet_llm_gateway.images import TAILSCALE_VERSION

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "testnet"
TAILSCALE_PROGRAMS = ("tailscaled", "tailscale", "containerboot")
OWN_PROGRAMS = ("testnet-control", "testnet-grants")
# As the tailscale/tailscale image builds its binaries (build_docker.sh, target "client").
IMAGE_BUILD_TAGS = "ts_kube,ts_package_container"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tailnet-llm-gateway" / "testnet"
BUILD_TIMEOUT_S = 1800


class BuildError(RuntimeError):
    """Go is missing or a build failed: the message says which, with the command's last lines."""


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise BuildError("Go is not installed (the test tailnet is built with Go 1.26 or later: https://go.dev/dl)")
    return go


def _recipe(go: str) -> str:
    digest = hashlib.sha256(TAILSCALE_VERSION.encode())
    digest.update(subprocess.run([go, "version"], capture_output=True, text=True, timeout=60).stdout.encode())
    for path in sorted(MODULE.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(MODULE)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise BuildError(f"`{' '.join(argv)}` failed (in {cwd}):\n{tail}")


def binaries(log=print) -> Path:
    """The directory holding every program the test tailnet runs; built here when not cached."""
    go = _go()
    target = CACHE / _recipe(go)
    if all((target / name).exists() for name in (*TAILSCALE_PROGRAMS, *OWN_PROGRAMS)):
        return target
    log(f"building tailscaled, tailscale and containerboot {TAILSCALE_VERSION} and the test control server (Go)")
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    env = {**os.environ, "GOBIN": str(staging), "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    release = [f"tailscale.com/cmd/{name}@v{TAILSCALE_VERSION}" for name in TAILSCALE_PROGRAMS]
    _run([go, "install", f"-tags={IMAGE_BUILD_TAGS}", *release], staging, env)
    _run([go, "build", "-o", str(staging), *(f"./cmd/{name}" for name in OWN_PROGRAMS)], MODULE, env)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def main() -> int:
    try:
        where = binaries()
    except BuildError as error:
        print(f"testnet: {error}", file=sys.stderr)
        return 1
    print(f"testnet: tailscale {TAILSCALE_VERSION} and the test control server are in {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
