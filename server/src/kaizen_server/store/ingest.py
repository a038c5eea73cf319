"""Writing traces and scores: idempotent batch ingest and the attach-later score rule.

One batch is one transaction with a fixed number of statements, whatever its size. One SELECT
of the batch's ids finds both the duplicates and the scores that arrived before their trace,
one multi-row INSERT stores the rest, and the rollups get one additive upsert per table.

A score names a trace by id and may arrive first. It is stored in `scores` either way; the
latest score of a trace is copied onto the trace row whenever either side arrives. On
PostgreSQL, a transaction-scoped advisory lock per (project, trace id) serialises a trace and
its scores arriving concurrently in different processes, which would otherwise both miss each
other; SQLite needs none because BEGIN IMMEDIATE admits one writer at a time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Iterable, Sequence

from sqlalchemy import String, any_, Connection, bindparam, func, literal_column, null, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects import postgresql, sqlite

from kaizen_server.store.rollups import (
    RollupKey,
    apply_score_changes,
    apply_trace_deltas,
    deltas_for_traces,
    hour_of,
)
from kaizen_server.store.schema import prompt_versions, scores, traces
from kaizen_server.wire import ScoreIn, TraceIn, utc_now

VERSION_CACHE_SIZE = 100_000
# {(database URL, project id, task, template hash): prompt version id}
_VERSION_CACHE: dict[tuple, int] = {}

ACCEPTED = "accepted"
DUPLICATE = "duplicate"


@dataclass(frozen=True)
class LatestScore:
    score: float
    scored_by: str
    name: str | None
    created_at: object
    pk: int


def template_hash(template: str) -> str:
    return hashlib.sha256(template.encode("utf-8")).hexdigest()


def _insert_for(connection: Connection):
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


def id_in(connection: Connection, column, ids: Sequence[str]):
    """Return `column IN ids`; on PostgreSQL as `= ANY(array)`, one parameter instead of one per id."""
    if connection.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(ids), type_=ARRAY(String)))

    return column.in_(list(ids))


def _lock_trace_ids(connection: Connection, project_id: int, trace_ids: Iterable[str]) -> None:
    if connection.dialect.name != "postgresql":
        return

    keys = sorted({
        int.from_bytes(hashlib.blake2b(f"{project_id}:{trace_id}".encode(), digest_size=8).digest(), "big", signed=True)
        for trace_id in trace_ids
    })
    if not keys:
        return

    # The ordered subquery makes every transaction take its locks in ascending order.
    connection.execute(
        text("SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY k) AS ordered"),
        {"keys": keys},
    )


def _select_versions(connection: Connection, project_id: int, wanted) -> dict[tuple[str, str], int]:
    rows = connection.execute(
        select(prompt_versions.c.id, prompt_versions.c.task, prompt_versions.c.template_hash).where(
            prompt_versions.c.project_id == project_id,
            id_in(connection, prompt_versions.c.template_hash, sorted({digest for _, digest in wanted})),
        )
    )
    return {(row.task, row.template_hash): row.id for row in rows if (row.task, row.template_hash) in wanted}


def _prompt_version_ids(
    connection: Connection, project_id: int, items: Sequence[TraceIn], digests: dict[str, str]
) -> dict[tuple[str, str], int]:
    """Return {(task, template hash): prompt version id}, creating the versions not seen before.

    `digests` maps each template of `items` to its hash. Ids come from a process-wide cache
    when possible, because a prompt version row never changes or goes away once committed.
    Only ids found by a SELECT that ran before this transaction inserted anything are cached,
    so an id from a rolled-back insert never is.
    """
    wanted: dict[tuple[str, str], str] = {}
    for item in items:
        if item.template is not None:
            wanted.setdefault((item.task, digests[item.template]), item.template)
    if not wanted:
        return {}

    cache_prefix = (connection.engine.url.render_as_string(), project_id)
    found = {key: _VERSION_CACHE[cache_prefix + key] for key in wanted if cache_prefix + key in _VERSION_CACHE}
    missing = {key: template for key, template in wanted.items() if key not in found}
    if not missing:
        return found

    committed = _select_versions(connection, project_id, missing)
    if len(_VERSION_CACHE) > VERSION_CACHE_SIZE:
        _VERSION_CACHE.clear()
    for key, version_id in committed.items():
        _VERSION_CACHE[cache_prefix + key] = version_id
    found.update(committed)
    missing = {key: template for key, template in missing.items() if key not in committed}
    if not missing:
        return found

    now = utc_now()
    insert = _insert_for(connection)
    connection.execute(
        insert(prompt_versions).on_conflict_do_nothing(index_elements=["project_id", "task", "template_hash"]),
        [
            {"project_id": project_id, "task": task, "template_hash": digest, "template": template, "first_seen": now}
            for (task, digest), template in sorted(missing.items())
        ],
    )
    found.update(_select_versions(connection, project_id, missing))
    return found


def _trace_row(project_id: int, item: TraceIn, version_id: int | None, now) -> dict:
    return {
        "project_id": project_id,
        "id": item.id,
        "task": item.task,
        "prompt_version_id": version_id,
        "messages": item.messages,
        "prompt_text": item.prompt_text,
        "response_text": item.response_text,
        "response": item.response,
        "model": item.model,
        "prompt_tokens": item.prompt_tokens,
        "completion_tokens": item.completion_tokens,
        "total_tokens": item.total_tokens,
        "latency_ms": item.latency_ms,
        "started_at": item.started_at,
        "error": item.error,
        "incomplete": item.incomplete,
        "source_variable": item.source_variable,
        "source_file": item.source_file,
        "source_line": item.source_line,
        "detection_rule": item.detection_rule,
        "inputs": item.inputs,
        "library": item.library,
        "parameters": item.parameters,
        "received_at": now,
        "score": None,
        "scored_by": None,
        "score_name": None,
        "scored_at": None,
    }


def _keep_latest(latest: dict[str, LatestScore], row) -> None:
    """Record the score in `row` as its trace's latest unless a later one (by created_at, then arrival) is known."""
    candidate = LatestScore(row.score, row.scored_by, row.name, row.created_at, row.pk)
    current = latest.get(row.trace_id)
    if current is None or (candidate.created_at, candidate.pk) > (current.created_at, current.pk):
        latest[row.trace_id] = candidate


