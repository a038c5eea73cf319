"""Run the whole product on this machine: CT server, stub LLM, instrumented app, summary.

Steps:
1. Start `kaizen serve` on a SQLite file in the state folder (.kaizen/) and create an API key.
2. Start the stub LLM on 127.0.0.1. With --no-stub the app calls OpenAI itself instead, with
   the OPENAI_API_KEY of the environment.
3. Run examples/support_app.py with the environment pointing at both.
4. Print the tasks with their trace counts and mean scores, then keep the server running
   until Ctrl-C so the dashboard can be opened. --exit stops right after the summary.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from kaizen_sdk import CTClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from stub_llm import StubLLMServer  # noqa: E402  (tools/ is not a package)

HEALTH_TIMEOUT_S = 30.0


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def pick_port(preferred: int) -> int:
    """Return `preferred` if nothing listens there, else a free port."""
    if port_is_free(preferred):
        return preferred

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kaizen(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "kaizen"
    prefix = [str(script)] if script.exists() else [sys.executable, "-m", "kaizen_server.cli"]
    return [*prefix, *args]


def create_api_key(db_url: str) -> str:
    completed = subprocess.run(kaizen("keys", "create", "--db", db_url, "--name", "demo"), capture_output=True, text=True)
    if completed.returncode != 0:
        sys.exit(f"demo: `kaizen keys create` failed:\n{completed.stderr}")

    return completed.stdout.strip().splitlines()[-1].strip()


def wait_until_healthy(base_url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"demo: the CT server exited with code {server.returncode}; see server.log in the state folder")
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)

    sys.exit(f"demo: the CT server at {base_url} was not healthy after {HEALTH_TIMEOUT_S} s; see server.log in the state folder")


def print_task_table(base_url: str, api_key: str) -> None:
    with CTClient(api_key=api_key, base_url=base_url) as client:
        tasks = client.list_tasks()

    print()
    print(f"{'task':<24} {'traces':>6} {'scored':>6} {'mean score':>10}")
    for task in tasks:
        mean = task.get("mean_score")
        mean_text = "-" if mean is None else f"{mean:.2f}"
        print(f"{task['task']:<24} {task['trace_count']:>6} {task.get('scored_count', 0):>6} {mean_text:>10}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000, help="CT server port (default 8000; a free one if taken)")
    parser.add_argument("--exit", action="store_true", help="stop the server after printing the summary")
    parser.add_argument("--no-stub", action="store_true", help="call OpenAI itself (needs OPENAI_API_KEY)")
    parser.add_argument("--fresh", action="store_true", help="start from an empty database")
    parser.add_argument("--state-dir", type=Path, default=REPO / ".kaizen", help="folder for the SQLite file and the server log")
    args = parser.parse_args()

    state_dir = args.state_dir
    if args.fresh and state_dir.exists():
        shutil.rmtree(state_dir)
    state_dir.mkdir(exist_ok=True)

    db_url = f"sqlite:///{state_dir / 'demo.db'}"
    port = pick_port(args.port)
    base_url = f"http://127.0.0.1:{port}"
    api_key = create_api_key(db_url)

    with open(state_dir / "server.log", "ab") as log:
        server = subprocess.Popen(
            kaizen("serve", "--host", "127.0.0.1", "--port", str(port), "--db", db_url),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    stub = None
    try:
        wait_until_healthy(base_url, server)

        env = {
            **os.environ,
            "KAIZEN_API_KEY": api_key,
            "KAIZEN_BASE_URL": base_url,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        if args.no_stub:
            if not os.environ.get("OPENAI_API_KEY"):
                sys.exit("demo: --no-stub needs OPENAI_API_KEY in the environment")
        else:
            stub = StubLLMServer()
            stub.__enter__()
            env["OPENAI_BASE_URL"] = stub.base_url
            env["OPENAI_API_KEY"] = "sk-stub"

        print(f"demo: CT server at {base_url}, LLM at {env.get('OPENAI_BASE_URL', 'OpenAI')}")
        app = subprocess.run([sys.executable, str(REPO / "examples" / "support_app.py")], env=env)
        if app.returncode != 0:
            print(f"demo: the example app exited with code {app.returncode}", file=sys.stderr)
            return app.returncode

        print_task_table(base_url, api_key)
        print()
        print(f"Dashboard: {base_url}/   (sign in with API key {api_key})")

        if args.exit:
            return 0

        print("The CT server keeps running; press Ctrl-C to stop it.")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        server.wait()
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        if stub is not None:
            stub.__exit__(None, None, None)
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
