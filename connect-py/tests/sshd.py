"""Debian's sshd on 127.0.0.1 for the SshHost tests: its own temp dir, host key, client key and port, as
connect-core's Rust harness starts it. Without sshd the tests skip loudly; with CONNECT_REAL_TESTS=1 they fail.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest


def require_program(name: str, *fallbacks: str) -> str:
    found = shutil.which(name) or next((p for p in fallbacks if os.access(p, os.X_OK)), None)
    if found is not None:
        return found
    message = f"{name} is not installed (apt-get install openssh-server openssh-client): the SSH tests cannot run"
    if os.environ.get("CONNECT_REAL_TESTS") == "1":
        pytest.fail(f"CONNECT_REAL_TESTS=1 but {message}")
    print(f"\n*** SKIPPING: {message} ***", file=sys.stderr)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Sshd:
    """A running sshd and what a client needs to log in."""

    port: int
    user: str
    key_file: Path
    known_hosts: Path
    log: Path

    def accepted_connections(self) -> int:
        """TCP connections sshd accepted so far (its ``Connection from`` lines)."""
        return self.log.read_text(errors="replace").count("Connection from")


def start_sshd(dir: Path) -> Iterator[Sshd]:
    """Starts sshd in ``dir``, yields it once it listens, and stops it."""
    sshd = require_program("sshd", "/usr/sbin/sshd")
    keygen = require_program("ssh-keygen", "/usr/bin/ssh-keygen")
    for name in ("host_ed25519", "client_ed25519"):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(dir / name)], check=True)
    shutil.copy(dir / "client_ed25519.pub", dir / "authorized_keys")
    # sshd reads authorized_keys as the user logging in.
    dir.chmod(0o755)
    (dir / "authorized_keys").chmod(0o644)
    port = free_port()
    (dir / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_ed25519\nPidFile {dir}/sshd.pid\n"
        f"AuthorizedKeysFile {dir}/authorized_keys\nStrictModes no\nPubkeyAuthentication yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "PermitRootLogin prohibit-password\nLogLevel VERBOSE\n"
        # Debian's root .bashrc would cost every command a quarter of a second.
        f"SetEnv HOME={dir}\n"
    )
    host_key = (dir / "host_ed25519.pub").read_text().split()
    (dir / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    os.makedirs("/run/sshd", exist_ok=True)
    log = dir / "sshd.log"
    with open(log, "wb") as err:
        process = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(dir / "sshd_config")], stdin=subprocess.DEVNULL, stderr=err
        )
    try:
        give_up = time.monotonic() + 10
        while "Server listening on" not in log.read_text(errors="replace"):
            if process.poll() is not None:
                raise AssertionError(f"sshd exited {process.returncode}: {log.read_text(errors='replace')}")
            if time.monotonic() > give_up:
                raise AssertionError(f"sshd did not start within 10 s: {log.read_text(errors='replace')}")
            time.sleep(0.02)  # a polling interval: the log line decides
        yield Sshd(port, getpass.getuser(), dir / "client_ed25519", dir / "known_hosts", log)
    finally:
        process.terminate()
        process.wait(timeout=10)
