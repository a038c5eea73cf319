"""An OpenAI-compatible stub LLM server on 127.0.0.1, for tests and the demo.

Standard library only (``http.server``), so it runs in any environment and never reaches
the network: it binds the loopback interface and computes every reply locally. Replies
are deterministic: the text is derived from the last user message, and token counts are
word counts, so tests can assert exact values.

Endpoints (with or without the ``/v1`` prefix):

- ``POST /v1/chat/completions``: usage, ``n`` choices, SSE streaming (the usage chunk,
  with empty ``choices``, only when ``stream_options.include_usage`` is true), a tool call
  when ``tools`` are given and the last message is not a tool result, and JSON that fits
  ``response_format`` when it carries a JSON schema.
- ``POST /v1/responses``: the Responses API, plain and streamed.
- ``GET /v1/models``.

Error injection, chosen by the request's model name: ``error-500``, ``error-429``,
``error-400`` and ``error-401`` return that status with an OpenAI-style error body;
``error-midstream`` sends two chunks of a stream and then drops the connection;
``delay-<ms>`` (for example ``delay-200``) waits that many milliseconds before replying.
The ``X-Stub-Delay-Ms`` request header sets a delay for any model.

Use ``StubLLMServer`` as a context manager (a thread, a free port, ``.base_url`` ending in
``/v1``), or run ``python tools/stub_llm.py --port 8100``.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import logging
import re
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["StubLLMServer", "reply_text", "count_tokens"]

logger = logging.getLogger("stub_llm")

HOST = "127.0.0.1"
_ERROR_STATUS = {"error-500": 500, "error-429": 429, "error-400": 400, "error-401": 401}
_ERROR_TYPES = {
    500: "server_error",
    429: "rate_limit_exceeded",
    400: "invalid_request_error",
    401: "invalid_api_key",
}
_DELAY_MODEL = re.compile(r"^delay-(\d+)$")


# --- deterministic content --------------------------------------------------------------


def count_tokens(text: str) -> int:
    """Return the stub's token count of ``text``: its number of whitespace-separated words."""
    return len(text.split())


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return " ".join(parts)
    return ""


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def reply_text(prompt: str, index: int = 0) -> str:
    """Return the stub's reply to ``prompt`` for choice ``index`` (always the same)."""
    digest = hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:8]
    words = prompt.split()[:8]
    echo = " ".join(words) if words else "(empty prompt)"
    suffix = f" choice {index}" if index else ""
    return f"Stub reply {digest}{suffix}: {echo}"


def _prompt_tokens(messages: list[Any]) -> int:
    return sum(count_tokens(_text_of(m.get("content"))) for m in messages if isinstance(m, dict)) or 1


