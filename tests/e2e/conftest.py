"""Fixtures for end-to-end tests: a real CT server process and the stub LLM, both on 127.0.0.1.

The CT server runs as a subprocess (`kaizen serve`) on a fresh SQLite file, exactly as a user
starts it, so these tests cross the real HTTP boundary. The stub LLM runs in a thread of the
test process and speaks the OpenAI wire protocol over a real socket, which is what the real
openai, litellm and langchain-openai clients need: their traffic goes through httpx2, which
in-process HTTP mocks do not see.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import pytest

SERVER_START_TIMEOUT_S = 30.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kaizen_command() -> list[str]:
    """Return the argv prefix that runs the `kaizen` CLI of this environment."""
    script = Path(sys.executable).parent / "kaizen"
    if script.exists():
        return [str(script)]

    return [sys.executable, "-m", "kaizen_server.cli"]


@dataclass
class CTServer:
    """A running CT server process and the API key created for it."""

    base_url: str
    api_key: str
    db_url: str
    process: subprocess.Popen
    log_path: Path

    def _headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}

    def get_trace(self, trace_id: str) -> dict | None:
        """Fetch one trace, or None when the server does not have it (yet)."""
        response = httpx.get(f"{self.base_url}/api/v1/traces/{trace_id}", headers=self._headers(), timeout=10)
        if response.status_code == 404:
            return None

        response.raise_for_status()
        return response.json()

    def wait_for_trace(self, trace_id: str, timeout: float = 10.0, predicate=None) -> dict:
        """Poll until the trace exists (and satisfies `predicate`, if given); fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        trace = None
        while time.monotonic() < deadline:
            trace = self.get_trace(trace_id)
            if trace is not None and (predicate is None or predicate(trace)):
                return trace
            time.sleep(0.05)

        raise AssertionError(f"trace {trace_id} did not reach the CT server within {timeout} s; last seen: {trace!r}")

    def list_traces(self, task: str | None = None, limit: int = 100) -> list[dict]:
        """List the newest traces, optionally of one task."""
        params: dict[str, object] = {"limit": limit}
        if task is not None:
            params["task"] = task

        response = httpx.get(f"{self.base_url}/api/v1/traces", params=params, headers=self._headers(), timeout=10)
        response.raise_for_status()
        return response.json()["items"]

    def log_tail(self, lines: int = 40) -> str:
        """Return the end of the server's log, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def create_api_key(db_url: str, name: str = "e2e") -> str:
    """Create an API key with `kaizen keys create` and return it."""
    completed = subprocess.run(
        [*kaizen_command(), "keys", "create", "--db", db_url, "--name", name],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"`kaizen keys create` failed with exit code {completed.returncode}: {completed.stderr}")

    return completed.stdout.strip().splitlines()[-1].strip()


def start_ct_server(directory: Path, port: int | None = None, db_url: str | None = None) -> CTServer:
    """Start `kaizen serve` on 127.0.0.1 with a SQLite file in `directory` and wait until it is healthy."""
    directory.mkdir(parents=True, exist_ok=True)
    db_url = db_url or f"sqlite:///{directory / 'kaizen.db'}"
    api_key = create_api_key(db_url)
    port = port or free_port()
    log_path = directory / "server.log"

    env = {**os.environ, "KAIZEN_DATABASE_URL": db_url}
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [*kaizen_command(), "serve", "--host", "127.0.0.1", "--port", str(port), "--db", db_url],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )

    server = CTServer(
        base_url=f"http://127.0.0.1:{port}",
        api_key=api_key,
        db_url=db_url,
        process=process,
        log_path=log_path,
    )
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"`kaizen serve` exited with code {process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)

    stop_ct_server(server)
    raise RuntimeError(f"`kaizen serve` was not healthy within {SERVER_START_TIMEOUT_S} s:\n{server.log_tail()}")


def stop_ct_server(server: CTServer) -> None:
    """Stop the server process, politely first."""
    if server.process.poll() is not None:
        return

    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=10)


@pytest.fixture(scope="session")
def ct_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CTServer]:
    """One CT server for the whole session; tests tell their traces apart by trace id."""
    server = start_ct_server(tmp_path_factory.mktemp("ct-server"))
    yield server
    stop_ct_server(server)


@pytest.fixture(scope="session")
def stub_llm():
    """The project's OpenAI-compatible stub LLM server on 127.0.0.1."""
    from stub_llm import StubLLMServer

    with StubLLMServer() as server:
        yield server


@pytest.fixture
def kaizen_env(monkeypatch: pytest.MonkeyPatch, ct_server: CTServer, stub_llm) -> Iterator[CTServer]:
    """Point the SDK at the session's CT server and the clients at the stub LLM.

    At teardown every library is uninstrumented and the exporter is reset, so the next test
    starts from an uninstrumented process.
    """
    monkeypatch.setenv("KAIZEN_API_KEY", ct_server.api_key)
    monkeypatch.setenv("KAIZEN_BASE_URL", ct_server.base_url)
    monkeypatch.setenv("OPENAI_BASE_URL", stub_llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")

    yield ct_server

    import kaizen_sdk
    from kaizen_sdk import _exporter

    for name in ("openai", "litellm", "langchain_core", "langchain"):
        module = sys.modules.get(name)
        if module is not None:
            kaizen_sdk.uninstrument(module)
    _exporter.reset()
