"""Request and response extraction for LangChain, on real langchain-core objects."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("langchain_core")

from langchain_core.messages import (  # noqa: E402
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatResult, Generation, LLMResult  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate, PromptTemplate  # noqa: E402

from kaizen_sdk.integrations.langchain import _request, _response  # noqa: E402


def test_string_input_is_one_user_message():
    assert _request.messages_from_input("Hello") == [{"role": "user", "content": "Hello"}]


def test_message_list_maps_roles():
    messages = [
        SystemMessage("Be brief."),
        HumanMessage("Hi", name="ann"),
        AIMessage("Hello"),
        ChatMessage(role="critic", content="Shorter."),
    ]

    result = _request.messages_from_input(messages)

    assert result == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi", "name": "ann"},
        {"role": "assistant", "content": "Hello"},
        {"role": "critic", "content": "Shorter."},
    ]


def test_developer_role_from_openai_marker():
    message = SystemMessage("Rules", additional_kwargs={"__openai_role__": "developer"})

    assert _request.message_to_dict(message)["role"] == "developer"


def test_tool_call_and_tool_result_messages():
    call = AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Oslo"}, "id": "call_1"}])
    result = ToolMessage("12 C", tool_call_id="call_1")

    assistant, tool = _request.messages_from_input([call, result])

    assert assistant["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": json.dumps({"city": "Oslo"})}}
    ]
    assert tool == {"role": "tool", "content": "12 C", "tool_call_id": "call_1"}


def test_chat_prompt_value_input():
    template = ChatPromptTemplate.from_messages([("system", "You summarize."), ("human", "Summarize {ticket}")])

    result = _request.messages_from_input(template.invoke({"ticket": "T-1"}))

    assert result == [
        {"role": "system", "content": "You summarize."},
        {"role": "user", "content": "Summarize T-1"},
    ]


def test_string_prompt_value_input():
    value = PromptTemplate.from_template("Say {word}").invoke({"word": "hi"})

    assert _request.messages_from_input(value) == [{"role": "user", "content": "Say hi"}]


def test_tuples_dicts_and_strings_input():
    result = _request.messages_from_input([("system", "S"), ("human", "H"), {"role": "assistant", "content": "A"}, "U"])

    assert result == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "H"},
        {"role": "assistant", "content": "A"},
        {"role": "user", "content": "U"},
    ]


@pytest.mark.parametrize(
    "block, url",
    [
        ({"type": "image", "base64": "QUJD", "mime_type": "image/png"}, "data:image/png;base64,QUJD"),
        ({"type": "image", "source_type": "base64", "data": "QUJD", "mime_type": "image/jpeg"}, "data:image/jpeg;base64,QUJD"),
        ({"type": "image", "url": "https://example.invalid/a.png"}, "https://example.invalid/a.png"),
        ({"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0"}}, "data:image/gif;base64,R0"),
        ({"type": "image_url", "image_url": "https://example.invalid/b.png"}, "https://example.invalid/b.png"),
        ({"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "UklG"}}, "data:image/webp;base64,UklG"),
    ],
)
def test_image_blocks_become_image_url_parts(block, url):
    message = HumanMessage(content=[{"type": "text", "text": "What is this?"}, block])

    parts = _request.message_to_dict(message)["content"]

    assert parts[0] == {"type": "text", "text": "What is this?"}
    assert parts[1] == {"type": "image_url", "image_url": {"url": url}}


def test_input_is_not_mutated():
    content = [{"type": "image", "base64": "QUJD", "mime_type": "image/png", "id": "x"}]
    message = HumanMessage(content=content)
    before = message.model_dump()

    _request.messages_from_input([message])

    assert message.model_dump() == before


def test_parameters_from_call_reads_model_and_kwargs():
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    model = FakeListChatModel(responses=["ok"])

    name, parameters = _request.parameters_from_call(
        model, ["END"], {"temperature": 0.2, "tools": [{"type": "function", "function": {"name": "lookup"}}]}
    )

    assert parameters["temperature"] == 0.2
    assert parameters["stop"] == ["END"]
    assert parameters["tools"] == ["lookup"]
    assert name is None or isinstance(name, str)


def test_chat_result_usage_metadata_first():
    message = AIMessage(
        "Done",
        usage_metadata={"input_tokens": 11, "output_tokens": 3, "total_tokens": 14},
        response_metadata={"model_name": "gpt-test-2024"},
    )
    result = ChatResult(
        generations=[ChatGeneration(message=message)],
        llm_output={"token_usage": {"prompt_tokens": 99, "completion_tokens": 99}, "model_name": "other"},
    )

    info = _response.from_chat_result(result)

    assert info.text == "Done"
    assert info.model == "gpt-test-2024"
    assert (info.prompt_tokens, info.completion_tokens, info.total_tokens) == (11, 3, 14)


def test_chat_result_falls_back_to_llm_output():
    result = ChatResult(
        generations=[ChatGeneration(message=AIMessage("x"))],
        llm_output={"token_usage": {"prompt_tokens": 5, "completion_tokens": 2}, "model_name": "m-1"},
    )

    info = _response.from_chat_result(result)

    assert info.model == "m-1"
    assert (info.prompt_tokens, info.completion_tokens, info.total_tokens) == (5, 2, 7)


def test_missing_usage_is_unknown_not_zero():
    info = _response.from_message(AIMessage("x"))

    assert (info.prompt_tokens, info.completion_tokens, info.total_tokens) == (None, None, None)
    assert info.model is None


def test_several_generations_keep_every_choice():
    result = ChatResult(generations=[ChatGeneration(message=AIMessage("a")), ChatGeneration(message=AIMessage("b"))])

    info = _response.from_chat_result(result)

    assert info.text == "a"
    assert [m["content"] for m in info.messages] == ["a", "b"]


def test_tool_calls_in_response_messages():
    message = AIMessage("", tool_calls=[{"name": "lookup", "args": {"q": "x"}, "id": "c1"}])

    info = _response.from_message(message)

    assert info.text == ""
    assert info.messages[0]["tool_calls"][0]["function"] == {"name": "lookup", "arguments": '{"q": "x"}'}


def test_merged_stream_chunks():
    chunks = [
        AIMessageChunk(content="Hel", response_metadata={"model_name": "m-2"}),
        AIMessageChunk(content="lo"),
        AIMessageChunk(content="", usage_metadata={"input_tokens": 4, "output_tokens": 2, "total_tokens": 6}),
    ]
    merged = chunks[0] + chunks[1] + chunks[2]

    info = _response.from_message(merged)

    assert info.text == "Hello"
    assert info.model == "m-2"
    assert info.total_tokens == 6


def test_content_blocks_text_joined():
    message = AIMessage(content=[{"type": "reasoning", "reasoning": "hmm"}, {"type": "text", "text": "Yes"}, " and no"])

    assert _response.from_message(message).text == "Yes and no"


def test_llm_result_single_prompt_has_tokens():
    result = LLMResult(
        generations=[[Generation(text="Hi there")]],
        llm_output={"token_usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}, "model_name": "inst"},
    )

    info = _response.from_llm_result(result, 0)

    assert info.text == "Hi there"
    assert info.model == "inst"
    assert (info.prompt_tokens, info.completion_tokens, info.total_tokens) == (3, 2, 5)


def test_llm_result_batch_tokens_unknown():
    result = LLMResult(
        generations=[[Generation(text="a")], [Generation(text="b")]],
        llm_output={"token_usage": {"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10}},
    )

    info = _response.from_llm_result(result, 1)

    assert info.text == "b"
    assert info.total_tokens is None


def test_empty_results_do_not_raise():
    assert _response.from_chat_result(ChatResult(generations=[])).text is None
    assert _response.from_llm_result(LLMResult(generations=[]), 3).text is None
    assert _response.from_message(None).text is None
