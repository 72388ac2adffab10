"""Building blocks of a stand-in image's root filesystem: a static busybox userland, the accounts every
image has, and host files (with the shared libraries ELF files load) copied in."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
BUSYBOX_APPLETS = ("sh", "wget", "cat", "id", "touch", "ls", "ps", "sleep", "grep", "mkdir", "env")


def busybox(root: Path) -> None:
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        (root / "bin" / applet).symlink_to("busybox")


def accounts(root: Path) -> None:
    etc = root / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    tmp = root / "tmp"
    tmp.mkdir(exist_ok=True)
    tmp.chmod(0o1777)


def elf_files(top: Path):
    for path in top.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as handle:
                if handle.read(4) == b"\x7fELF":
                    yield path


def shared_libraries(files) -> set[str]:
    """Absolute paths of the host libraries these ELF files load (ldd), outside the copied trees."""
    needed: set[str] = set()
    for path in files:
        result = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=30)
        for line in result.stdout.splitlines():
            match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
            if match:
                needed.add(match.group(1))
    return needed


def copy_host_file(root: Path, host_path: str) -> None:
    target = root / host_path.lstrip("/")
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(host_path, target, follow_symlinks=True)
