"""Readers of responses and stream chunks against odd but legal shapes."""

from __future__ import annotations

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from kaizen_sdk._tracer import Span
from kaizen_sdk.integrations._chat import ChatChunkAccumulator, record_chat_response, request_parameters
from kaizen_sdk.integrations.openai._request import responses_messages
from kaizen_sdk.integrations.openai._response import ResponsesEventAccumulator, record_response


def make_span() -> Span:
    return Span(library="openai", task="t", messages=[], prompt_text="", model="m", parameters={}, detection=None)


def chunk(choices, **extra):
    return ChatCompletionChunk.model_construct(
        id="c", object="chat.completion.chunk", created=1, model="gpt-4o", choices=choices, **extra
    )


def test_usage_only_final_chunk():
    accumulator = ChatChunkAccumulator()
    accumulator.add(chunk([{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": None}]))
    accumulator.add(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    accumulator.add(chunk([], usage={"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}))
    span = make_span()
    accumulator.record(span)
    assert span.response_text == "Hi"
    assert span.prompt_tokens == 2
    assert span.total_tokens == 3


def test_delta_none_and_missing_choices():
    accumulator = ChatChunkAccumulator()
    accumulator.add(chunk([{"index": 0, "delta": None, "finish_reason": None}]))
    accumulator.add(chunk(None))
    accumulator.add(None)
    accumulator.add({"choices": [{"index": 0, "delta": {"content": "ok"}}]})
    span = make_span()
    accumulator.record(span)
    assert span.response_text == "ok"
    assert span.total_tokens is None


def test_tool_call_deltas_merged():
    accumulator = ChatChunkAccumulator()
    first = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}
    second = {"index": 0, "function": {"arguments": '{"q": 1}'}}
    custom = {"index": 1, "id": "call_2", "type": "custom", "custom": {"name": "grammar", "input": "abc"}}
    for delta in (first, second, custom):
        accumulator.add(chunk([{"index": 0, "delta": {"tool_calls": [delta]}, "finish_reason": None}]))
    calls = accumulator.response()["choices"][0]["message"]["tool_calls"]
    assert calls[0] == {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}}
    assert calls[1] == {"id": "call_2", "type": "custom", "custom": {"name": "grammar", "input": "abc"}}


def test_custom_tool_call_in_response():
    response = ChatCompletion.model_construct(
        id="c",
        object="chat.completion",
        created=1,
        model="gpt-4o",
        choices=[
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "call_9", "type": "custom", "custom": {"name": "sql", "input": "select 1"}}],
                },
            }
        ],
    )
    span = make_span()
    record_chat_response(span, response)
    assert span.response_text is None
    assert span.response["choices"][0]["tool_calls"][0]["custom"]["input"] == "select 1"
    assert span.prompt_tokens is None


def test_response_none_recorded_empty():
    span = make_span()
    record_chat_response(span, None)
    assert span.response_text is None
    record_response("responses", span, None)
    assert span.response is None


def test_parameters_skip_sentinels_and_secrets():
    from openai import NOT_GIVEN, omit

    parameters = request_parameters(
        {
            "temperature": 0.1,
            "max_tokens": omit,
            "top_p": NOT_GIVEN,
            "api_key": "sk-secret",
            "extra_headers": {"Authorization": "Bearer x"},
            "messages": [],
            "stream": True,
        }
    )
    assert parameters == {"temperature": 0.1, "stream": True}


def test_responses_items_to_messages():
    messages = responses_messages(
        {
            "instructions": "Be short",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
                {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            ],
        }
    )
    assert messages[0] == {"role": "system", "content": "Be short"}
    assert messages[1] == {"role": "user", "content": [{"type": "text", "text": "Weather?"}]}
    assert messages[2]["tool_calls"][0]["function"]["name"] == "weather"
    assert messages[3] == {"role": "tool", "tool_call_id": "c1", "content": "sunny"}


def test_responses_stream_partial_text():
    accumulator = ResponsesEventAccumulator()
    accumulator.add({"type": "response.created", "response": {"model": "gpt-4o"}})
    accumulator.add({"type": "response.output_text.delta", "delta": "Hel"})
    accumulator.add({"type": "response.output_text.delta", "delta": "lo"})
    span = make_span()
    accumulator.record(span)
    assert span.response_text == "Hello"
    assert span.response_model == "gpt-4o"
    assert span.total_tokens is None


def test_model_and_dict_choices_read_alike():
    response = ChatCompletion.model_validate(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
                    },
                },
                {"index": 1, "finish_reason": "stop", "message": {"role": "assistant", "content": "No.", "refusal": "not allowed"}},
            ],
        }
    )
    from_model, from_dict = make_span(), make_span()

    record_chat_response(from_model, response)
    record_chat_response(from_dict, response.model_dump(exclude_none=True))

    assert from_model.response == from_dict.response
    assert from_model.response["choices"][0]["tool_calls"][0]["function"]["name"] == "lookup"
    assert from_model.response["choices"][1]["refusal"] == "not allowed"


def test_choice_missing_attribute_read_by_field():
    class Message:
        role = "assistant"
        content = "Plain object without tool_calls or refusal."

    class Choice:
        index = 0
        finish_reason = "stop"
        message = Message()

    class Response:
        model = "custom-model"
        choices = [Choice()]
        usage = None

    span = make_span()
    record_chat_response(span, Response())

    assert span.response_text == "Plain object without tool_calls or refusal."
    assert span.response["choices"] == [
        {"index": 0, "role": "assistant", "content": "Plain object without tool_calls or refusal.", "finish_reason": "stop"}
    ]
