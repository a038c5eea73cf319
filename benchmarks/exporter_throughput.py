"""Sustained export rate to a local CT server, and memory at the queue bound during an outage.

Part 0 (exporter alone): the same traces go to a no-op HTTP sink in another process, which
shows the exporter's own ceiling and its CPU cost per trace: the caller's enqueue, and the
background thread's cleaning, JSON encoding and HTTP.

Part 1 (throughput): starts `kaizen serve` on a fresh SQLite file and queues `--traces`
realistic traces (about 1.3 KB of JSON each, the shape the openai integration produces) as
fast as one thread can. It times how long the exporter takes to deliver them all (`flush()`). It then
paces traces at 80 % of that rate for `--paced-seconds` to confirm that the exporter keeps up
without drops.

Part 2 (outage): a fresh interpreter points the exporter at a port where nothing listens and
queues traces at `--outage-rate` per second for `--outage-seconds`, sampling its resident
memory (VmRSS) every second. It runs once without and once with a spool directory.

    .venv/bin/python benchmarks/exporter_throughput.py
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KAIZEN = Path(sys.executable).parent / "kaizen"


def make_trace(task: str) -> dict:
    ticket = "VPN disconnects every 20 minutes since the client update on Monday; Wi-Fi is fine otherwise."
    prompt = f"Summarize this support ticket in one line for the on-call engineer: {ticket}"
    return {
        "id": str(uuid.uuid4()),
        "task": task,
        "messages": [
            {"role": "system", "content": "You are a terse assistant for an IT help desk."},
            {"role": "user", "content": prompt},
        ],
        "prompt_text": "You are a terse assistant for an IT help desk.\n\n" + prompt,
        "response_text": "VPN client update breaks sessions every 20 min; roll back the client.",
        "response": {"choices": [{"index": 0, "role": "assistant", "finish_reason": "stop"}]},
        "model": "gpt-4o-mini-2024-07-18",
        "prompt_tokens": 42,
        "completion_tokens": 14,
        "total_tokens": 56,
        "latency_ms": 812.4,
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "error": None,
        "incomplete": False,
        "source_variable": "SUMMARIZE_PROMPT",
        "source_file": "/srv/app/tickets.py",
        "source_line": 42,
        "detection_rule": "template",
        "inputs": {"ticket": ticket},
        "template": "Summarize this support ticket in one line for the on-call engineer: {ticket}",
        "library": "openai",
        "parameters": {"temperature": 0, "max_tokens": 64},
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(directory: Path) -> tuple[subprocess.Popen, str, str]:
    db_url = f"sqlite:///{directory / 'kaizen.db'}"
    created = subprocess.run([str(KAIZEN), "keys", "create", "--db", db_url, "--name", "bench"], capture_output=True, text=True, check=True)
    api_key = created.stdout.strip().splitlines()[-1].strip()
    port = free_port()
    log = open(directory / "server.log", "wb")
    process = subprocess.Popen(
        [str(KAIZEN), "--log-level", "WARNING", "serve", "--host", "127.0.0.1", "--port", str(port), "--db", db_url],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return process, base_url, api_key
        except httpx.TransportError:
            time.sleep(0.1)

    process.kill()
    raise SystemExit(f"kaizen serve did not start; see {directory / 'server.log'}")


SINK_WORKER = """
import sys, time
sys.path.insert(0, {bench_dir!r})
from exporter_overhead import start_sink
server, url = start_sink()
print(url, flush=True)
time.sleep(3600)
"""


def measure_exporter_alone(traces: int) -> dict:
    from kaizen_sdk import _exporter
    from kaizen_sdk._config import resolve_settings

    sink = subprocess.Popen(
        [sys.executable, "-c", SINK_WORKER.format(bench_dir=str(Path(__file__).resolve().parent))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = sink.stdout.readline().strip()
        _exporter.reset(0)
        _exporter.configure(resolve_settings(api_key="key", base_url=url, max_queue_size=traces))
        exporter = _exporter.get_exporter()
        prepared = [make_trace("ALONE") for _ in range(traces)]

        process_started = time.process_time()
        caller_started = time.thread_time()
        started = time.perf_counter()
        for trace in prepared:
            exporter.enqueue_trace(trace)
        caller_cpu = time.thread_time() - caller_started
        delivered = _exporter.flush(600)
        elapsed = time.perf_counter() - started
        caller_cpu_total = time.thread_time() - caller_started  # includes waiting in flush (no CPU)
        process_cpu = time.process_time() - process_started
        stats = _exporter.stats()
        _exporter.reset(0)
    finally:
        sink.kill()
        sink.wait()

    return {
        "traces": traces,
        "delivered": delivered and stats["sent"] == traces,
        "traces_per_second": traces / elapsed,
        "enqueue_us": caller_cpu / traces * 1e6,
        "background_us": (process_cpu - caller_cpu_total) / traces * 1e6,
    }


def measure_throughput(base_url: str, api_key: str, traces: int, batch_size: int, paced_seconds: float) -> dict:
    from kaizen_sdk import _exporter
    from kaizen_sdk._config import resolve_settings

    _exporter.reset(0)
    _exporter.configure(resolve_settings(api_key=api_key, base_url=base_url, max_batch_size=batch_size, max_queue_size=max(traces, 10_000)))
    exporter = _exporter.get_exporter()
    task = f"BENCH_{uuid.uuid4().hex[:6]}"
    prepared = [make_trace(task) for _ in range(traces)]

    started = time.perf_counter()
    for trace in prepared:
        exporter.enqueue_trace(trace)
    queued_in = time.perf_counter() - started
    delivered = _exporter.flush(600)
    elapsed = time.perf_counter() - started
    burst_stats = _exporter.stats()
    rate = traces / elapsed

    # Paced run at 80 % of the burst rate with the default queue bound: must not drop.
    _exporter.reset(0)
    _exporter.configure(resolve_settings(api_key=api_key, base_url=base_url, max_batch_size=batch_size))
    exporter = _exporter.get_exporter()
    target = rate * 0.8
    count = int(target * paced_seconds)
    paced = [make_trace(task) for _ in range(count)]
    max_queued = 0
    paced_started = time.perf_counter()
    for index, trace in enumerate(paced):
        due = paced_started + index / target
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        exporter.enqueue_trace(trace)
        if index % 100 == 0:
            max_queued = max(max_queued, exporter.stats()["queued"])
    paced_delivered = _exporter.flush(600)
    paced_stats = _exporter.stats()
    _exporter.reset(0)

    return {
        "batch_size": batch_size,
        "traces": traces,
        "enqueue_seconds": queued_in,
        "delivered": delivered and burst_stats["dropped"] == 0,
        "seconds": elapsed,
        "traces_per_second": rate,
        "paced_rate": target,
        "paced_traces": count,
        "paced_delivered": paced_delivered,
        "paced_dropped": paced_stats["dropped"],
        "paced_max_queued": max_queued,
    }


OUTAGE_WORKER = """
import json, sys, time, tempfile
sys.path.insert(0, {bench_dir!r})
from exporter_throughput import make_trace, free_port
from kaizen_sdk import _exporter
from kaizen_sdk._config import resolve_settings

