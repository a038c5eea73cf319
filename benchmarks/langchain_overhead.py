"""Per-call overhead of tracing a LangChain chat model: kaizen-sdk against its peers.

Every variant calls `ChatOpenAI(...).invoke(...)` from the real langchain-openai package,
whose openai client is given an in-process mock transport (httpx2.MockTransport) that returns
a canned completion. The difference to the bare model is therefore the time the tracing
library adds on the caller's thread, plus whatever its background export costs while it
competes for the interpreter.

Variants, each with its exporter on and sending to a no-op HTTP sink on 127.0.0.1 (the one
in exporter_overhead.py):
  bare           langchain-openai without tracing
  kaizen         kaizen_sdk.instrument(openai) and instrument(langchain_core), background
                 exporter to the sink's /api/v1/ingest
  langsmith      LangChain's built-in LangSmith tracer (LANGSMITH_TRACING=true), endpoint set
                 to the sink
  langfuse       langfuse.langchain.CallbackHandler in the call's config, Langfuse client
                 pointed at the sink
  openinference  openinference-instrumentation-langchain, OpenTelemetry SDK,
                 BatchSpanProcessor, OTLP/HTTP exporter to the sink

Each variant runs in a fresh interpreter, so no two libraries hook LangChain at once, and the
rounds interleave the variants so that drift in machine load hits all of them alike.

    .venv/bin/pip install -r benchmarks/requirements.txt
    .venv/bin/python benchmarks/langchain_overhead.py --calls 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from exporter_overhead import COMPLETION, TICKETS, start_sink

VARIANTS = ("bare", "kaizen", "langsmith", "langfuse", "openinference")
WARMUP_CALLS = 200

SUMMARIZE_PROMPT = "Summarize this support ticket in one line for the on-call engineer: {ticket}"


def _mock_clients():
    import httpx2

    payload = json.dumps(COMPLETION).encode()

    def handler(request):
        return httpx2.Response(200, content=payload, headers={"Content-Type": "application/json"})

    return httpx2.Client(transport=httpx2.MockTransport(handler))


def setup_variant(variant: str, sink: str):
    """Prepare `variant`; return (model, config, finish) where finish() flushes and reports."""
    if variant == "langsmith":
        # Read by langsmith when the first run is traced, so set before any LangChain call.
        os.environ.update(
            {"LANGSMITH_TRACING": "true", "LANGSMITH_ENDPOINT": sink, "LANGSMITH_API_KEY": "lsv2-bench"}
        )

    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(model="gpt-4o-mini", api_key="sk-bench", max_retries=0, temperature=0, http_client=_mock_clients())
    if variant == "bare":
        return model, None, lambda: {}

    if variant == "kaizen":
        import langchain_core
        import openai

        import kaizen_sdk

        kaizen_sdk.instrument(openai, api_key="bench-key", base_url=sink)
        kaizen_sdk.instrument(langchain_core, api_key="bench-key", base_url=sink)

        def finish() -> dict:
            kaizen_sdk.flush(30)
            return kaizen_sdk.stats()

        return model, None, finish

    if variant == "langsmith":
        from langchain_core.tracers.langchain import wait_for_all_tracers

        return model, None, lambda: (wait_for_all_tracers(), {})[1]

    if variant == "langfuse":
        from langfuse import Langfuse
        from langfuse.langchain import CallbackHandler

        langfuse = Langfuse(public_key="pk-lf-bench", secret_key="sk-lf-bench", base_url=sink)
        handler = CallbackHandler(public_key="pk-lf-bench")
        return model, {"callbacks": [handler]}, lambda: (langfuse.flush(), {})[1]

    if variant == "openinference":
        from openinference.instrumentation.langchain import LangChainInstrumentor
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{sink}/v1/traces")))
        LangChainInstrumentor().instrument(tracer_provider=provider)
        return model, None, lambda: (provider.force_flush(30_000), {})[1]

    raise SystemExit(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")


def summarize_ticket(model, config, index: int):
    # The template lives in a module constant, as in real code: kaizen-sdk names the task
    # SUMMARIZE_PROMPT from it, so its task detection is part of what is measured.
    ticket = TICKETS[index % len(TICKETS)]
    return model.invoke(
        [("system", "You are a terse assistant for an IT help desk."), ("human", SUMMARIZE_PROMPT.format(ticket=ticket))],
        config=config,
    )


def run_worker(variant: str, sink: str, calls: int) -> dict:
    model, config, finish = setup_variant(variant, sink)
    for index in range(WARMUP_CALLS):
        summarize_ticket(model, config, index)

    durations = []
    cpu_started = time.process_time()
    thread_started = time.thread_time()
    for index in range(calls):
        started = time.perf_counter_ns()
        summarize_ticket(model, config, index)
        durations.append(time.perf_counter_ns() - started)
    thread_cpu = time.thread_time() - thread_started
    cpu = time.process_time() - cpu_started

    extra = finish()
    durations.sort()
    return {
        "variant": variant,
        "median_us": statistics.median(durations) / 1000,
        "p99_us": durations[int(len(durations) * 0.99)] / 1000,
        # CPU time of the calling thread per call: what tracing adds on the caller.
        "caller_cpu_us": thread_cpu / calls * 1e6,
        # Process CPU time per call, background threads included: the full cost of tracing.
        "cpu_us_per_call": cpu / calls * 1e6,
        "stats": extra,
    }


def run_round(variants: list[str], sink: str, calls: int) -> list[dict]:
    results = []
    for variant in variants:
        completed = subprocess.run(
            [sys.executable, __file__, "--worker", variant, "--sink", sink, "--calls", str(calls)],
            capture_output=True,
            text=True,
            env={**os.environ, "OTEL_SDK_DISABLED": "false"},
            timeout=900,
        )
        if completed.returncode != 0:
            raise SystemExit(f"variant {variant} failed:\n{completed.stderr[-3000:]}")
        results.append(json.loads(completed.stdout.strip().splitlines()[-1]))
    return results


def print_summary(summary: dict, rounds: int, calls: int) -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}; {rounds} rounds x {calls} calls per variant")
    print("all figures in microseconds per call; 'added' is the difference to bare")
    header = f"{'variant':<14} {'wall median':>11} {'added':>7} {'wall p99':>9} {'caller CPU':>10} {'added':>7} {'process CPU':>11} {'added':>7}"
    print(header)
    print("-" * len(header))
    bare = summary["bare"]
    for name, row in summary.items():
        row["added_us"] = row["median_us"] - bare["median_us"]
        row["added_caller_cpu_us"] = row["caller_cpu_us"] - bare["caller_cpu_us"]
        row["added_cpu_us"] = row["cpu_us_per_call"] - bare["cpu_us_per_call"]
        print(
            f"{name:<14} {row['median_us']:>11.1f} {row['added_us']:>7.1f} {row['p99_us']:>9.1f} "
            f"{row['caller_cpu_us']:>10.1f} {row['added_caller_cpu_us']:>7.1f} {row['cpu_us_per_call']:>11.1f} {row['added_cpu_us']:>7.1f}"
        )

    kaizen = summary.get("kaizen")
    peers = {name: row for name, row in summary.items() if name not in ("bare", "kaizen")}
    if not kaizen or not peers:
        return

    print()
    print("ratio kaizen added / peer added:   wall median   caller CPU   process CPU")
    for name, row in peers.items():
        print(
            f"  {name:<30} {kaizen['added_us'] / row['added_us']:>11.2f} {kaizen['added_caller_cpu_us'] / row['added_caller_cpu_us']:>12.2f} "
            f"{kaizen['added_cpu_us'] / row['added_cpu_us']:>13.2f}"
        )
    print(f"kaizen exporter stats in the last round: {kaizen['stats']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per variant and round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; each runs every variant once")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--sink", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(run_worker(args.worker, args.sink, args.calls)))
        return

    variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    if "bare" not in variants:
        raise SystemExit("--variants must include bare: every figure is relative to it")

    server, sink = start_sink()
    rounds = []
    for number in range(args.rounds):
        # Rotate the order so no variant always runs first or last.
        order = variants[number % len(variants):] + variants[: number % len(variants)]
        rounds.append(run_round(order, sink, args.calls))
        print(f"round {number + 1}/{args.rounds} done", file=sys.stderr)
    server.shutdown()

    summary = {}
    for name in variants:
        results = [result for round_results in rounds for result in round_results if result["variant"] == name]
        summary[name] = {
            "median_us": statistics.median(result["median_us"] for result in results),
            "p99_us": statistics.median(result["p99_us"] for result in results),
            "caller_cpu_us": statistics.median(result["caller_cpu_us"] for result in results),
            "cpu_us_per_call": statistics.median(result["cpu_us_per_call"] for result in results),
            "stats": results[-1]["stats"],
        }
    print_summary(summary, args.rounds, args.calls)


if __name__ == "__main__":
    main()
