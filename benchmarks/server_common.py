"""Shared helpers of the server benchmarks: throwaway databases, a `kaizen serve` process, traces.

Every benchmark runs against a fresh database of each backend: a SQLite file in a temporary
folder, or a PostgreSQL database created on 127.0.0.1:5432 for the run and dropped after it.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import httpx

PG_ADMIN_URL = os.environ.get("KAIZEN_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def fresh_database(backend: str) -> Iterator[str]:
    """Yield the SQLAlchemy URL of an empty database of `backend` ("sqlite" or "postgres")."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="kaizen-bench-") as folder:
            yield f"sqlite:///{Path(folder) / 'kaizen.db'}"
        return

    import psycopg

    name = f"kaizen_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield "postgresql+psycopg://" + PG_ADMIN_URL.split("://", 1)[1].rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def kaizen_command() -> list[str]:
    script = Path(sys.executable).parent / "kaizen"
    return [str(script)] if script.exists() else [sys.executable, "-m", "kaizen_server.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(db_url: str, workers: int = 1) -> Iterator[str]:
    """Start `kaizen serve` on a free port of 127.0.0.1; yield its base URL; stop it after."""
    port = free_port()
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [*kaizen_command(), "--log-level", "WARNING", "serve", "--port", str(port), "--db", db_url, "--workers", str(workers)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"kaizen serve exited: {log.read().decode(errors='replace')}")
            try:
                if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


USER_TEXT = (
    "Summarize the following support ticket for the on-call engineer in three bullet points. "
    "Ticket: the customer reports that invoices generated after the last deploy show the wrong "
    "currency symbol for accounts in Switzerland and Liechtenstein; totals are correct, only the "
    "symbol is wrong. They attached two PDFs and ask whether the sent invoices must be reissued. "
) * 2
RESPONSE_TEXT = (
    "- Invoices created since the last deploy show the wrong currency symbol for CH and LI accounts.\n"
    "- Amounts are correct; only the symbol is affected.\n"
    "- Customer asks whether already sent invoices must be reissued; two PDFs attached.\n"
)


def make_trace(task: str, started_at: datetime, index: int) -> dict:
    """Return a wire-format trace of about 2 KB of JSON, like a typical chat completion."""
    system = "You are a concise assistant for a billing support team."
    return {
        "id": str(uuid.uuid4()),
        "task": task,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": USER_TEXT}],
        "prompt_text": system + "\n\n" + USER_TEXT,
        "response_text": RESPONSE_TEXT,
        "model": "gpt-4o-mini-2024-07-18",
        "prompt_tokens": 180 + index % 40,
        "completion_tokens": 60 + index % 20,
        "total_tokens": 240 + index % 60,
        "latency_ms": 200.0 + (index * 7919) % 1800,
        "started_at": started_at.isoformat(),
        "error": None,
        "incomplete": False,
        "source_variable": task,
        "source_file": "/srv/app/support/summaries.py",
        "source_line": 42,
        "detection_rule": "template",
        "inputs": {"ticket": "invoices show the wrong currency symbol"},
        "template": "Summarize the following support ticket ... Ticket: {ticket}",
        "library": "openai",
        "parameters": {"temperature": 0.2, "max_tokens": 300},
    }


def machine_description() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def utc_start(days_back: int) -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=days_back)