def rss_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

rate, seconds, spool_dir = {rate}, {seconds}, {spool_dir!r}
baseline = rss_mib()
_exporter.configure(resolve_settings(api_key="key", base_url=f"http://127.0.0.1:{{free_port()}}", spool_dir=spool_dir or None))
exporter = _exporter.get_exporter()
samples = []
started = time.perf_counter()
produced = 0
while time.perf_counter() - started < seconds:
    second_started = time.perf_counter()
    for _ in range(rate):
        exporter.enqueue_trace(make_trace("OUTAGE"))
        produced += 1
    samples.append(rss_mib())
    time.sleep(max(0.0, 1.0 - (time.perf_counter() - second_started)))
stats = _exporter.stats()
spool_bytes = 0
if spool_dir:
    import os
    spool_bytes = sum(os.path.getsize(os.path.join(spool_dir, name)) for name in os.listdir(spool_dir))
print(json.dumps({{"baseline_mib": baseline, "peak_mib": max(samples), "end_mib": samples[-1], "produced": produced,
                  "stats": stats, "spool_bytes": spool_bytes, "spool": bool(spool_dir)}}))
import os
os._exit(0)  # skip the exit flush: the outage is still going on
"""


def measure_outage(rate: int, seconds: int, spool_dir: str | None) -> subprocess.Popen:
    code = OUTAGE_WORKER.format(bench_dir=str(Path(__file__).resolve().parent), rate=rate, seconds=seconds, spool_dir=spool_dir or "")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=20_000, help="traces queued at once for the burst measurement")
    parser.add_argument("--paced-seconds", type=float, default=20.0, help="length of the paced run, seconds")
    parser.add_argument("--outage-seconds", type=int, default=60, help="length of the simulated outage, seconds")
    parser.add_argument("--outage-rate", type=int, default=1000, help="traces per second during the outage")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="kaizen-bench-"))
    spool_dir = workdir / "spool"
    outages = [measure_outage(args.outage_rate, args.outage_seconds, None), measure_outage(args.outage_rate, args.outage_seconds, str(spool_dir))]

    alone = measure_exporter_alone(args.traces)
    process, base_url, api_key = start_server(workdir)
    try:
        results = [measure_throughput(base_url, api_key, args.traces, batch, args.paced_seconds) for batch in (100, 500)]
    finally:
        process.terminate()
        process.wait(10)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}")
    print(f"load average: {os.getloadavg()[0]:.2f} (two outage processes ran alongside part 1)")
    print("\nExporter alone, no-op HTTP sink in another process")
    print(
        f"  {alone['traces']} traces delivered at {alone['traces_per_second']:.0f} traces/s (all sent: {alone['delivered']}); "
        f"CPU per trace: {alone['enqueue_us']:.1f} us on the caller (enqueue), {alone['background_us']:.1f} us on the export thread"
    )
    print("\nSustained export to kaizen serve (SQLite, same machine)")
    for result in results:
        print(
            f"  batch {result['batch_size']:>3}: {result['traces']} traces queued in {result['enqueue_seconds']:.2f} s, "
            f"delivered in {result['seconds']:.2f} s = {result['traces_per_second']:.0f} traces/s "
            f"(all delivered: {result['delivered']}); paced {result['paced_rate']:.0f}/s for {result['paced_traces']} traces: "
            f"dropped {result['paced_dropped']}, max queued {result['paced_max_queued']}"
        )

    print(f"\nMemory during a {args.outage_seconds} s outage at {args.outage_rate} traces/s (queue bound 10000)")
    for outage in outages:
        output, _ = outage.communicate(timeout=args.outage_seconds + 120)
        data = json.loads(output.strip().splitlines()[-1])
        stats = data["stats"]
        print(
            f"  {'with spool' if data['spool'] else 'no spool  '}: RSS {data['baseline_mib']:.1f} MiB before, "
            f"peak {data['peak_mib']:.1f} MiB, end {data['end_mib']:.1f} MiB; produced {data['produced']}, "
            f"queued {stats['queued']}, spooled {stats['spooled']}, dropped {stats['dropped']}, "
            f"spool file {data['spool_bytes'] / 2**20:.1f} MiB"
        )

    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