def _latest_scores(connection: Connection, project_id: int, trace_ids: Iterable[str]) -> dict[str, LatestScore]:
    """Return the latest score (by created_at, then arrival) of each trace id that has one."""
    trace_ids = sorted(set(trace_ids))
    if not trace_ids:
        return {}

    rows = connection.execute(
        select(scores.c.trace_id, scores.c.score, scores.c.scored_by, scores.c.name, scores.c.created_at, scores.c.pk)
        .where(scores.c.project_id == project_id, id_in(connection, scores.c.trace_id, trace_ids))
    )
    latest: dict[str, LatestScore] = {}
    for row in rows:
        _keep_latest(latest, row)

    return latest


def _ids_param(dialect: str, column, name: str):
    """Return `column IN :name` with the list bound as one parameter, for a statement built once.

    PostgreSQL takes the list as an array. SQLite takes it as JSON text and reads it with
    json_each(), because an expanding IN parameter makes SQLAlchemy render the statement
    again with one placeholder per id on every execution (see `_ids_value`).
    """
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(String)))

    return column.in_(select(literal_column("value")).select_from(func.json_each(bindparam(name, type_=String))))


def _ids_value(dialect: str, ids: list[str]):
    """Return `ids` in the form that a parameter of `_ids_param` takes on `dialect`."""
    if dialect == "postgresql":
        return ids

    return json.dumps(ids)


# {dialect name: the statement of _stored_ids_and_scores}; building it costs about as much as running it.
_STORED_IDS_AND_SCORES: dict[str, object] = {}


def _stored_ids_and_scores_statement(dialect: str):
    cached = _STORED_IDS_AND_SCORES.get(dialect)
    if cached is not None:
        return cached

    score_rows = select(
        literal_column("'s'").label("kind"), scores.c.trace_id.label("trace_id"), scores.c.score, scores.c.scored_by,
        scores.c.name, scores.c.created_at, scores.c.pk,
    ).where(scores.c.project_id == bindparam("project_id"), _ids_param(dialect, scores.c.trace_id, "score_trace_ids"))
    trace_rows = select(
        literal_column("'t'"), traces.c.id, null(), null(), null(), null(), null(),
    ).where(traces.c.project_id == bindparam("project_id"), _ids_param(dialect, traces.c.id, "trace_ids"))
    _STORED_IDS_AND_SCORES[dialect] = score_rows.union_all(trace_rows)
    return _STORED_IDS_AND_SCORES[dialect]


def _stored_ids_and_scores(connection: Connection, project_id: int, trace_ids: Sequence[str]) -> tuple[set[str], dict[str, LatestScore]]:
    """Return (the trace ids already stored, the latest stored score of each trace id that has one).

    One statement instead of two saves a round trip per batch on PostgreSQL. The scores of a
    trace that is not stored yet arrived before it and attach when it is inserted. The scores
    branch comes first because a UNION takes its result types from its first SELECT, and
    SQLite needs the DateTime type to return `created_at` as a datetime.
    """
    dialect = connection.dialect.name
    statement = _stored_ids_and_scores_statement(dialect)
    trace_ids = _ids_value(dialect, list(trace_ids))
    params = {"project_id": project_id, "score_trace_ids": trace_ids, "trace_ids": trace_ids}

    existing: set[str] = set()
    latest: dict[str, LatestScore] = {}
    for row in connection.execute(statement, params):
        if row.kind == "t":
            existing.add(row.trace_id)
            continue

        _keep_latest(latest, row)

    return existing, latest


_SET_LATEST_SCORE = (
    update(traces)
    .where(traces.c.pk == bindparam("row_pk"))
    .values(
        score=bindparam("new_score"),
        scored_by=bindparam("new_scored_by"),
        score_name=bindparam("new_score_name"),
        scored_at=bindparam("new_scored_at"),
    )
)


