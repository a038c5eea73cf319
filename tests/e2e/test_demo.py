"""The demo command, run the way a new user runs it, ends with the three tasks of the example app."""

import os
import subprocess
import sys
from pathlib import Path

from e2e.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
EXPECTED_TASKS = ("SUMMARIZE_PROMPT", "CLASSIFY_PROMPT", "REPLY_PROMPT")


def test_demo_prints_three_tasks(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KAIZEN_", "OPENAI_"))}
    completed = subprocess.run(
        [sys.executable, str(REPO / "examples" / "demo.py"), "--exit", "--fresh", "--port", str(free_port()), "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    table = completed.stdout.split("mean score", 1)[-1]
    for task in EXPECTED_TASKS:
        rows = [line for line in table.splitlines() if line.split() and line.split()[0] == task]
        assert rows, f"task {task} missing from the demo's table:\n{completed.stdout}"
        assert rows[0].split()[1] == "4", f"task {task} should have 4 traces: {rows[0]}"
    assert "Dashboard: http://127.0.0.1:" in completed.stdout
