"""Benchmark task detection per call on code shaped like the detection corpus.

Each corpus shape (the user code from ``sdk/tests/test_detection_shapes.py``) is imported
from a temporary folder and run many times. The stand-in client library calls
``detect_task`` through a timer that also lives in the temporary ``site-packages`` folder, so
only detection is timed and the timer's frame is skipped like any library frame.

For scale, the same run times ``inspect.stack()`` at the same call sites: the obvious way to
read the caller's frames, which detection avoids because it reads source files. A second
table times modules with 10, 100 and 500 prompt constants, one call per naming rule.

Usage:
    .venv/bin/python benchmarks/detection_bench.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPES_FILE = ROOT / "sdk" / "tests" / "test_detection_shapes.py"

TIMER_MODULE = '''
"""Times each detect_task call (lives in site-packages, so detection skips its frame)."""
import inspect
import time

from kaizen_sdk._detection import detect_task as _detect_task

samples = []
stack_samples = []
measure_stack = False


def timed_detect_task(messages):
    if measure_stack:
        started = time.perf_counter_ns()
        inspect.stack()
        stack_samples.append(time.perf_counter_ns() - started)
    started = time.perf_counter_ns()
    detection = _detect_task(messages)
    samples.append(time.perf_counter_ns() - started)
    return detection
'''


def load_shapes():
    spec = importlib.util.spec_from_file_location("kaizen_detection_shapes", SHAPES_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def percentile(values: list[int], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def module_with_constants(count: int) -> str:
    """Return user code with ``count`` prompt constants and three calls named by the last ones."""
    constants = "\n".join(
        f'PROMPT_{i} = "Prompt number {i}: do task {i} with {{data}} carefully."' for i in range(count)
    )
    return f'''
import fakellm

{constants}
SYSTEM_PROMPT = "You are assistant number {count}."


def by_template(data):
    return fakellm.complete(messages=[{{"role": "user", "content": PROMPT_{count - 1}.format(data=data)}}])


def by_system_prompt(question):
    return fakellm.complete(messages=[{{"role": "system", "content": SYSTEM_PROMPT}}, {{"role": "user", "content": question}}])


def by_function(question):
    return fakellm.complete(messages=[{{"role": "user", "content": "Answer: " + question}}])


def run():
    return [by_template("x"), by_system_prompt("why?"), by_function("how?")]
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="detections timed per shape (default 2000)")
    parser.add_argument("--stack-calls", type=int, default=50, help="inspect.stack() calls timed per shape (default 50)")
    args = parser.parse_args()

    shapes = load_shapes()
    all_samples: list[int] = []
    all_stack: list[int] = []
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        sandbox = shapes.Sandbox(Path(folder))
        (sandbox.library_dir / "kaizen_bench_timer.py").write_text(TIMER_MODULE)
        import fakellm  # noqa: F401  (written by the sandbox into its site-packages folder)
        import kaizen_bench_timer as timer

        fakellm.detect_task = timer.timed_detect_task
        try:
            for shape in shapes.SHAPES:
                module = sandbox.load(shape.files)
                detections_per_run = len(module.run())  # warm the caches, as a running app has them
                runs = max(1, args.calls // detections_per_run)

                timer.samples.clear()
                for _ in range(runs):
                    module.run()
                samples = list(timer.samples)

                timer.samples.clear()
                timer.measure_stack = True
                for _ in range(max(1, args.stack_calls // detections_per_run)):
                    module.run()
                timer.measure_stack = False
                stack = list(timer.stack_samples)
                timer.stack_samples.clear()

                all_samples.extend(samples)
                all_stack.extend(stack)
                rows.append((shape.name, statistics.median(samples), percentile(samples, 0.99), statistics.median(stack)))

            # Cost against the number of prompt constants in the module, per naming rule.
            size_rows = []
            for count in (10, 100, 500):
                module = sandbox.load({"main.py": module_with_constants(count)})
                module.run()
                timer.samples.clear()
                for _ in range(max(1, args.calls // 3)):
                    module.run()
                by_rule = [timer.samples[position::3] for position in range(3)]
                size_rows.append((count, *(statistics.median(samples) for samples in by_rule)))
        finally:
            sandbox.close()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {cpu_model()}, nproc {os.cpu_count()}, Python {platform.python_version()}, "
        f"load average (1 min) {load:.1f}"
    )
    print(f"{'shape':34} {'median µs':>10} {'p99 µs':>10} {'inspect.stack µs':>17}")
    for name, median, p99, stack in rows:
        print(f"{name:34} {median / 1000:10.1f} {p99 / 1000:10.1f} {stack / 1000:17.0f}")
    median_all = statistics.median(all_samples)
    stack_all = statistics.median(all_stack)
    print(
        f"{'all shapes':34} {median_all / 1000:10.1f} {percentile(all_samples, 0.99) / 1000:10.1f} "
        f"{stack_all / 1000:17.0f}"
    )
    print(f"calls timed: {len(all_samples)}; inspect.stack() / detect_task median: {stack_all / median_all:.0f}x")
    print()
    print(f"{'prompt constants in module':28} {'template µs':>12} {'system prompt µs':>17} {'function µs':>12}")
    for count, template, system, function in size_rows:
        print(f"{count:<28} {template / 1000:12.1f} {system / 1000:17.1f} {function / 1000:12.1f}")


if __name__ == "__main__":
    main()