def _latest_params(pk: int, latest: LatestScore) -> dict:
    return {
        "row_pk": pk,
        "new_score": latest.score,
        "new_scored_by": latest.scored_by,
        "new_score_name": latest.name,
        "new_scored_at": latest.created_at,
    }


def insert_traces(connection: Connection, project_id: int, items: Sequence[TraceIn]) -> dict[str, str]:
    """Store new traces; return {trace id: "accepted" | "duplicate"}. Ids must be unique in `items`.

    The caller holds the advisory locks of these ids (PostgreSQL) or the database write lock
    (SQLite), so no other transaction can insert one of them before this one commits. A
    SELECT therefore separates new ids from duplicates. On PostgreSQL that is several times
    faster than INSERT ... RETURNING on a multi-row insert. ON CONFLICT DO NOTHING stays as a
    safety net.
    """
    if not items:
        return {}

    existing, pending = _stored_ids_and_scores(connection, project_id, [item.id for item in items])
    new_items = [item for item in items if item.id not in existing]
    if new_items:
        now = utc_now()
        # A batch usually repeats a few templates many times, so each is hashed once.
        digests = {template: template_hash(template) for template in {item.template for item in new_items} if template is not None}
        versions = _prompt_version_ids(connection, project_id, new_items, digests)
        rows = []
        for item in new_items:
            version_id = versions.get((item.task, digests[item.template])) if item.template is not None else None
            row = _trace_row(project_id, item, version_id, now)
            latest = pending.get(item.id)
            if latest is not None:
                row.update(score=latest.score, scored_by=latest.scored_by, score_name=latest.name, scored_at=latest.created_at)
            rows.append(row)

        insert = _insert_for(connection)
        connection.execute(insert(traces).on_conflict_do_nothing(index_elements=["project_id", "id"]), rows)
        apply_trace_deltas(connection, project_id, deltas_for_traces(rows))

    return {item.id: DUPLICATE if item.id in existing else ACCEPTED for item in items}


def insert_scores(connection: Connection, project_id: int, items: Sequence[ScoreIn]) -> tuple[dict[str, str], set[str]]:
    """Store new scores and update the latest score of their traces.

    Returns ({score id: "accepted" | "duplicate"}, the ids of scores whose trace is not stored
    yet). Score ids must be unique in `items`.
    """
    if not items:
        return {}, set()

    now = utc_now()
    rows = [
        {
            "project_id": project_id,
            "id": item.id,
            "trace_id": item.trace_id,
            "score": item.score,
            "scored_by": item.scored_by,
            "name": item.name,
            "comment": item.comment,
            "created_at": item.created_at or now,
            "received_at": now,
        }
        for item in items
    ]
    insert = _insert_for(connection)
    result = connection.execute(
        insert(scores).on_conflict_do_nothing(index_elements=["project_id", "id"]).returning(scores.c.id, scores.c.trace_id),
        rows,
    )
    accepted = {row.id: row.trace_id for row in result}
    statuses = {item.id: ACCEPTED if item.id in accepted else DUPLICATE for item in items}
    touched = set(accepted.values())
    if not touched:
        return statuses, set()

    trace_rows = connection.execute(
        select(traces.c.pk, traces.c.id, traces.c.task, traces.c.prompt_version_id, traces.c.started_at,
               traces.c.score, traces.c.scored_by, traces.c.score_name, traces.c.scored_at)
        .where(traces.c.project_id == project_id, id_in(connection, traces.c.id, sorted(touched)))
    ).all()
    found = {row.id for row in trace_rows}
    pending = {score_id for score_id, trace_id in accepted.items() if trace_id not in found}

    latest = _latest_scores(connection, project_id, found)
    updates = []
    changes: dict[RollupKey, tuple[int, float]] = {}
    for row in trace_rows:
        new = latest[row.id]
        if (row.score, row.scored_by, row.score_name, row.scored_at) == (new.score, new.scored_by, new.name, new.created_at):
            continue

        updates.append(_latest_params(row.pk, new))
        key = (row.task, row.prompt_version_id or 0, hour_of(row.started_at))
        count, total = changes.get(key, (0, 0.0))
        if row.score is None:
            changes[key] = (count + 1, total + new.score)
        else:
            changes[key] = (count, total + new.score - row.score)

    if updates:
        connection.execute(_SET_LATEST_SCORE, updates)
    apply_score_changes(connection, project_id, changes)
    return statuses, pending


def ingest_batch(connection: Connection, project_id: int, trace_items: Sequence[TraceIn], score_items: Sequence[ScoreIn]):
    """Store a batch of traces and scores in the caller's transaction.

    Returns (trace statuses, score statuses, ids of scores whose trace is not stored yet).
    """
    _lock_trace_ids(connection, project_id, [item.id for item in trace_items] + [item.trace_id for item in score_items])
    trace_statuses = insert_traces(connection, project_id, trace_items)
    score_statuses, pending = insert_scores(connection, project_id, score_items)
    return trace_statuses, score_statuses, pending
