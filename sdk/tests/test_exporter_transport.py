"""The shared HTTP transport: headers, Retry-After parsing and backoff bounds."""

from __future__ import annotations

import email.utils
import logging

import httpx

from kaizen_sdk import _exporter
from kaizen_sdk._transport import USER_AGENT, Transport, retry_after_seconds


def test_transport_sends_key_and_agent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"items": []})

    transport = Transport("http://ct.test", "secret", timeout=1.0, http_transport=httpx.MockTransport(handler))
    transport.post_bytes("/api/v1/ingest", b'{"traces":[],"scores":[]}')
    transport.close()

    assert seen[0].headers["X-API-Key"] == "secret"
    assert seen[0].headers["User-Agent"] == USER_AGENT
    assert seen[0].headers["Content-Type"] == "application/json"
    assert seen[0].content == b'{"traces":[],"scores":[]}'


def test_transport_without_key_sends_no_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    transport = Transport("http://ct.test", None, timeout=1.0, http_transport=httpx.MockTransport(handler))
    transport.request("GET", "/health")

    assert "X-API-Key" not in seen[0].headers


def test_retry_after_seconds_value() -> None:
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "7"})) == 7.0
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "1.5"})) == 1.5
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "-3"})) == 0.0


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)

    delay = retry_after_seconds(httpx.Response(503, headers={"Retry-After": header}), now=now)

    assert delay == 30.0


def test_retry_after_missing_or_invalid() -> None:
    assert retry_after_seconds(httpx.Response(503)) is None
    assert retry_after_seconds(httpx.Response(503, headers={"Retry-After": "soon"})) is None


def test_backoff_grows_and_is_capped() -> None:
    first = [_exporter.backoff_delay(0) for _ in range(200)]
    late = [_exporter.backoff_delay(20) for _ in range(200)]

    assert all(0.25 <= delay <= 0.5 for delay in first)
    assert all(15.0 <= delay <= 30.0 for delay in late)
    assert len(set(first)) > 1  # jitter


def ok_handler(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"items": []})


def test_quiet_transport_logs_no_request_lines(caplog) -> None:
    transport = Transport("http://ct.test", "secret", timeout=1.0, http_transport=httpx.MockTransport(ok_handler), log_requests=False)
    with caplog.at_level(logging.INFO, logger="httpx"):
        transport.post_bytes("/api/v1/ingest", b'{"traces":[],"scores":[]}')
        transport.request("GET", "/health")
    transport.close()

    assert [record for record in caplog.records if record.name == "httpx"] == []


def test_other_httpx_clients_still_log(caplog) -> None:
    quiet = Transport("http://ct.test", "secret", timeout=1.0, http_transport=httpx.MockTransport(ok_handler), log_requests=False)
    loud = Transport("http://ct.test", "secret", timeout=1.0, http_transport=httpx.MockTransport(ok_handler))
    user_client = httpx.Client(transport=httpx.MockTransport(ok_handler))
    with caplog.at_level(logging.INFO, logger="httpx"):
        quiet.post_bytes("/api/v1/ingest", b"{}")
        loud.post_bytes("/api/v1/ingest", b"{}")
        user_client.get("http://app.test/users")
    quiet.close()
    loud.close()
    user_client.close()

    messages = [record.getMessage() for record in caplog.records if record.name == "httpx"]
    assert len(messages) == 2, messages
    assert "http://ct.test/api/v1/ingest" in messages[0]
    assert "http://app.test/users" in messages[1]


def test_exporter_batches_log_no_httpx_lines(caplog) -> None:
    from kaizen_sdk._config import Settings

    exporter = _exporter.Exporter(
        Settings(api_key="test-key", base_url="http://ct.test", flush_interval=0.05), http_transport=httpx.MockTransport(ok_handler)
    )
    with caplog.at_level(logging.INFO, logger="httpx"):
        for number in range(3):
            exporter.enqueue_trace({"id": f"00000000-0000-4000-8000-00000000000{number}", "task": "t", "messages": []})
            assert exporter.flush(5)
    exporter.shutdown(1)

    assert exporter.stats()["sent"] == 3
    assert [record for record in caplog.records if record.name == "httpx"] == []
