"""Task detection on code shaped like real projects, one shape per detection corpus case.

Each shape is user code written to a temporary folder and imported as a real module, so its
globals, classes and helper modules are what detection sees in an application. The client
library is a stand-in module placed in a temporary ``site-packages`` folder: it calls
``detect_task`` where the user's call enters it, as the integrations do, and detection must
skip its frames as library code. The end-to-end corpus test runs the same shapes through the
real clients and a CT server.

``Sandbox`` and ``SHAPES`` are also used by ``benchmarks/detection_bench.py``.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest

FAKE_LIBRARY = '''
"""Stand-in for an instrumented client library; lives in a site-packages folder."""
import asyncio

from kaizen_sdk._detection import detect_task

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def _as_dicts(messages):
    result = []
    for message in messages:
        if isinstance(message, dict):
            result.append(message)
        elif isinstance(message, str):
            result.append({"role": "user", "content": message})
        else:
            result.append({"role": _ROLES.get(message.type, "user"), "content": message.content})
    return result


def _send(messages):
    return detect_task(_as_dicts(messages))


def complete(messages, **parameters):
    return _send(messages)


def send_raw(messages):
    """Pass ``messages`` to detection unchanged, however malformed."""
    return detect_task(messages)


def acomplete(messages, **parameters):
    # Detection runs where the call enters the library, before any await.
    detection = _send(messages)

    async def finish():
        await asyncio.sleep(0)
        return detection

    return finish()


def invoke(model_input):
    if isinstance(model_input, str):
        return _send([model_input])
    if hasattr(model_input, "to_messages"):
        return _send(model_input.to_messages())
    return _send(model_input)


def chat_model():
    """A LangChain runnable that behaves like a chat model's invoke()."""
    from langchain_core.runnables import RunnableLambda

    return RunnableLambda(invoke)
