"""Rollup rows after several ingest batches equal the sums recomputed from the stored traces.

Later batches add to rows that earlier batches created, so the conflict branch of every
additive upsert runs, on both databases.
"""

from __future__ import annotations

from sqlalchemy import select, text

from kaizen_server.store.rollups import LEVELS, deltas_for_traces
from kaizen_server.store.schema import traces
from server_test_data import make_score, make_trace


def _stored(store, table, project_id: int) -> dict:
    with store.engine.connect() as connection:
        rows = connection.execute(select(table).where(table.c.project_id == project_id)).mappings().all()
    return {tuple(row[column.name] for column in table.primary_key.columns): dict(row) for row in rows}


def test_rollups_match_recomputed_sums(api, store):
    batches = [
        [
            make_trace(task=f"T{index % 3}", started_at=f"2026-03-0{1 + index % 2}T1{index % 4}:{index:02d}:00Z",
                       latency_ms=10.0 + 37 * (index % 5), template=None if index % 2 else "Hi {name}")
            for index in range(offset, offset + 20)
        ]
        for offset in (0, 20, 40)
    ]
    for batch in batches:
        api.ingest(batch, [make_score(batch[0]["id"], 0.5)])
    project_id = store.find_key(api.key).project_id

    with store.engine.connect() as connection:
        rows = [dict(row) for row in connection.execute(select(traces).where(traces.c.project_id == project_id)).mappings()]
    hourly = deltas_for_traces(rows)
    assert sum(delta.trace_count for delta in hourly.values()) == 60

    for rollups, histograms, bucket_of in LEVELS:
        expected: dict = {}
        for (task, version, hour), delta in hourly.items():
            key = (task, version, bucket_of(hour))
            totals = expected.setdefault(key, {"trace_count": 0, "scored_count": 0, "score_sum": 0.0, "latency_sum": 0.0, "bins": {}})
            totals["trace_count"] += delta.trace_count
            totals["scored_count"] += delta.scored_count
            totals["score_sum"] += delta.score_sum
            totals["latency_sum"] += delta.latency_sum
            for index, count in delta.histogram.items():
                totals["bins"][index] = totals["bins"].get(index, 0) + count

        stored = _stored(store, rollups, project_id)
        stored_bins = _stored(store, histograms, project_id)
        assert set(stored) == {(project_id, *key) for key in expected}
        for key, totals in expected.items():
            row = stored[(project_id, *key)]
            assert row["trace_count"] == totals["trace_count"], (rollups.name, key)
            assert row["scored_count"] == totals["scored_count"], (rollups.name, key)
            assert abs(row["score_sum"] - totals["score_sum"]) < 1e-9, (rollups.name, key)
            assert abs(row["latency_sum"] - totals["latency_sum"]) < 1e-6, (rollups.name, key)
            bins = {bin_key[-1]: bin_row["count"] for bin_key, bin_row in stored_bins.items() if bin_key[:4] == (project_id, *key)}
            assert bins == totals["bins"], (histograms.name, key)


def test_histogram_buckets_are_stored_like_rollup_buckets(api, store):
    # On SQLite, bucket_start is stored as text and window queries compare that text. A
    # histogram row in another text form than its rollup row would fall out of the window.
    api.ingest([make_trace(task="T", started_at="2026-03-01T10:15:00Z", latency_ms=12.0)], [])
    project_id = store.find_key(api.key).project_id

    with store.engine.connect() as connection:
        for rollups, histograms, _ in LEVELS:
            stored = {
                name: set(connection.execute(text(f"SELECT DISTINCT bucket_start FROM {name} WHERE project_id = :p"), {"p": project_id}).scalars())
                for name in (rollups.name, histograms.name)
            }
            assert len(stored[rollups.name]) == 1
            assert stored[histograms.name] == stored[rollups.name]
