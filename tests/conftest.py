"""Shared fixtures: tiny search spaces written on the fly."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

TINY_SPACE = textwrap.dedent(
    """
    name: tiny
    in_channels: 3
    base_resolution: 16
    resolutions: [12, 16]
    width_multipliers: [0.5, 1.0]
    stem: {out_channels: 8, kernel: 3, stride: 2, act: hswish}
    stages:
      - {out_channels: 8, stride: 1, depths: [1], kernels: [3], expansions: [1], se: [false], acts: [relu]}
      - {out_channels: 16, stride: 2, depths: [1, 2], kernels: [3, 5], expansions: [3, 6], se: [false, true], acts: [relu, hswish]}
      - {out_channels: 24, stride: 1, depths: [1, 2], kernels: [3, 5], expansions: [3, 6], se: [false, true], acts: [relu, hswish]}
    head: {final_channels: 32, classifier_channels: 48, dropout: 0.0}
    """
)


@pytest.fixture
def tiny_space_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return path


@pytest.fixture
def tiny_space(tiny_space_file: Path):
    from nas.space import load_space

    return load_space(tiny_space_file)


# --- a throw-away PostgreSQL server (Debian's postgresql package; scripts/install.sh installs it) ---

def _postgres_bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgresql_server():
    """A PostgreSQL cluster made by ``initdb`` in a temp dir, on 127.0.0.1 at a random port, for this
    test session only; stopped and deleted afterwards. Yields ``(host, port, user)``.

    Skipped, with the reason, only where the server or the driver cannot be had.
    """
    import getpass
    import pwd
    import shutil
    import socket
    import subprocess
    import tempfile

    bindir = _postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server not installed (apt-get install -y postgresql; scripts/install.sh does it)")
    pytest.importorskip("psycopg", reason="psycopg (SQLAlchemy's PostgreSQL driver) not installed")
    as_user: list[str] = []
    user = getpass.getuser()
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as Debian's postgres user
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        as_user = ["runuser", "-u", "postgres", "--"]
        user = "postgres"
    base = Path(tempfile.mkdtemp(prefix="nas-pg-"))
    if as_user:
        os.chown(base, pw.pw_uid, pw.pw_gid)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = base / "data"
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True)  # noqa: E731
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", user, "--no-sync", "-E", "UTF8")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w", "-t", "60",
            "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c max_connections=200", "start")
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {exc.stderr or exc.stdout}")
    try:
        yield "127.0.0.1", port, user
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgresql_url(postgresql_server, request) -> str:
    """A fresh, empty database on the session's PostgreSQL server, as an Optuna storage URL."""
    import re

    import psycopg

    host, port, user = postgresql_server
    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50] + f"_{os.getpid()}"
    with psycopg.connect(host=host, port=port, user=user, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://{user}@{host}:{port}/{name}"