'''


class Sandbox:
    """A temporary site-packages folder with the stand-in library, and a place for user modules."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.library_dir = root / "lib" / "site-packages"
        self.library_dir.mkdir(parents=True, exist_ok=True)
        (self.library_dir / "fakellm.py").write_text(FAKE_LIBRARY)
        self._paths: list[str] = [str(self.library_dir)]
        self._modules: list[str] = []
        sys.path.insert(0, str(self.library_dir))
        sys.modules.pop("fakellm", None)

    def load(self, files: dict[str, str], run_at_import: bool = False) -> ModuleType:
        """Write ``files`` (name -> source) to a new folder and import its ``main.py``.

        With ``run_at_import`` the module calls ``run()`` from its own top level and stores the
        result in ``DETECTIONS``, so its module frame is on the stack as in a script run
        with ``python main.py``.
        """
        folder = self.root / f"app_{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        for name, source in files.items():
            source = textwrap.dedent(source).lstrip()
            if name == "main.py" and run_at_import:
                source += "\n\nDETECTIONS = run()\n"
            (folder / name).write_text(source)

        helper_names = [Path(name).stem for name in files if name != "main.py"]
        for name in helper_names:
            sys.modules.pop(name, None)
            self._modules.append(name)
        sys.path.insert(0, str(folder))
        self._paths.append(str(folder))

        module_name = f"shape_{folder.name}"
        spec = importlib.util.spec_from_file_location(module_name, folder / "main.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        self._modules.append(module_name)
        spec.loader.exec_module(module)
        return module

    def close(self) -> None:
        for path in self._paths:
            if path in sys.path:
                sys.path.remove(path)
        for name in self._modules + ["fakellm"]:
            sys.modules.pop(name, None)


@dataclass
class Shape:
    """User code shaped like one corpus case, and the task names its calls must get."""

    name: str
    files: dict[str, str]
    expect: list[str]
    needs: tuple[str, ...] = field(default_factory=tuple)


SHAPES = [
    Shape(
        "module_constant_format",
        {
            "main.py": '''
            import fakellm

            SUMMARIZE_PROMPT = """Summarize the following article in three bullet points.
            Keep each bullet under 20 words.

            Article:
            {article}
            """


            def summarize(article):
                return fakellm.complete(
                    model="m",
                    messages=[{"role": "user", "content": SUMMARIZE_PROMPT.format(article=article)}],
                )


            def run():
                return [summarize("The council approved a plan to add bike lanes.")]
            '''
        },
        ["SUMMARIZE_PROMPT"],
    ),
    Shape(
        "system_user_pair",
        {
            "main.py": '''
            import fakellm

            TRIAGE_SYSTEM_PROMPT = (
                "You are a support triage assistant. Reply with a priority from P1 to P4 "
                "and a one-line reason."
            )

            TRIAGE_USER_TEMPLATE = """Product: {product}
            Customer plan: {plan}

            Ticket:
            {ticket}"""


            def triage(product, plan, ticket):
                return fakellm.complete(
                    messages=[
                        {"role": "system", "content": TRIAGE_SYSTEM_PROMPT},
                        {"role": "user", "content": TRIAGE_USER_TEMPLATE.format(product=product, plan=plan, ticket=ticket)},
                    ],
                )


            def run():
                return [triage("Invoice scanner", "business", "Uploads time out.")]
            '''
        },
        ["TRIAGE_USER_TEMPLATE"],
    ),
    Shape(
        "system_constant_inline_user",
        {
            "main.py": '''
            import fakellm

            HELPDESK_SYSTEM_PROMPT = (
                "You are the help-desk assistant for an internal wiki. "
                "Answer briefly and name the most relevant page title when you can."
            )


            def answer(question, page_titles):
                return fakellm.complete(
                    messages=[
                        {"role": "system", "content": HELPDESK_SYSTEM_PROMPT},
                        {"role": "user", "content": f"Known pages: {', '.join(page_titles)}\\n\\nQuestion: {question}"},
                    ],
                )


            def run():
                pages = ["VPN setup", "Expense policy"]
                return [answer("How do I connect?", pages), answer("When is a new laptop due?", pages)]
            '''
        },
        ["HELPDESK_SYSTEM_PROMPT", "HELPDESK_SYSTEM_PROMPT"],
    ),
    Shape(
        "inline_fstring_fallback",
        {
            "main.py": '''
            import fakellm


            def draft_release_note(change):
                return fakellm.complete(
                    messages=[
                        {"role": "system", "content": "You write short, friendly release notes."},
                        {"role": "user", "content": f"Write a release note for version {change['version']}: {change['summary']}"},
                    ],
                )


            def suggest_upgrade_steps(from_version, to_version):
                return fakellm.complete(
                    messages=[{"role": "user", "content": f"List the upgrade steps from {from_version} to {to_version}."}],
                )


            def run():
                return [
                    draft_release_note({"version": "2.4.0", "summary": "adds dark mode"}),
                    suggest_upgrade_steps("2.3.1", "2.4.0"),
                ]
            '''
        },
        ["draft_release_note", "suggest_upgrade_steps"],
    ),
    Shape(
        "prompts_module_from_import",
        {
            "prompts.py": '''
            CLASSIFY_EXPENSE_TEMPLATE = """Classify the expense below into one of: travel, meals, software, office, other.
            Answer with the category only.

            Expense: {description} ({amount} {currency})"""

            EXTRACT_RECEIPT_TEMPLATE = """Extract the vendor name and the purchase date from this receipt.
            Answer as: vendor; YYYY-MM-DD

            Receipt:
            {receipt_text}"""
            ''',
            "main.py": '''
            import fakellm
            from prompts import CLASSIFY_EXPENSE_TEMPLATE, EXTRACT_RECEIPT_TEMPLATE


            def classify_expense(description, amount, currency):
                return fakellm.complete(
                    messages=[{"role": "user", "content": CLASSIFY_EXPENSE_TEMPLATE.format(description=description, amount=amount, currency=currency)}]
                )


            def extract_receipt(receipt_text):
                return fakellm.complete(
                    messages=[{"role": "user", "content": EXTRACT_RECEIPT_TEMPLATE.format(receipt_text=receipt_text)}]
                )


            def run():
                return [
                    classify_expense("Train ticket", "48.20", "EUR"),
                    extract_receipt("CORNER STATIONERY\\nTOTAL 7.90"),
                ]
            ''',
        },
        ["CLASSIFY_EXPENSE_TEMPLATE", "EXTRACT_RECEIPT_TEMPLATE"],
    ),
    Shape(
        "prompts_module_attribute",
        {
            "prompts.py": '''
            REWRITE_PROMPT = """Rewrite the paragraph below so it reads clearly for a general audience.
            Keep the meaning and keep it about the same length.

            Paragraph:
            {paragraph}"""

            TITLE_PROMPT = """Suggest one title of at most eight words for a blog post with this opening:

            {opening}

            Tone: {tone}"""
            ''',
            "main.py": '''
            import fakellm
            import prompts


            def rewrite(paragraph):
                return fakellm.complete(
                    messages=[{"role": "user", "content": prompts.REWRITE_PROMPT.format(paragraph=paragraph)}]
                )


            def suggest_title(opening, tone="curious"):
                return fakellm.complete(
                    messages=[{"role": "user", "content": prompts.TITLE_PROMPT.format(opening=opening, tone=tone)}]
                )


            def run():
                return [rewrite("Utilisation of the cache was suboptimal."), suggest_title("Caches are hard.")]
            ''',
        },
        ["REWRITE_PROMPT", "TITLE_PROMPT"],
    ),
    Shape(
        "prompt_dict",
        {
            "main.py": '''
            import fakellm

            PROMPTS = {
                "summary": "Summarize this meeting transcript in five sentences:\\n\\n{transcript}",
                "action_items": (
                    "List every action item in this meeting transcript, one per line, "
                    "as 'owner: task'.\\n\\nTranscript:\\n{transcript}"
                ),
            }

            TRANSCRIPT = "Lead: The beta goes out on Thursday."


            def run_task(task_name, transcript):
                return fakellm.complete(
                    messages=[{"role": "user", "content": PROMPTS[task_name].format(transcript=transcript)}]
                )


            def run():
                return [run_task(task_name, TRANSCRIPT) for task_name in ("summary", "action_items")]
            '''
        },
        ["summary", "action_items"],
    ),
    Shape(
        "class_attribute",
        {
            "main.py": '''
            import fakellm


            class TicketAssistant:
                SYSTEM_PROMPT = "You are a calm, precise assistant for an IT service desk."
                TRIAGE_TEMPLATE = (
                    "Assign a category (access, hardware, network, software) and an urgency "
                    "(low, normal, high) to this ticket.\\n\\nSubject: {subject}\\nBody: {body}"
                )

                def __init__(self):
                    self.model = "gpt-4o-mini"

                def triage(self, subject, body):
                    return fakellm.complete(
                        model=self.model,
                        messages=[
                            {"role": "system", "content": self.SYSTEM_PROMPT},
                            {"role": "user", "content": self.TRIAGE_TEMPLATE.format(subject=subject, body=body)},
                        ],
                    )

                def summarize_thread(self, replies):
                    return fakellm.complete(
                        messages=[
                            {"role": "system", "content": self.SYSTEM_PROMPT},
                            {"role": "user", "content": f"Summarize this reply thread in two sentences: {' | '.join(replies)}"},
                        ],
                    )


            def run():
                assistant = TicketAssistant()
                return [
                    assistant.triage("Cannot reach shared drive", "It asks for a password."),
                    assistant.summarize_thread(["Restarted.", "Works now."]),
                ]
            '''
        },
        ["TRIAGE_TEMPLATE", "SYSTEM_PROMPT"],
    ),
    Shape(
        "instance_attribute_template",
        {
            "main.py": '''
            import fakellm


            class Summarizer:
                def __init__(self, style, max_sentences):
                    self.prompt_template = (
                        f"Summarize the text below in a {style} tone, in at most {max_sentences} sentences.\\n\\n"
                        "Text:\\n{text}"
                    )

                def summarize(self, text):
                    return fakellm.complete(messages=[{"role": "user", "content": self.prompt_template.format(text=text)}])


            def run():
                notes = "The warehouse moved to the new scanning app last week."
                return [Summarizer("neutral", 2).summarize(notes), Summarizer("upbeat", 1).summarize(notes)]
            '''
        },
        ["prompt_template", "prompt_template"],
    ),
    Shape(
        "percent_format",
        {
            "main.py": '''
            import fakellm

            SQL_PROMPT = """Given the table orders(id, customer_id, total, created_at),
            write one SQLite query that answers the question. Return only SQL.

            Question: %s"""

            EXPLAIN_SQL_PROMPT = "Explain what this query does for a %(audience)s, in two sentences:\\n\\n%(sql)s"


            def text_to_sql(question):
                return fakellm.complete(messages=[{"role": "user", "content": SQL_PROMPT % question}])


            def explain_sql(sql, audience):
                return fakellm.complete(
                    messages=[{"role": "user", "content": EXPLAIN_SQL_PROMPT % {"sql": sql, "audience": audience}}]
                )


            def run():
                return [
                    text_to_sql("What was the average order total last month?"),
                    explain_sql("SELECT avg(total) FROM orders", "product manager"),
                ]
            '''
        },
        ["SQL_PROMPT", "EXPLAIN_SQL_PROMPT"],
    ),
    Shape(
        "string_template",
        {
            "main.py": '''
            from string import Template

            import fakellm

            REPLY_TEMPLATE = """Draft a reply to a customer on the $tier plan.
            Their issue: $issue
            Promise a fix within $eta and keep it under 90 words."""

            FOLLOW_UP_TEMPLATE = "Write a two-line check-in message asking whether the fix for '$issue' worked for the $tier customer."


            def draft_reply(tier, issue, eta):
                return fakellm.complete(
                    messages=[{"role": "user", "content": Template(REPLY_TEMPLATE).substitute(tier=tier, issue=issue, eta=eta)}]
                )


            def draft_follow_up(tier, issue):
                return fakellm.complete(
                    messages=[{"role": "user", "content": Template(FOLLOW_UP_TEMPLATE).safe_substitute(tier=tier, issue=issue)}]
                )


            def run():
                return [
                    draft_reply("team", "CSV export cuts off after 1000 rows", "two working days"),
                    draft_follow_up("team", "CSV export cuts off after 1000 rows"),
                ]
            '''
        },
        ["REPLY_TEMPLATE", "FOLLOW_UP_TEMPLATE"],
    ),
    Shape(
        "jinja2_template",
        {
            "main.py": '''
            import jinja2

            import fakellm

            CHANGELOG_PROMPT_J2 = """You maintain the changelog for {{ product }}.
            Turn these merged pull request titles into a changelog entry for version {{version}}.
            Group them under Added, Changed and Fixed.

            Pull requests:
            {{ pr_titles }}"""


            def write_changelog(product, version, pr_titles):
                rendered = jinja2.Template(CHANGELOG_PROMPT_J2).render(
                    product=product, version=version, pr_titles="\\n".join(pr_titles)
                )
                return fakellm.complete(messages=[{"role": "user", "content": rendered}])


            def run():
                return [write_changelog("Ledgerly", "3.2.0", ["Add bulk tag editing", "Fix rounding"])]
            '''
        },
        ["CHANGELOG_PROMPT_J2"],
        needs=("jinja2",),
    ),
    Shape(
        "dedent_strip",
        {
            "main.py": '''
            import textwrap

            import fakellm

            GRADER_PROMPT = """
                You are grading a short quiz answer.
                Question: {question}
                Reference answer: {reference}
                Student answer: {answer}

                Reply with CORRECT or INCORRECT and one sentence of feedback.
                """

            HINT_PROMPT = """
            Give one hint, without revealing the answer, for this question:
            {question}
            """


            def grade(question, reference, answer):
                content = textwrap.dedent(GRADER_PROMPT).strip().format(
                    question=question, reference=reference, answer=answer
                )
                return fakellm.complete(messages=[{"role": "user", "content": content}])


            def hint(question):
                return fakellm.complete(
                    messages=[{"role": "user", "content": HINT_PROMPT.format(question=question).strip()}]
                )


            def run():
                question = "What gas do plants take in for photosynthesis?"
                return [grade(question, "Carbon dioxide", "Oxygen"), hint(question)]
            '''
        },
        ["GRADER_PROMPT", "HINT_PROMPT"],
    ),
    Shape(
        "helper_wrapper",
        {
            "main.py": '''
            import fakellm

            DEFAULT_SYSTEM = "You are a concise writing assistant for a recipe website."

            TITLE_PROMPT = "Write a catchy title (max 8 words) for this recipe:\\n{recipe}"
            TAGS_PROMPT = "Give 5 lowercase tags, comma separated, for this recipe:\\n{recipe}"
            SUMMARY_PROMPT = "Describe this recipe in one inviting sentence for a {season} menu:\\n{recipe}"


            def ask_llm(prompt, system=DEFAULT_SYSTEM, temperature=0.7):
                return fakellm.complete(
                    messages=[{"role": "system", "content": system}, {"role": "user", "content": prompt}],
                    temperature=temperature,
                )


            def make_title(recipe):
                return ask_llm(TITLE_PROMPT.format(recipe=recipe))


            def make_tags(recipe):
                return ask_llm(TAGS_PROMPT.format(recipe=recipe), temperature=0)


            def make_summary(recipe, season):
                return ask_llm(SUMMARY_PROMPT.format(recipe=recipe, season=season))


            def run():
                recipe = "Roast squash, toss with chickpeas, lemon and tahini."
                return [make_title(recipe), make_tags(recipe), make_summary(recipe, "autumn")]
            '''
        },
        ["TITLE_PROMPT", "TAGS_PROMPT", "SUMMARY_PROMPT"],
    ),
    Shape(
        "async_gather",
        {
            "main.py": '''
            import asyncio

            import fakellm

            TRANSLATE_PROMPT = "Translate this product description into {language}. Keep brand names unchanged.\\n\\n{description}"


            async def translate(description, language):
                return await fakellm.acomplete(
                    messages=[{"role": "user", "content": TRANSLATE_PROMPT.format(language=language, description=description)}]
                )


            async def main():
                description = "The Trailmate bottle keeps drinks cold for 24 hours."
                return await asyncio.gather(*(translate(description, language) for language in ("French", "German", "Spanish")))


            def run():
                return list(asyncio.run(main()))
            '''
        },
        ["TRANSLATE_PROMPT", "TRANSLATE_PROMPT", "TRANSLATE_PROMPT"],
    ),
    Shape(
        "streaming",
        {
            "main.py": '''
            import fakellm

            BEDTIME_STORY_PROMPT = "Tell a calm bedtime story of about {length} words about a {animal} who {adventure}."


            def stream_story(animal, adventure, length=150):
                return fakellm.complete(
                    messages=[{"role": "user", "content": BEDTIME_STORY_PROMPT.format(length=length, animal=animal, adventure=adventure)}],
                    stream=True,
                )


            def run():
                return [stream_story("hedgehog", "learns to whistle")]
            '''
        },
        ["BEDTIME_STORY_PROMPT"],
    ),
    Shape(
        "langchain_chat_prompt_pipe",
        {
            "main.py": '''
            from langchain_core.prompts import ChatPromptTemplate

            import fakellm

            llm = fakellm.chat_model()

            HANDBOOK_QA_PROMPT = ChatPromptTemplate.from_messages(
                [
                    ("system", "You answer questions about the team handbook. If the excerpt does not say, answer 'not covered'."),
                    ("human", "Handbook excerpt:\\n{excerpt}\\n\\nQuestion: {question}"),
                ]
            )

            qa_chain = HANDBOOK_QA_PROMPT | llm


            def answer(question, excerpt):
                return qa_chain.invoke({"excerpt": excerpt, "question": question})


            def run():
                return [answer("How many remote days are allowed?", "Staff may work remotely up to three days.")]
            '''
        },
        ["HANDBOOK_QA_PROMPT"],
        needs=("langchain_core",),
    ),
    Shape(
        "langchain_prompt_template",
        {
            "main.py": '''
            from langchain_core.prompts import PromptTemplate

            import fakellm

            llm = fakellm.chat_model()

            TAGLINE_PROMPT = PromptTemplate.from_template(
                "Write a tagline of at most ten words for {product}, aimed at {audience}."
            )


            def tagline_via_chain(product, audience):
                chain = TAGLINE_PROMPT | llm
                return chain.invoke({"product": product, "audience": audience})


            def tagline_via_format(product, audience):
                return llm.invoke(TAGLINE_PROMPT.format(product=product, audience=audience))


            def run():
                return [tagline_via_chain("a fountain pen", "students"), tagline_via_format("a solar charger", "hikers")]
            '''
        },
        ["TAGLINE_PROMPT", "TAGLINE_PROMPT"],
        needs=("langchain_core",),
    ),
    Shape(
        "built_elsewhere",
        {
            "main.py": '''
            import fakellm

            EXTRACTION_SYSTEM = "You turn free-text job postings into JSON. Use null for anything missing."

            EXTRACT_FIELDS_PROMPT = """Extract these fields from the posting: title, location, seniority, remote_allowed.

            Posting:
            {posting}"""


            def build_messages(posting):
                return [
                    {"role": "system", "content": EXTRACTION_SYSTEM},
                    {"role": "user", "content": EXTRACT_FIELDS_PROMPT.format(posting=posting)},
                ]


            def run_extraction(posting):
                messages = build_messages(posting)
                return fakellm.complete(messages=messages, response_format={"type": "json_object"})


            def run():
                return [run_extraction("Senior data engineer in Rotterdam. Hybrid.")]
            '''
        },
        ["EXTRACT_FIELDS_PROMPT"],
    ),
    Shape(
        "multi_turn_chat",
        {
            "main.py": '''
            import fakellm

            TUTOR_SYSTEM = "You are a patient maths tutor. Ask one question at a time."
            FOLLOW_UP_TEMPLATE = "I understood the part about {topic}. Can you give me one practice problem at {level} level?"
            CHECK_ANSWER_TEMPLATE = "My answer to the practice problem is {answer}. Is it right? Explain briefly."


            def chat(history):
                return fakellm.complete(messages=history)


            def run():
                detections = []
                history = [
                    {"role": "system", "content": TUTOR_SYSTEM},
                    {"role": "user", "content": "What is a derivative, in plain words?"},
                    {"role": "assistant", "content": "It measures how fast something changes."},
                ]
                history.append({"role": "user", "content": FOLLOW_UP_TEMPLATE.format(topic="rates of change", level="beginner")})
                detections.append(chat(history))
                history.append({"role": "assistant", "content": "Differentiate 3x^2."})
                history.append({"role": "user", "content": CHECK_ANSWER_TEMPLATE.format(answer="6x")})
                detections.append(chat(history))
                return detections
            '''
        },
        ["FOLLOW_UP_TEMPLATE", "CHECK_ANSWER_TEMPLATE"],
    ),
    Shape(
        "fallback_concatenation",
        {
            "main.py": '''
            from dataclasses import dataclass

            import fakellm


            @dataclass
            class Clause:
                number: str
                text: str


            def simplify_clause(clause):
                return fakellm.complete(
                    messages=[{"role": "user", "content": "Rewrite clause " + clause.number + " in plain English:\\n\\n" + clause.text}]
                )


            def build_status_digest(items):
                return fakellm.complete(
                    messages=[
                        {
                            "role": "user",
                            "content": "Write a two-sentence status digest from these items:\\n"
                            + "\\n".join(f"- {title}: {status}" for title, status in items),
                        }
                    ]
                )


            def run():
                return [
                    simplify_clause(Clause("7.2", "The Licensee shall not sublicense the rights.")),
                    build_status_digest([("Payment retries", "done"), ("SSO", "blocked")]),
                ]
            '''
        },
        ["simplify_clause", "build_status_digest"],
    ),
    Shape(
        "langchain_messages",
        {
            "main.py": '''
            from langchain_core.messages import HumanMessage, SystemMessage

            import fakellm

            llm = fakellm.chat_model()

            CODE_REVIEWER_SYSTEM = "You are a senior reviewer. Be specific and point to line numbers."
            DIFF_REVIEW_TEMPLATE = "Review this diff for bugs and unclear names. Reply with at most five bullets.\\n\\n{diff}"


            def review_filename(old_name, new_name):
                return llm.invoke(
                    [
                        SystemMessage(content=CODE_REVIEWER_SYSTEM),
                        HumanMessage(content=f"Is renaming {old_name} to {new_name} an improvement? One sentence."),
                    ]
                )


            def review_diff(diff):
                return llm.invoke(
                    [SystemMessage(content=CODE_REVIEWER_SYSTEM), HumanMessage(content=DIFF_REVIEW_TEMPLATE.format(diff=diff))]
                )


            def run():
                return [review_filename("utils_misc.py", "date_parsing.py"), review_diff("-a\\n+b\\n")]
            '''
        },
        ["CODE_REVIEWER_SYSTEM", "DIFF_REVIEW_TEMPLATE"],
        needs=("langchain_core",),
    ),
    Shape(
        "nested_function",
        {
            "main.py": '''
            import fakellm

            CLASSIFY_TEMPLATE = """Pick the single best label for the review below.
            Allowed labels: {labels}

            Review: {review}
            Label:"""


            def make_classifier(labels, temperature=0.0):
                label_list = ", ".join(labels)

                def classify(review):
                    return fakellm.complete(
                        messages=[{"role": "user", "content": CLASSIFY_TEMPLATE.format(labels=label_list, review=review)}],
                        temperature=temperature,
                    )

                return classify


            def run():
                classify_review = make_classifier(["praise", "complaint", "question"])
                return [classify_review("Great app, add PDF export."), classify_review("Does the plan include mobile?")]
            '''
        },
        ["CLASSIFY_TEMPLATE", "CLASSIFY_TEMPLATE"],
    ),
    Shape(
        "lambda",
        {
            "main.py": '''
            import fakellm

            TONE_REWRITE_PROMPT = "Rewrite the message below in a {tone} tone. Keep it short.\\n\\nMessage: {message}"

            rewrite = lambda message, tone: fakellm.complete(  # noqa: E731
                messages=[{"role": "user", "content": TONE_REWRITE_PROMPT.format(tone=tone, message=message)}],
            )


            def run():
                return [rewrite("The report is missing the totals again.", tone) for tone in ("polite", "direct")]
            '''
        },
        ["TONE_REWRITE_PROMPT", "TONE_REWRITE_PROMPT"],
    ),
    Shape(
        "langchain_history_placeholder",
        {
            "main.py": '''
            from langchain_core.messages import AIMessage, HumanMessage
            from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

            import fakellm

            llm = fakellm.chat_model()

            COOKING_CHAT_PROMPT = ChatPromptTemplate.from_messages(
                [
                    ("system", "You are a home-cooking assistant. Keep answers under 80 words."),
                    MessagesPlaceholder("history"),
                    ("human", "{question}"),
                ]
            )


            def chat_session(questions):
                chain = COOKING_CHAT_PROMPT | llm
                history = []
                detections = []
                for question in questions:
                    detections.append(chain.invoke({"history": history, "question": question}))
                    history.extend([HumanMessage(content=question), AIMessage(content="Fried rice.")])
                return detections


            def run():
                return chat_session(["What can I cook with leftover rice?", "Could I skip the soy sauce?"])
            '''
        },
        ["COOKING_CHAT_PROMPT", "COOKING_CHAT_PROMPT"],
        needs=("langchain_core",),
    ),
]


@pytest.fixture
def sandbox(tmp_path: Path):
    box = Sandbox(tmp_path)
    yield box
    box.close()


@pytest.mark.parametrize("shape", SHAPES, ids=[shape.name for shape in SHAPES])
def test_shape_task_names(sandbox: Sandbox, shape: Shape) -> None:
    for module_name in shape.needs:
        pytest.importorskip(module_name)
    module = sandbox.load(shape.files)

    detections = module.run()

    assert [detection.task for detection in detections] == shape.expect


@pytest.mark.parametrize("shape", SHAPES, ids=[shape.name for shape in SHAPES])
def test_shape_names_stable_on_repeat(sandbox: Sandbox, shape: Shape) -> None:
    # Caches (per call site, per template, per namespace) must not change a later answer.
    for module_name in shape.needs:
        pytest.importorskip(module_name)
    module = sandbox.load(shape.files)

    first = module.run()
    second = module.run()

    assert [d.task for d in second] == [d.task for d in first] == shape.expect
    assert [d.inputs for d in second] == [d.inputs for d in first]


@pytest.mark.parametrize("shape", SHAPES, ids=[shape.name for shape in SHAPES])
def test_shape_called_from_module_level(sandbox: Sandbox, shape: Shape) -> None:
    # A script's module frame reads every global it defines; that must not change the winner.
    for module_name in shape.needs:
        pytest.importorskip(module_name)

    module = sandbox.load(shape.files, run_at_import=True)

    assert [detection.task for detection in module.DETECTIONS] == shape.expect
