"""Run every detection case end to end: real client library, stub LLM, running CT server.

A case is a standalone script (``NN_name.py``, or a folder ``NN_name/`` with ``main.py``)
whose header lists the task name of each LLM call it makes, in order:

    # library: openai | litellm | langchain
    # expect: TASK_A, TASK_B, -        (`-`: the call must not be traced)

The script prints one ``ct_trace_id <id>`` line per call. A case passes when it exits 0,
prints one line per expected call, and the CT server holds a trace with the expected task
name for each id (and none for a `-` call). Cases run as subprocesses, the way a user runs
them, so the SDK flushes its exporter at interpreter exit.

The cases come from ``detection_cases/`` next to this file; set ``KAIZEN_CASES_DIR`` to run
another folder of cases in the same format instead. All selected cases start together in a
thread pool (bounded by the CPU count), because each spends seconds importing its library.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

CASES_DIR = Path(os.environ.get("KAIZEN_CASES_DIR") or Path(__file__).parent / "detection_cases")
CASE_TIMEOUT_S = 180
TRACE_WAIT_S = 10.0
NOT_TRACED = "-"

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Case:
    """One detection case: where its script is and what it must produce."""

    name: str
    script: Path
    library: str
    expect: tuple[str, ...]


def _header(script: Path) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in script.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        key, separator, value = line[1:].partition(":")
        if separator:
            fields[key.strip()] = value.strip()
    return fields


def discover_cases(directory: Path) -> list[Case]:
    """Return the cases in ``directory``, sorted by name; raise on a case without ``# expect:``."""
    if not directory.is_dir():
        raise FileNotFoundError(f"detection cases folder not found: {directory}; set KAIZEN_CASES_DIR to a folder of cases")

    cases = []
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_dir():
            script = entry / "main.py"
            if not script.is_file():
                continue
        elif entry.suffix == ".py":
            script = entry
        else:
            continue

        fields = _header(script)
        if "expect" not in fields:
            raise ValueError(f"case {script} has no '# expect:' line in its header; add one listing the task names")
        expect = tuple(name.strip() for name in fields["expect"].split(",") if name.strip())
        cases.append(Case(entry.name, script, fields.get("library", "?"), expect))
    return cases


CASES = discover_cases(CASES_DIR)


@dataclass
class CaseRun:
    """What one case's process did."""

    returncode: int
    stdout: str
    stderr: str


def _run_case(case: Case, env: dict[str, str]) -> CaseRun:
    try:
        completed = subprocess.run(
            [sys.executable, case.script.name],
            cwd=case.script.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=CASE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        return CaseRun(-1, exc.stdout or "", f"timed out after {CASE_TIMEOUT_S} s\n{exc.stderr or ''}")
    return CaseRun(completed.returncode, completed.stdout, completed.stderr)


@pytest.fixture(scope="session")
def corpus_runs(request: pytest.FixtureRequest, ct_server, stub_llm) -> dict[str, CaseRun]:
    """Run the cases selected in this session, in parallel, once."""
    selected = {
        item.callspec.params["case"].name
        for item in request.session.items
        if hasattr(item, "callspec") and isinstance(item.callspec.params.get("case"), Case)
    }
    env = {
        **os.environ,
        "OPENAI_BASE_URL": stub_llm.base_url,
        "OPENAI_API_KEY": "sk-test",
        "KAIZEN_API_KEY": ct_server.api_key,
        "KAIZEN_BASE_URL": ct_server.base_url,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        # The cases folder may be someone else's (KAIZEN_CASES_DIR): leave no __pycache__ in it.
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    cases = [case for case in CASES if case.name in selected]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        runs = list(pool.map(lambda case: _run_case(case, env), cases))
    return {case.name: run for case, run in zip(cases, runs)}


def _trace_ids(stdout: str) -> list[str]:
    return [line.split(" ", 1)[1].strip() for line in stdout.splitlines() if line.startswith("ct_trace_id ")]


def _describe(trace: dict) -> str:
    return (
        f"task={trace.get('task')!r} rule={trace.get('detection_rule')!r} "
        f"variable={trace.get('source_variable')!r} at {trace.get('source_file')}:{trace.get('source_line')}"
    )


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_detection_case(case: Case, corpus_runs: dict[str, CaseRun], ct_server) -> None:
    run = corpus_runs[case.name]
    assert run.returncode == 0, f"{case.name} exited with {run.returncode}:\n{run.stderr[-3000:]}"

    trace_ids = _trace_ids(run.stdout)
    assert len(trace_ids) == len(case.expect), (
        f"{case.name} printed {len(trace_ids)} ct_trace_id lines, expected {len(case.expect)}:\n{run.stdout}"
    )

    for position, (expected, trace_id) in enumerate(zip(case.expect, trace_ids), start=1):
        if expected == NOT_TRACED:
            if trace_id != "None":
                assert ct_server.get_trace(trace_id) is None, f"call {position} of {case.name} must not be traced"
            continue

        assert trace_id != "None", f"call {position} of {case.name} has no ct_trace_id; stderr:\n{run.stderr[-2000:]}"
        trace = ct_server.wait_for_trace(trace_id, timeout=TRACE_WAIT_S)
        assert trace["task"] == expected, f"call {position} of {case.name}: expected {expected!r}, got {_describe(trace)}"
