"""The API key cache: how long a revoked key keeps working, in this process and from another one."""

from __future__ import annotations

import pytest
from server_test_data import make_trace

from kaizen_server.store import Store
from kaizen_server.store.keys import KEY_CACHE_TTL_S, ApiKey, KeyCache, hash_key
from kaizen_server.wire import utc_now


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch, store) -> FakeClock:
    """Give the app's store a key cache on a clock that only the test moves."""
    fake = FakeClock()
    monkeypatch.setattr(store, "key_cache", KeyCache(clock=fake))
    return fake


def revoke_from_other_process(url: str, key_id: int) -> None:
    """Revoke as `kaizen keys revoke` does: through another Store, which cannot clear this process's cache."""
    other = Store(url)
    try:
        other.revoke_key(str(key_id))
    finally:
        other.close()


def test_key_revoked_elsewhere_works_until_ttl(http, store, api, clock):
    key, record = store.create_key(api.project, "revoked elsewhere")
    headers = {"X-API-Key": key}
    assert http.get("/api/v1/project", headers=headers).status_code == 200

    revoke_from_other_process(store.url, record.id)
    clock.now += KEY_CACHE_TTL_S - 0.1
    assert http.get("/api/v1/project", headers=headers).status_code == 200

    clock.now += 0.2
    response = http.get("/api/v1/project", headers=headers)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_key_revoked_elsewhere_ingest_stops_after_ttl(http, store, api, clock):
    key, record = store.create_key(api.project, "revoked elsewhere")
    headers = {"X-API-Key": key}
    assert http.post("/api/v1/ingest", json={"traces": [make_trace()]}, headers=headers).status_code == 200

    revoke_from_other_process(store.url, record.id)
    clock.now += KEY_CACHE_TTL_S + 0.1
    trace = make_trace()
    response = http.post("/api/v1/ingest", json={"traces": [trace]}, headers=headers)
    assert response.status_code == 401
    assert api.get(f"/api/v1/traces/{trace['id']}").status_code == 404


def test_key_revoked_in_process_fails_at_once(http, store, api, clock):
    key, record = store.create_key(api.project, "revoked here")
    headers = {"X-API-Key": key}
    assert http.get("/api/v1/project", headers=headers).status_code == 200

    store.revoke_key(str(record.id))
    response = http.post("/api/v1/ingest", json={"traces": [make_trace()]}, headers=headers)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_new_key_works_at_once(http, store, api, clock):
    assert http.get("/api/v1/project", headers={"X-API-Key": api.key}).status_code == 200

    key, _ = store.create_key(api.project, "new")
    assert http.get("/api/v1/project", headers={"X-API-Key": key}).status_code == 200


def _record(revoked: bool = False) -> ApiKey:
    now = utc_now()
    return ApiKey(1, 1, "p", None, "kz_abcdefg", now, now if revoked else None)


def test_cache_expires_after_ttl():
    clock = FakeClock()
    cache = KeyCache(ttl_s=5.0, clock=clock)
    cache.put(hash_key("kz_a"), _record(), cache.generation)
    assert cache.get(hash_key("kz_a")) is not None

    clock.now += 5.0
    assert cache.get(hash_key("kz_a")) is None


def test_cache_skips_revoked_record():
    cache = KeyCache(clock=FakeClock())
    cache.put(hash_key("kz_a"), _record(revoked=True), cache.generation)
    assert cache.get(hash_key("kz_a")) is None


def test_cache_ignores_lookup_older_than_clear():
    cache = KeyCache(clock=FakeClock())
    generation = cache.generation
    cache.clear()
    cache.put(hash_key("kz_a"), _record(), generation)
    assert cache.get(hash_key("kz_a")) is None


def test_cache_starts_over_when_full():
    cache = KeyCache(max_entries=2, clock=FakeClock())
    for key in ("kz_a", "kz_b", "kz_c"):
        cache.put(hash_key(key), _record(), cache.generation)
    assert cache.get(hash_key("kz_a")) is None
    assert cache.get(hash_key("kz_c")) is not None
