"""A real PostgreSQL server for the tests: Debian's binaries, a fresh cluster in a temp folder."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class PgServer:
    host: str
    port: int
    user: str
    database: str

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.database}"

    def execute(self, sql: str, params: tuple | None = None) -> None:  # type: ignore[type-arg]
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user=self.user, dbname=self.database, autocommit=True) as conn:
            conn.execute(sql, params)


def pg_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_server(base: str | None = None) -> Iterator[PgServer]:
    """initdb + pg_ctl start on a free loopback port; stopped and removed afterwards.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the 'postgres' user, in a
    folder of its own under /tmp (pytest's tmp folders are private to root).
    """
    import tempfile

    del base
    base = tempfile.mkdtemp(prefix="cdp-pg-")
    os.chmod(base, 0o755)
    bindir = pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found (Debian package postgresql)")
    data = os.path.join(base, "pgdata")
    sock = os.path.join(base, "pgsock")
    os.makedirs(sock, exist_ok=True)
    port = _free_port()
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    if as_root:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*prefix, f"{bindir}/initdb", "-D", data, "-U", "cdp", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
    )
    log = os.path.join(base, "pg.log")
    subprocess.run(
        [
            *prefix,
            f"{bindir}/pg_ctl",
            "-D",
            data,
            "-l",
            log,
            "-w",
            "-o",
            f"-p {port} -h 127.0.0.1 -k {sock} -F",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    server = PgServer("127.0.0.1", port, "cdp", "postgres")
    try:
        deadline = time.time() + 20
        while True:
            try:
                server.execute("SELECT 1")
                break
            except Exception:  # noqa: BLE001
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        yield server
    finally:
        subprocess.run([*prefix, f"{bindir}/pg_ctl", "-D", data, "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
