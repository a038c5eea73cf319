"""A small support-desk app that calls an LLM through openai, litellm and LangChain.

It is written the way an application would be, with prompts in module constants, and the
only Kaizen code is `instrument(...)` at start-up and a few `ct_score(...)` calls. Each
prompt constant becomes a task in the CT server: SUMMARIZE_PROMPT (openai),
CLASSIFY_PROMPT (litellm) and REPLY_PROMPT (LangChain).

Configuration comes from the environment: OPENAI_BASE_URL and OPENAI_API_KEY for the LLM
(the demo points them at the stub LLM; leave OPENAI_BASE_URL unset to use OpenAI itself),
KAIZEN_API_KEY and KAIZEN_BASE_URL for the CT server, and DEMO_MODEL for the model name.
"""

from __future__ import annotations

import os

import langchain_core
import litellm
import openai
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

import kaizen_sdk

kaizen_sdk.instrument(openai)
kaizen_sdk.instrument(litellm)
kaizen_sdk.instrument(langchain_core)

MODEL = os.environ.get("DEMO_MODEL", "gpt-4o-mini")

SUMMARIZE_PROMPT = "Summarize this support ticket in one sentence for the on-call engineer:\n\n{ticket}"

CLASSIFY_PROMPT = (
    "Classify this support ticket as billing, bug, how-to or other. "
    "Answer with one word.\n\nTicket: {ticket}"
)

REPLY_PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "You are a friendly support agent for a small software company. Keep replies under 80 words."),
        ("human", "Draft a first reply to this {category} ticket:\n\n{ticket}"),
    ]
)

TICKETS = [
    ("I was charged twice for my March subscription.", "billing"),
    ("The export button crashes the app on large projects.", "bug"),
    ("How do I invite a colleague to my workspace?", "how-to"),
    ("Do you have an office in Lisbon?", "other"),
]


def summarize(client: openai.OpenAI, ticket: str):
    """Summarize one ticket with the openai client."""
    return client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": SUMMARIZE_PROMPT.format(ticket=ticket)}],
        temperature=0.2,
    )


def classify(ticket: str):
    """Classify one ticket with litellm."""
    return litellm.completion(
        model=f"openai/{MODEL}",
        api_base=os.environ.get("OPENAI_BASE_URL"),
        api_key=os.environ.get("OPENAI_API_KEY"),
        messages=[{"role": "user", "content": CLASSIFY_PROMPT.format(ticket=ticket)}],
        temperature=0,
    )


def draft_reply(chat_model: ChatOpenAI, ticket: str, category: str):
    """Draft a reply with a LangChain prompt | model chain."""
    chain = REPLY_PROMPT | chat_model
    return chain.invoke({"category": category, "ticket": ticket})


def main() -> None:
    client = openai.OpenAI()
    chat_model = ChatOpenAI(model=MODEL, temperature=0.3)

    for ticket, expected_category in TICKETS:
        summary = summarize(client, ticket)
        summary_text = summary.choices[0].message.content or ""
        # A summary longer than the ticket itself missed the point.
        summary.ct_score(1.0 if len(summary_text) <= 2 * len(ticket) else 0.0)

        classification = classify(ticket)
        label = (classification.choices[0].message.content or "").strip().lower()
        classification.ct_score(1.0 if expected_category in label else 0.0)

        reply = draft_reply(chat_model, ticket, expected_category)
        print(f"{expected_category:>8}: {reply.content[:70]!r}")

    kaizen_sdk.flush(timeout=10)


if __name__ == "__main__":
    main()