def _example_for_schema(schema: Any, defs: dict[str, Any], depth: int = 0) -> Any:
    """Build a value that validates against a JSON schema (the subset structured outputs use)."""
    if not isinstance(schema, dict) or depth > 10:
        return None

    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _example_for_schema(defs.get(name, {}), defs, depth + 1)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema and schema[key]:
            return _example_for_schema(schema[key][0], defs, depth + 1)

    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: _example_for_schema(sub, defs, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        return [_example_for_schema(schema.get("items", {}), defs, depth + 1)]
    if kind == "string":
        return "stub"
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    return None


def _structured_content(response_format: Any) -> str | None:
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_object":
        return json.dumps({"reply": "stub"})
    if response_format.get("type") != "json_schema":
        return None

    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    defs = schema.get("$defs") or schema.get("definitions") or {}
    return json.dumps(_example_for_schema(schema, defs))


def _tool_call_for(tools: list[Any], prompt: str) -> dict[str, Any] | None:
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "function" and isinstance(tool.get("function"), dict):
            return {
                "id": "call_" + hashlib.sha256(prompt.encode()).hexdigest()[:12],
                "type": "function",
                "function": {
                    "name": tool["function"].get("name", "tool"),
                    "arguments": json.dumps({"input": prompt[:80]}),
                },
            }
    return None


# --- chat completions -------------------------------------------------------------------


def _chat_choices(body: dict[str, Any]) -> tuple[list[dict[str, Any]], int, int]:
    """Return the choices (message and finish reason) and the prompt and completion tokens."""
    messages = body.get("messages") or []
    prompt = _last_user_text(messages)
    count = int(body.get("n") or 1)
    tools = body.get("tools") or []
    last_role = messages[-1].get("role") if messages and isinstance(messages[-1], dict) else None
    wants_tool = bool(tools) and body.get("tool_choice") != "none" and last_role != "tool"
    structured = _structured_content(body.get("response_format"))

    choices = []
    completion_tokens = 0
    for index in range(count):
        tool_call = _tool_call_for(tools, prompt) if wants_tool else None
        if tool_call is not None:
            message = {"role": "assistant", "content": None, "tool_calls": [tool_call]}
            finish = "tool_calls"
            completion_tokens += count_tokens(tool_call["function"]["arguments"])
        else:
            text = structured if structured is not None else reply_text(prompt, index)
            message = {"role": "assistant", "content": text, "refusal": None}
            finish = "stop"
            completion_tokens += count_tokens(text)
        choices.append({"index": index, "message": message, "finish_reason": finish, "logprobs": None})
    return choices, _prompt_tokens(messages), completion_tokens


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_completion(body: dict[str, Any]) -> dict[str, Any]:
    """Return the non-streamed chat completion for a request body."""
    choices, prompt_tokens, completion_tokens = _chat_choices(body)
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "stub"),
        "choices": choices,
        "usage": _usage(prompt_tokens, completion_tokens),
        "system_fingerprint": "stub",
    }


def _chunk_texts(text: str) -> list[str]:
    words = text.split(" ")
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


