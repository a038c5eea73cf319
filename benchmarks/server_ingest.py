"""Ingest throughput of the CT server beside a raw bulk insert into the same database.

For each backend: start `kaizen serve` on a fresh database, send N traces of about 2 KB in
batches of 100 through `POST /api/v1/ingest` from C client threads, and time it. Insert the
same rows (new ids, another project) straight into the `traces` table with SQLAlchemy Core,
one executemany and one commit per 100 rows, and time that. The two alternate in rounds, so
both see the same load when the machine is shared. The ratio shows what the API
costs on top of the database: HTTP, JSON, validation, idempotency, prompt versions, rollups.

    .venv/bin/python benchmarks/server_ingest.py --traces 20000 --clients 2
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
from server_common import fresh_database, machine_description, make_trace, running_server, utc_start

from kaizen_server.store import Store
from kaizen_server.store.schema import traces as traces_table
from kaizen_server.wire import TraceIn

TASKS = ["SUMMARIZE_PROMPT", "CLASSIFY_PROMPT", "REPLY_PROMPT", "EXTRACT_PROMPT", "TRANSLATE_PROMPT"]


def build_batches(count: int, batch_size: int) -> list[list[dict]]:
    start = utc_start(1)
    traces = [make_trace(TASKS[index % len(TASKS)], start + timedelta(milliseconds=index * 50), index) for index in range(count)]
    return [traces[offset:offset + batch_size] for offset in range(0, count, batch_size)]


def api_seconds(client: httpx.Client, batches: list[list[dict]], clients: int) -> float:
    """Send the batches; the request bodies are encoded before the clock starts.

    The client threads share the machine's cores with the server, and the raw insert gets its
    rows prepared outside the timed part too, so neither side pays for building its input.
    """
    requests = [(json.dumps({"traces": batch}).encode(), len(batch)) for batch in batches]

    def send(request: tuple[bytes, int]) -> None:
        body, count = request
        response = client.post("/api/v1/ingest", content=body, headers={"Content-Type": "application/json"})
        response.raise_for_status()
        if response.json()["accepted"] != count:
            raise RuntimeError(f"not every trace was accepted: {response.text[:500]}")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(send, requests))
    return time.perf_counter() - started


def raw_rows(project_id: int, batches: list[list[dict]]) -> list[list[dict]]:
    """Turn wire traces into `traces` rows, outside the timed part."""
    now = utc_start(0).replace(tzinfo=None)
    rows_per_batch = []
    for batch in batches:
        rows = []
        for raw in batch:
            row = TraceIn.model_validate({**raw, "id": str(uuid.uuid4())}).model_dump(exclude={"template"})
            row.update(project_id=project_id, received_at=now, prompt_version_id=None,
                       score=None, scored_by=None, score_name=None, scored_at=None)
            rows.append(row)
        rows_per_batch.append(rows)
    return rows_per_batch


def raw_seconds(store: Store, rows_per_batch: list[list[dict]]) -> float:
    """Insert rows with plain executemany, one transaction per batch."""
    started = time.perf_counter()
    for rows in rows_per_batch:
        with store.engine.begin() as connection:
            connection.execute(traces_table.insert(), rows)
    return time.perf_counter() - started


def run_backend(backend: str, count: int, batch_size: int, clients: int, workers: int, rounds: int) -> dict:
    """Alternate API and raw rounds, so both see the same load on a shared machine."""
    batches = build_batches(count + batch_size, batch_size)
    warm_up, batches = batches[0], batches[1:]
    per_round = max(1, len(batches) // rounds)
    api_total = raw_total = 0.0
    with fresh_database(backend) as db_url:
        store = Store(db_url)
        store.upgrade()
        key, _ = store.create_key("api-ingest", "bench")
        _, raw_key = store.create_key("raw-insert", "bench")
        with running_server(db_url, workers=workers) as base_url, httpx.Client(
            base_url=base_url, headers={"X-API-Key": key}, timeout=60, limits=httpx.Limits(max_connections=clients)
        ) as client:
            api_seconds(client, [warm_up], 1)
            for start in range(0, len(batches), per_round):
                chunk = batches[start:start + per_round]
                api_total += api_seconds(client, chunk, clients)
                raw_total += raw_seconds(store, raw_rows(raw_key.project_id, chunk))
        store.close()

    sent = len(batches) * batch_size
    return {"backend": backend, "api": sent / api_total, "raw": sent / raw_total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--traces", type=int, default=20_000, help="traces to send per backend (default 20000)")
    parser.add_argument("--batch", type=int, default=100, help="traces per request (default 100)")
    parser.add_argument("--clients", type=int, default=2, help="concurrent client threads (default 2)")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (default 1)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating API and raw-insert rounds (default 5)")
    args = parser.parse_args()

    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    print(f"machine: {machine_description()}")
    print(f"{args.traces} traces of ~2 KB, batches of {args.batch}, {args.clients} clients, {args.workers} server worker(s)")
    print(f"{'backend':<10} {'API traces/s':>14} {'raw insert rows/s':>18} {'API / raw':>10}")
    for backend in backends:
        result = run_backend(backend, args.traces, args.batch, args.clients, args.workers, args.rounds)
        print(f"{backend:<10} {result['api']:>14,.0f} {result['raw']:>18,.0f} {result['api'] / result['raw']:>10.2f}")


if __name__ == "__main__":
    main()
