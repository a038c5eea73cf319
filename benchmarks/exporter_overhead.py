"""Per-call overhead of tracing openai chat completions: kaizen-sdk against its peers.

Every variant makes the same `client.chat.completions.create(...)` calls through the real
openai package, whose HTTP client is given an in-process mock transport (httpx2.MockTransport)
that returns a canned completion. The difference to the bare client is therefore the time
the tracing library adds on the caller's thread, plus whatever its background export costs
while it competes for the interpreter.

Variants, each with its exporter on and sending to a no-op HTTP sink on 127.0.0.1 that this
script runs:
  bare           openai without tracing
  kaizen         kaizen_sdk.instrument(openai), background exporter to the sink's /api/v1/ingest
  kaizen-stdjson the same with orjson hidden, so the exporter encodes with the standard library
                 (kaizen-sdk uses orjson only when it is importable)
  openinference  openinference-instrumentation-openai, OpenTelemetry SDK, BatchSpanProcessor,
                 OTLP/HTTP exporter to the sink
  openllmetry    opentelemetry-instrumentation-openai (OpenLLMetry), same OpenTelemetry pipeline
  langfuse       langfuse.openai drop-in client, Langfuse client pointed at the sink

Each variant runs in a fresh interpreter, so no two libraries patch openai at once, and the
rounds interleave the variants so that drift in machine load hits all of them alike.

Inside each interpreter the timed calls alternate between blocks with the tracing library's
patches in place and blocks with openai's own methods put back (`Patches`). The "added" time
of a variant is the difference between those two medians in the same process. Comparing
separate processes instead gave kaizen 156 and 230 microseconds added in two runs of
identical code (2026-12-05, 2-core AMD EPYC), a spread as large as the whole overhead of a
light tracer. The "bare" variant has nothing to swap, so its added time shows the noise left.

    .venv/bin/pip install -r benchmarks/requirements.txt
    .venv/bin/python benchmarks/exporter_overhead.py --calls 2000 --blocks 10 --rounds 5
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VARIANTS = ("bare", "kaizen", "kaizen-stdjson", "openinference", "openllmetry", "langfuse")
KAIZEN_VARIANTS = ("kaizen", "kaizen-stdjson")
WARMUP_CALLS = 300

COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "The printer on floor 3 jams on duplex jobs; replace the fuser."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 42, "completion_tokens": 14, "total_tokens": 56},
}

SUMMARIZE_PROMPT = "Summarize this support ticket in one line for the on-call engineer: {ticket}"
TICKETS = [
    "The printer on floor 3 jams whenever someone prints double-sided. Tried restarting it twice.",
    "VPN disconnects every 20 minutes since the client update on Monday; Wi-Fi is fine otherwise.",
    "Cannot open the quarterly report in the shared drive: 'file is locked by another user'.",
]


# ----- no-op sink ------------------------------------------------------------------------


class _SinkHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # Without TCP_NODELAY the body, written after the headers, waits for a delayed ACK
        # (about 40 ms on Linux) and the sink would throttle every exporter to a crawl.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _drain_and_answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = b'{"items": []}'
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        self.wfile.write(head.encode() + body)

    do_POST = _drain_and_answer
    do_GET = _drain_and_answer


def start_sink() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SinkHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# ----- worker: one variant in a fresh interpreter ----------------------------------------


def _mock_http_client():
    import httpx2

    payload = json.dumps(COMPLETION).encode()

    def handler(request):
        return httpx2.Response(200, content=payload, headers={"Content-Type": "application/json"})

    return httpx2.Client(transport=httpx2.MockTransport(handler))


def _otel_provider(sink: str):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{sink}/v1/traces")))
    return provider


def setup_variant(variant: str, sink: str):
    """Instrument openai for `variant`; return (client, finish) where finish() flushes and reports."""
    import openai

    if variant == "langfuse":
        from langfuse import Langfuse
        from langfuse.openai import OpenAI as LangfuseOpenAI

        langfuse = Langfuse(public_key="pk-lf-bench", secret_key="sk-lf-bench", base_url=sink)
        client = LangfuseOpenAI(api_key="sk-bench", http_client=_mock_http_client(), max_retries=0)
        return client, lambda: (langfuse.flush(), {})[1]

    client = openai.OpenAI(api_key="sk-bench", http_client=_mock_http_client(), max_retries=0)
    if variant == "bare":
        return client, lambda: {}

    if variant in KAIZEN_VARIANTS:
        if variant == "kaizen-stdjson":
            sys.modules["orjson"] = None  # makes `import orjson` raise ImportError
        import kaizen_sdk

        kaizen_sdk.instrument(openai, api_key="bench-key", base_url=sink)

        def finish() -> dict:
            kaizen_sdk.flush(30)
            return kaizen_sdk.stats()

        return client, finish

    provider = _otel_provider(sink)
    if variant == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor
    elif variant == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    else:
        raise SystemExit(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")

    OpenAIInstrumentor().instrument(tracer_provider=provider)
    return client, lambda: (provider.force_flush(30_000), {})[1]


def summarize_ticket(client, index: int):
    # The prompt template lives in a module constant, as in real code: kaizen-sdk names the
    # task SUMMARIZE_PROMPT from it, so its task detection is part of what is measured.
    ticket = TICKETS[index % len(TICKETS)]
    return client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "You are a terse assistant for an IT help desk."},
            {"role": "user", "content": SUMMARIZE_PROMPT.format(ticket=ticket)},
        ],
        temperature=0,
        max_tokens=64,
    )


class _CollectionTimer:
    """Count the garbage collector's runs and their time through ``gc.callbacks``.

    The bare client frees nearly everything it allocates by reference counting (one
    collection in 3,000 calls here), so collections during the timed calls are mostly cost
    that tracing added.
    """

    def __init__(self) -> None:
        self.runs = 0
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return

        self.runs += 1
        self.seconds += time.perf_counter() - self._started


class Patches:
    """The attributes a tracing library changed on openai's classes, taken out and put back between blocks.

    Every library here patches methods on these classes: kaizen-sdk, OpenLLMetry and Langfuse
    wrap ``Completions.create`` (Langfuse also ``Stream.__iter__``), and OpenInference adds
    ``OpenAI.request``.
    """

    def __init__(self, before: dict[type, dict[str, object]]) -> None:
        self._changes: list[tuple[type, str, object, object]] = []
        for cls, names in before.items():
            for name, value in list(cls.__dict__.items()):
                if names.get(name, _ABSENT) is not value:
                    self._changes.append((cls, name, names.get(name, _ABSENT), value))

    @staticmethod
    def snapshot() -> dict[type, dict[str, object]]:
        import openai
        from openai.resources.chat.completions import Completions

        return {cls: dict(cls.__dict__) for cls in (Completions, openai.OpenAI, openai.Stream)}

    @property
    def names(self) -> list[str]:
        return [f"{cls.__name__}.{name}" for cls, name, _, _ in self._changes]

    def apply(self, traced: bool) -> None:
        for cls, name, original, patched in self._changes:
            value = patched if traced else original
            if value is not _ABSENT:
                setattr(cls, name, value)
            elif name in cls.__dict__:
                delattr(cls, name)


_ABSENT = object()


class _ModeTotals:
    """Durations and CPU times of the calls made in one mode (traced or bare)."""

    def __init__(self) -> None:
        self.durations: list[int] = []
        self.thread_cpu = 0.0
        self.cpu = 0.0
        self.wall = 0.0

    def summary(self, collections: _CollectionTimer) -> dict:
        calls = len(self.durations)
        ordered = sorted(self.durations)
        return {
            "median_us": statistics.median(ordered) / 1000,
            "p99_us": ordered[int(calls * 0.99)] / 1000,
            # CPU time of the calling thread per call: what tracing adds on the caller, and less
            # sensitive to other processes on the machine than wall time.
            "caller_cpu_us": self.thread_cpu / calls * 1e6,
            # Process CPU time per call, background threads included: the full cost of tracing.
            "cpu_us_per_call": self.cpu / calls * 1e6,
            "wall_us_per_call": self.wall / calls * 1e6,
            # Garbage collections during the timed calls, on any thread of the process.
            "gc_runs": collections.runs,
            "gc_us_per_call": collections.seconds / calls * 1e6,
        }


def run_worker(variant: str, sink: str, calls: int, blocks: int) -> dict:
    before = Patches.snapshot()
    client, finish = setup_variant(variant, sink)
    patches = Patches(before)
    for traced in (False, True):
        patches.apply(traced)
        for index in range(WARMUP_CALLS):
            summarize_ticket(client, index)

    totals = {True: _ModeTotals(), False: _ModeTotals()}
    collections = {True: _CollectionTimer(), False: _CollectionTimer()}
    block_calls = max(1, calls // blocks)
    for block in range(2 * blocks):
        # Alternate the order within each pair of blocks, so neither mode always goes first.
        traced = (block % 2 == 0) == (block // 2 % 2 == 0)
        patches.apply(traced)
        mode = totals[traced]
        gc.callbacks.append(collections[traced])
        cpu_started = time.process_time()
        thread_started = time.thread_time()
        wall_started = time.perf_counter()
        for index in range(block_calls):
            started = time.perf_counter_ns()
            summarize_ticket(client, index)
            mode.durations.append(time.perf_counter_ns() - started)
        mode.wall += time.perf_counter() - wall_started
        mode.thread_cpu += time.thread_time() - thread_started
        mode.cpu += time.process_time() - cpu_started
        gc.callbacks.remove(collections[traced])

    patches.apply(True)
    extra = finish()
    traced_summary = totals[True].summary(collections[True])
    bare_summary = totals[False].summary(collections[False])
    return {
        "variant": variant,
        "calls": block_calls * blocks,
        "patched": patches.names,
        **traced_summary,
        "bare": bare_summary,
        "stats": extra,
    }


# ----- parent: rounds, table ---------------------------------------------------------------


def run_round(variants: list[str], sink: str, calls: int, blocks: int) -> list[dict]:
    results = []
    for variant in variants:
        completed = subprocess.run(
            [sys.executable, __file__, "--worker", variant, "--sink", sink, "--calls", str(calls), "--blocks", str(blocks)],
            capture_output=True,
            text=True,
            env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "OTEL_SDK_DISABLED": "false"},
            timeout=900,
        )
        if completed.returncode != 0:
            raise SystemExit(f"variant {variant} failed:\n{completed.stderr[-3000:]}")
        results.append(json.loads(completed.stdout.strip().splitlines()[-1]))
    return results


# (key in a worker's result, label): the per-call figures whose traced - bare difference is "added"
ADDED_METRICS = (("median_us", "wall median"), ("caller_cpu_us", "caller CPU"), ("cpu_us_per_call", "process CPU"))


def added(result: dict, metric: str) -> float:
    """Return what tracing added to ``metric`` in one worker: traced blocks minus bare blocks."""
    return result[metric] - result["bare"][metric]


def round_ratios(rounds: list[list[dict]], variant: str, peer: str) -> list[float]:
    """Return, for each round, the added wall median of ``variant`` over that of ``peer``.

    The spread of these ratios shows how much of the difference between runs is noise.
    """
    ratios = []
    for round_results in rounds:
        by_name = {result["variant"]: result for result in round_results}
        if variant not in by_name or peer not in by_name:
            continue

        peer_added = added(by_name[peer], "median_us")
        if peer_added > 0:
            ratios.append(added(by_name[variant], "median_us") / peer_added)

    return ratios


def summarize(results: list[dict]) -> dict:
    """Return the medians over rounds of one variant's figures and of its added figures."""
    row = {
        name: statistics.median(result[name] for result in results)
        for name in ("median_us", "p99_us", "caller_cpu_us", "cpu_us_per_call", "gc_runs", "gc_us_per_call")
    }
    row["bare_median_us"] = statistics.median(result["bare"]["median_us"] for result in results)
    row["bare_gc_runs"] = statistics.median(result["bare"]["gc_runs"] for result in results)
    for metric, _ in ADDED_METRICS:
        row[f"added_{metric}"] = statistics.median(added(result, metric) for result in results)
    row["stats"] = results[-1]["stats"]
    row["patched"] = results[-1]["patched"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="timed calls per variant, mode and round")
    parser.add_argument("--blocks", type=int, default=10, help="blocks per mode; traced and bare blocks alternate")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; each runs every variant once")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--sink", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(run_worker(args.worker, args.sink, args.calls, args.blocks)))
        return

    variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    server, sink = start_sink()
    rounds = []
    for number in range(args.rounds):
        # Rotate the order so no variant always runs first or last.
        order = variants[number % len(variants):] + variants[: number % len(variants)]
        rounds.append(run_round(order, sink, args.calls, args.blocks))
        print(f"round {number + 1}/{args.rounds} done", file=sys.stderr)
    server.shutdown()

    by_variant = {name: [result for round_results in rounds for result in round_results if result["variant"] == name] for name in variants}
    summary = {name: summarize(results) for name, results in by_variant.items()}

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}")
    print(
        f"load average at end: {os.getloadavg()[0]:.2f}; {args.rounds} rounds x {args.calls} calls per variant and mode, "
        f"in {args.blocks} blocks per mode"
    )
    print("all figures in microseconds per call, medians over rounds. 'bare' and 'added' come from the same process:")
    print("its blocks without the patches, and traced minus bare. GC: collections during the traced blocks")
    header = (
        f"{'variant':<14} {'bare median':>11} {'traced':>8} {'added':>7} {'wall p99':>9} {'caller CPU':>10} {'added':>7} "
        f"{'process CPU':>11} {'added':>7} {'GC runs':>7} {'GC':>6}"
    )
    print(header)
    print("-" * len(header))
    for name, row in summary.items():
        print(
            f"{name:<14} {row['bare_median_us']:>11.1f} {row['median_us']:>8.1f} {row['added_median_us']:>7.1f} {row['p99_us']:>9.1f} "
            f"{row['caller_cpu_us']:>10.1f} {row['added_caller_cpu_us']:>7.1f} {row['cpu_us_per_call']:>11.1f} {row['added_cpu_us_per_call']:>7.1f} "
            f"{row['gc_runs']:>7.0f} {row['gc_us_per_call']:>6.1f}"
        )
    print("patched: " + "; ".join(f"{name} {', '.join(row['patched']) or '(nothing)'}" for name, row in summary.items()))

    peers = {name: row for name, row in summary.items() if name not in ("bare", *KAIZEN_VARIANTS)}
    for variant in KAIZEN_VARIANTS:
        kaizen = summary.get(variant)
        if not (kaizen and peers):
            continue

        print()
        print(f"ratio {variant} added / peer added:   " + "   ".join(label for _, label in ADDED_METRICS))
        for name, row in peers.items():
            print(f"  {name:<30} " + "   ".join(
                f"{kaizen[f'added_{metric}'] / row[f'added_{metric}']:>{len(label)}.2f}" for metric, label in ADDED_METRICS
            ))
        for metric, label in ADDED_METRICS[:2]:
            best = min(peers, key=lambda name: peers[name][f"added_{metric}"])
            ratio = kaizen[f"added_{metric}"] / peers[best][f"added_{metric}"]
            print(f"goal ({variant} added <= 0.25 x best peer), {label}: best peer {best}, ratio {ratio:.2f}, {'met' if ratio <= 0.25 else 'NOT met'}")
        best_wall = min(peers, key=lambda name: peers[name]["added_median_us"])
        per_round = round_ratios(rounds, variant, best_wall)
        if per_round:
            ratios_text = ", ".join(f"{ratio:.2f}" for ratio in per_round)
            met = sum(1 for ratio in per_round if ratio <= 0.25)
            print(f"wall-median ratio to {best_wall} in each round: {ratios_text} (goal met in {met} of {len(per_round)})")
        print(f"{variant} exporter stats in the last round: {kaizen['stats']}")


if __name__ == "__main__":
    main()