def chat_chunks(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the stream chunks of a streamed chat completion, without the final [DONE]."""
    choices, prompt_tokens, completion_tokens = _chat_choices(body)
    base = {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "stub"),
        "system_fingerprint": "stub",
    }
    chunks = []
    for choice in choices:
        index = choice["index"]
        message = choice["message"]
        chunks.append({**base, "choices": [{"index": index, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
        if message.get("tool_calls"):
            for position, call in enumerate(message["tool_calls"]):
                head = {"index": position, "id": call["id"], "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""}}
                tail = {"index": position, "function": {"arguments": call["function"]["arguments"]}}
                for delta in (head, tail):
                    chunks.append({**base, "choices": [{"index": index, "delta": {"tool_calls": [delta]}, "finish_reason": None}]})
        else:
            for piece in _chunk_texts(message["content"]):
                chunks.append({**base, "choices": [{"index": index, "delta": {"content": piece}, "finish_reason": None}]})
        chunks.append({**base, "choices": [{"index": index, "delta": {}, "finish_reason": choice["finish_reason"]}]})

    options = body.get("stream_options") or {}
    if options.get("include_usage"):
        chunks.append({**base, "choices": [], "usage": _usage(prompt_tokens, completion_tokens)})
    return chunks


# --- legacy text completions ------------------------------------------------------------


def text_completion(body: dict[str, Any]) -> dict[str, Any]:
    """Return the ``/v1/completions`` reply: one choice per prompt (a string or a list)."""
    prompts = body.get("prompt")
    prompts = prompts if isinstance(prompts, list) else [prompts or ""]
    texts = [reply_text(str(prompt)) for prompt in prompts]
    prompt_tokens = sum(count_tokens(str(prompt)) for prompt in prompts) or 1
    return {
        "id": "cmpl-" + uuid.uuid4().hex[:24],
        "object": "text_completion",
        "created": int(time.time()),
        "model": body.get("model", "stub"),
        "choices": [{"index": i, "text": text, "finish_reason": "stop", "logprobs": None} for i, text in enumerate(texts)],
        "usage": _usage(prompt_tokens, sum(count_tokens(text) for text in texts)),
    }


def completion_chunks(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the stream chunks of a streamed ``/v1/completions`` reply to its first prompt."""
    reply = text_completion(body)
    base = {key: reply[key] for key in ("id", "object", "created", "model")}
    chunks = [{**base, "choices": [{"index": 0, "text": piece, "finish_reason": None, "logprobs": None}]}
              for piece in _chunk_texts(reply["choices"][0]["text"])]
    chunks.append({**base, "choices": [{"index": 0, "text": "", "finish_reason": "stop", "logprobs": None}]})
    return chunks


# --- responses API ----------------------------------------------------------------------


def _responses_prompt(body: dict[str, Any]) -> str:
    items = body.get("input")
    if isinstance(items, str):
        return items
    if isinstance(items, list):
        return _last_user_text([item for item in items if isinstance(item, dict)])
    return ""


def _responses_input_tokens(body: dict[str, Any]) -> int:
    items = body.get("input")
    if isinstance(items, str):
        total = count_tokens(items)
    else:
        total = sum(count_tokens(_text_of(i.get("content"))) for i in (items or []) if isinstance(i, dict))
    if isinstance(body.get("instructions"), str):
        total += count_tokens(body["instructions"])
    return total or 1


def response_object(body: dict[str, Any], *, status: str = "completed") -> dict[str, Any]:
    """Return the Responses API object for a request body."""
    text = reply_text(_responses_prompt(body))
    input_tokens = _responses_input_tokens(body)
    output_tokens = count_tokens(text)
    return {
        "id": "resp_" + uuid.uuid4().hex[:24],
        "object": "response",
        "created_at": time.time(),
        "status": status,
        "model": body.get("model", "stub"),
        "instructions": body.get("instructions"),
        "output": [
            {
                "id": "msg_" + uuid.uuid4().hex[:16],
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
    }


def response_events(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the server-sent events of a streamed Responses API call."""
    final = response_object(body)
    item = final["output"][0]
    text = item["content"][0]["text"]
    started = {**final, "status": "in_progress", "output": [], "usage": None}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
        {"type": "response.output_item.added", "output_index": 0, "item": {**item, "status": "in_progress", "content": []}},
        {"type": "response.content_part.added", "output_index": 0, "item_id": item["id"], "content_index": 0,
         "part": {"type": "output_text", "text": "", "annotations": []}},
    ]
    for piece in _chunk_texts(text):
        events.append({"type": "response.output_text.delta", "output_index": 0, "item_id": item["id"],
                       "content_index": 0, "delta": piece, "logprobs": []})
    events += [
        {"type": "response.output_text.done", "output_index": 0, "item_id": item["id"], "content_index": 0,
         "text": text, "logprobs": []},
        {"type": "response.content_part.done", "output_index": 0, "item_id": item["id"], "content_index": 0,
         "part": item["content"][0]},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": final},
    ]
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return events


# --- HTTP -------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("%s - %s", self.address_string(), format % args)

    def setup(self) -> None:
        super().setup()
        # The headers and the body go out in two writes. With Nagle's algorithm the body then
        # waits for the client's delayed ACK of the headers (about 40 ms on Linux) on every
        # response of a reused connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 429:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, status: int, message: str) -> None:
        self._send_json(status, {"error": {"message": message, "type": _ERROR_TYPES.get(status, "error"),
                                           "param": None, "code": _ERROR_TYPES.get(status)}})

    def _send_events(self, events: list[dict[str, Any]], *, named: bool, done: bool, drop_after: int | None = None) -> None:
        try:
            self._write_events(events, named=named, done=done, drop_after=drop_after)
        except (BrokenPipeError, ConnectionResetError):
            # The client stopped reading (an abandoned stream): nothing is left to send to it.
            logger.debug("client closed the stream early")

    def _write_events(self, events: list[dict[str, Any]], *, named: bool, done: bool, drop_after: int | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for number, event in enumerate(events):
            if drop_after is not None and number >= drop_after:
                self.wfile.flush()
                self.connection.shutdown(2)  # an abrupt end in the middle of the stream
                return
            head = f"event: {event['type']}\n" if named else ""
            self.wfile.write(f"{head}data: {json.dumps(event)}\n\n".encode("utf-8"))
            self.wfile.flush()
        if done:
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        path = self.path.split("?", 1)[0].removeprefix("/v1")
        if path == "/models":
            self._send_json(200, {"object": "list", "data": [{"id": "stub-model", "object": "model", "created": 0, "owned_by": "stub"}]})
            return
        if path in ("/health", "/"):
            self._send_json(200, {"status": "ok"})
            return
        self._send_error(404, f"unknown path {self.path!r}; the stub serves /v1/chat/completions and /v1/responses")

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            self._send_error(400, f"request body is not valid JSON: {exc}")
            return
        if not isinstance(body, dict):
            self._send_error(400, "request body must be a JSON object")
            return

        path = self.path.split("?", 1)[0].removeprefix("/v1")
        self.server.record(path, dict(self.headers), body)

        model = str(body.get("model", ""))
        self._delay(model)
        if model in _ERROR_STATUS:
            status = _ERROR_STATUS[model]
            self._send_error(status, f"injected error for model {model!r}")
            return

        if path == "/chat/completions":
            self._chat(body, model)
        elif path == "/responses":
            self._responses(body)
        elif path == "/completions":
            if body.get("stream"):
                self._send_events(completion_chunks(body), named=False, done=True)
            else:
                self._send_json(200, text_completion(body))
        else:
            self._send_error(404, f"unknown path {self.path!r}; the stub serves /v1/chat/completions and /v1/responses")

    def _delay(self, model: str) -> None:
        milliseconds = 0
        header = self.headers.get("X-Stub-Delay-Ms")
        if header and header.isdigit():
            milliseconds = int(header)
        match = _DELAY_MODEL.match(model)
        if match:
            milliseconds = int(match.group(1))
        if milliseconds:
            time.sleep(milliseconds / 1000.0)

    def _chat(self, body: dict[str, Any], model: str) -> None:
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            self._send_error(400, "'messages' must be a non-empty list")
            return
        if not body.get("stream"):
            self._send_json(200, chat_completion(body))
            return

        chunks = chat_chunks(body)
        drop_after = 2 if model == "error-midstream" else None
        self._send_events(chunks, named=False, done=True, drop_after=drop_after)

    def _responses(self, body: dict[str, Any]) -> None:
        if body.get("input") is None:
            self._send_error(400, "'input' is required")
            return
        if not body.get("stream"):
            self._send_json(200, response_object(body))
            return
        self._send_events(response_events(body), named=True, done=False)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Tests open 50+ connections at once; the default backlog of 5 refuses some of them.
    request_queue_size = 256

    def __init__(self, port: int) -> None:
        super().__init__((HOST, port), _Handler)
        self.requests: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)
        self._lock = threading.Lock()

    def record(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append({"path": path, "headers": headers, "body": body})


class StubLLMServer:
    """The stub served from a background thread on 127.0.0.1.

    ``port=0`` picks a free port. ``base_url`` ends in ``/v1`` (what ``OpenAI(base_url=...)``
    expects). ``requests`` lists the last 1000 requests (path, headers, JSON body) so tests
    can check what a client really sent.
    """

    def __init__(self, port: int = 0) -> None:
        self._server = _Server(port)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ``http://127.0.0.1:<port>/v1``."""
        return f"http://{HOST}:{self.port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Snapshot of the recorded requests, oldest first."""
        with self._server._lock:
            return list(self._server.requests)

    def clear(self) -> None:
        """Forget the recorded requests."""
        with self._server._lock:
            self._server.requests.clear()

    def start(self) -> StubLLMServer:
        """Start serving in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="stub-llm", daemon=True)
        self._thread.start()
        logger.info("stub LLM listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        logger.info("stub LLM stopped")

    def __enter__(self) -> StubLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the stub in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(description="OpenAI-compatible stub LLM server on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8100, help="TCP port to listen on (default 8100; 0 picks a free one)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = StubLLMServer(args.port)
    print(f"stub LLM serving {server.base_url} (Ctrl-C stops it)", flush=True)
    try:
        server._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._server.server_close()


if __name__ == "__main__":
    main()
