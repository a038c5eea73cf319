"""Task detection rules one at a time: candidates, ranking, fallbacks, records, override, Level 2.

User code is written to a temporary folder and imported; the client library is the stand-in
from ``test_detection_shapes.py`` in a temporary ``site-packages`` folder.
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kaizen_sdk._detection import Detection, _detect, _frames, apply_task_map, detect_task, register_library_package, task

_SHAPES_PATH = Path(__file__).with_name("test_detection_shapes.py")
_spec = importlib.util.spec_from_file_location("kaizen_detection_shapes", _SHAPES_PATH)
shapes = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = shapes
_spec.loader.exec_module(shapes)


@pytest.fixture
def sandbox(tmp_path: Path):
    box = shapes.Sandbox(tmp_path)
    yield box
    box.close()


def load(sandbox, source: str, **helpers: str):
    files = {"main.py": source}
    files.update({f"{name}.py": text for name, text in helpers.items()})
    return sandbox.load(files)


# --- template syntaxes -------------------------------------------------------------------


def test_format_positional_and_spec_placeholders(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        REPORT_PROMPT = "Report for {} covering {} days; score {n:d} of {total:>5}."

        def run():
            return fakellm.complete(messages=[{"role": "user", "content": REPORT_PROMPT.format("acme", 30, n=7, total=10)}])
        ''',
    )

    detection = module.run()

    assert detection.task == "REPORT_PROMPT"
    assert detection.rule == "template"
    assert detection.inputs == {"0": "acme", "1": "30", "n": "7", "total": "10"}


def test_format_repeated_placeholder_matches_same_value(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        ECHO_PROMPT = "Say {word} and then say {word} again, nothing more."

        def run(first, second):
            return fakellm.complete(messages=[{"role": "user", "content": f"Say {first} and then say {second} again, nothing more."}])
        ''',
    )

    assert module.run("hi", "hi").task == "ECHO_PROMPT"
    assert module.run("hi", "bye").task == "run"


def test_string_template_object(sandbox) -> None:
    module = load(
        sandbox,
        '''
        from string import Template

        import fakellm

        WELCOME = Template("Write a welcome note for ${name}, who joins the $team team today.")

        def run():
            return fakellm.complete(messages=[{"role": "user", "content": WELCOME.substitute(name="Ana", team="data")}])
        ''',
    )

    detection = module.run()

    assert detection.task == "WELCOME"
    assert detection.inputs == {"name": "Ana", "team": "data"}
    assert detection.template == "Write a welcome note for ${name}, who joins the $team team today."


def test_jinja_template_loaded_from_loader(sandbox) -> None:
    pytest.importorskip("jinja2")
    module = load(
        sandbox,
        '''
        import jinja2

        import fakellm

        ENV = jinja2.Environment(loader=jinja2.DictLoader({"review.j2": "Review this code for {{ language }} style issues:\\n{{ code }}"}))
        REVIEW = ENV.get_template("review.j2")

        def run():
            return fakellm.complete(messages=[{"role": "user", "content": REVIEW.render(language="Go", code="x := 1")}])
        ''',
    )

    detection = module.run()

    assert detection.task == "REVIEW"
    assert detection.inputs == {"language": "Go", "code": "x := 1"}


def test_jinja_blocks_match_any_body(sandbox) -> None:
    pytest.importorskip("jinja2")
    module = load(
        sandbox,
        '''
        import jinja2

        import fakellm

        DIGEST_PROMPT = """Write a digest for {{ team }}.
        {% for item in items -%}
        - {{ item }}
        {% endfor %}
        End with one sentence of thanks."""

        def run(items):
            text = jinja2.Template(DIGEST_PROMPT).render(team="ops", items=items)
            return fakellm.complete(messages=[{"role": "user", "content": text}])
        ''',
    )

    assert module.run(["a", "b", "c"]).task == "DIGEST_PROMPT"
    assert module.run([]).task == "DIGEST_PROMPT"


def test_langchain_jinja_prompt_template(sandbox) -> None:
    pytest.importorskip("langchain_core")
    module = load(
        sandbox,
        '''
        from langchain_core.prompts import PromptTemplate

        import fakellm

        llm = fakellm.chat_model()
        OUTLINE = PromptTemplate.from_template("Outline a talk about {{ topic }} in five parts.", template_format="jinja2")

        def run():
            return (OUTLINE | llm).invoke({"topic": "caching"})
        ''',
    )

    detection = module.run()

    assert detection.task == "OUTLINE"
    assert detection.inputs == {"topic": "caching"}


def test_chat_template_text_lists_every_message(sandbox) -> None:
    pytest.importorskip("langchain_core")
    module = load(
        sandbox,
        '''
        from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

        import fakellm

        llm = fakellm.chat_model()
        SUPPORT_PROMPT = ChatPromptTemplate.from_messages(
            [("system", "You answer billing questions only."), MessagesPlaceholder("history"), ("human", "{question}")]
        )

        def run():
            return (SUPPORT_PROMPT | llm).invoke({"history": [], "question": "Why was I charged twice?"})
        ''',
    )

    detection = module.run()

    assert detection.task == "SUPPORT_PROMPT"
    assert detection.inputs == {"question": "Why was I charged twice?"}
    assert detection.template == (
        "system: You answer billing questions only.\n\nplaceholder: {history}\n\nuser: {question}"
    )


def test_chain_without_named_prompt_is_named_after_chain(sandbox) -> None:
    pytest.importorskip("langchain_core")
    module = load(
        sandbox,
        '''
        from langchain_core.prompts import ChatPromptTemplate

        import fakellm

        summary_chain = ChatPromptTemplate.from_messages([("human", "Summarize in one line:\\n{text}")]) | fakellm.chat_model()

        def run():
            return summary_chain.invoke({"text": "Long text here."})
        ''',
    )

    assert module.run().task == "summary_chain"


def test_duck_typed_prompt_template_without_langchain(sandbox) -> None:
    module = load(
        sandbox,
        '''
        from dataclasses import dataclass, field

        import fakellm


        @dataclass
        class MyPrompt:
            template: str
            template_format: str = "f-string"
            input_variables: list = field(default_factory=list)


        CAPTION_PROMPT = MyPrompt("Write an alt text caption for a photo of {subject}.")

        def run():
            return fakellm.complete(messages=[{"role": "user", "content": CAPTION_PROMPT.template.format(subject="a red bike")}])
        ''',
    )

    detection = module.run()

    assert detection.task == "CAPTION_PROMPT"
    assert detection.inputs == {"subject": "a red bike"}


def test_sdk_detects_without_langchain_installed(tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text(
        "import sys\n"
        "for name in ('langchain', 'langchain_core', 'langchain_openai'):\n"
        "    sys.modules[name] = None  # makes `import name` fail\n"
        "from kaizen_sdk._detection import detect_task\n"
        "GREETING = 'Write a short greeting for {name} on their first day.'\n"
        "def greet():\n"
        "    return detect_task([{'role': 'user', 'content': GREETING.format(name='Ana')}])\n"
        "print(greet().task)\n"
    )

    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "GREETING"


# --- candidates and ranking ----------------------------------------------------------------


def test_short_template_is_never_candidate(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        QUESTION = "{question}"

        def ask(question):
            return fakellm.complete(messages=[{"role": "user", "content": QUESTION.format(question=question)}])
        ''',
    )

    assert module.ask("What is the capital of Peru?").task == "ask"


def test_local_equal_to_content_is_not_candidate(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        def handle(user_input):
            text = user_input.strip()
            return fakellm.complete(messages=[{"role": "user", "content": text}])
        ''',
    )

    detection = module.handle("  Tell me a joke about {braces} ")

    assert detection.task == "handle"
    assert detection.rule == "function"


def test_local_template_beats_parameter(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        def render(template, **values):
            return fakellm.complete(messages=[{"role": "user", "content": template.format(**values)}])

        def caller():
            local_prompt = "Name three risks of {plan} for a small team."
            return render(local_prompt, plan="a rewrite")
        ''',
    )

    detection = module.caller()

    assert detection.task == "local_prompt"
    assert detection.variable == "local_prompt"


def test_global_beats_local(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        PLAN_PROMPT = "Name three risks of {plan} for a small team."

        def caller():
            local_copy = "Name three risks of {plan} for a small team."
            return fakellm.complete(messages=[{"role": "user", "content": local_copy.format(plan="x")}])
        ''',
    )

    assert module.caller().task == "PLAN_PROMPT"


def test_template_beats_fixed_prompt_in_same_message(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        FIXED = "Translate to French: hello"
        TRANSLATE = "Translate to French: {text}"

        def run():
            return fakellm.complete(messages=[{"role": "user", "content": TRANSLATE.format(text="hello")}])
        ''',
    )

    detection = module.run()

    assert detection.task == "TRANSLATE"
    assert detection.rule == "template"


def test_longest_literal_template_wins(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        GENERIC = "Please answer: {anything}"
        SPECIFIC = "Please answer: is {city} the capital of {country}?"

        def run():
            return fakellm.complete(messages=[{"role": "user", "content": SPECIFIC.format(city="Lima", country="Peru")}])
        ''',
    )

    assert module.run().task == "SPECIFIC"


def test_last_user_message_names_task(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        SYSTEM = "You are a terse assistant for accountants."
        FIRST = "Explain the term {term} in one sentence."
        SECOND = "Now give an example of {term} with numbers."

        def run():
            return fakellm.complete(
                messages=[
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": FIRST.format(term="accrual")},
                    {"role": "assistant", "content": "It records revenue when earned."},
                    {"role": "user", "content": SECOND.format(term="accrual")},
                    {"role": "user", "content": "Thanks!"},
                ]
            )
        ''',
    )

    assert module.run().task == "SECOND"


def test_developer_message_names_task(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        DEVELOPER_RULES = "Answer in JSON with keys answer and confidence."

        def run(question):
            return fakellm.complete(messages=[{"role": "developer", "content": DEVELOPER_RULES}, {"role": "user", "content": question}])
        ''',
    )

    detection = module.run("What is 2+2?")

    assert detection.task == "DEVELOPER_RULES"
    assert detection.rule == "fixed_prompt"


def test_content_parts_and_images(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        DESCRIBE_PROMPT = "Describe this photo for a {audience} audience in two sentences."

        def run():
            return fakellm.complete(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": DESCRIBE_PROMPT.format(audience="young")},
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                        ],
                    }
                ]
            )
        ''',
    )

    detection = module.run()

    assert detection.task == "DESCRIBE_PROMPT"
    assert detection.inputs == {"audience": "young"}


def test_fixed_prompt_ignores_whitespace_changes(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import textwrap

        import fakellm

        SYSTEM_PROMPT = """
            You review pull requests.
            Be brief and kind.
            """

        def run(diff):
            return fakellm.complete(
                messages=[{"role": "system", "content": textwrap.dedent(SYSTEM_PROMPT).strip()}, {"role": "user", "content": diff}]
            )
        ''',
    )

    detection = module.run("+ x = 1")

    assert detection.task == "SYSTEM_PROMPT"
    assert detection.rule == "fixed_prompt"


def test_unformatted_template_sent_as_is(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        SUMMARIZE_PROMPT = "Summarize the ticket below in one line: {ticket}"

        def run():
            return fakellm.complete(messages=[{"role": "user", "content": SUMMARIZE_PROMPT}])
        ''',
    )

    assert module.run().task == "SUMMARIZE_PROMPT"


def test_import_alias_name_as_written(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm
        from texts import CLASSIFY as TICKET_CLASSIFIER

        def run():
            return fakellm.complete(messages=[{"role": "user", "content": TICKET_CLASSIFIER.format(ticket="Refund please")}])
        ''',
        texts='CLASSIFY = "Classify this ticket as billing or other: {ticket}"\n',
    )

    assert module.run().task == "TICKET_CLASSIFIER"


def test_package_submodule_attribute(sandbox, tmp_path: Path) -> None:
    package = tmp_path / "pkgroot" / "assistant"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "prompts.py").write_text('ROUTE_PROMPT = "Route this request to sales, support or billing: {request}"\n')
    sys.path.insert(0, str(package.parent))
    try:
        module = load(
            sandbox,
            '''
            import assistant.prompts

            import fakellm

            def run():
                text = assistant.prompts.ROUTE_PROMPT.format(request="I need an invoice")
                return fakellm.complete(messages=[{"role": "user", "content": text}])
            ''',
        )
        detection = module.run()
    finally:
        sys.path.remove(str(package.parent))
        for name in ("assistant", "assistant.prompts"):
            sys.modules.pop(name, None)

    assert detection.task == "ROUTE_PROMPT"
    assert detection.variable == "assistant.prompts.ROUTE_PROMPT"


def test_class_attribute_through_class_name(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm


        class Bot:
            GREETING = "Greet {name} warmly and ask how you can help today."


        def run():
            return fakellm.complete(messages=[{"role": "user", "content": Bot.GREETING.format(name="Sam")}])
        ''',
    )

    detection = module.run()

    assert detection.task == "GREETING"
    assert detection.variable == "Bot.GREETING"


def test_inherited_class_attribute_and_classmethod(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm


        class Base:
            SUMMARY = "Summarize this support chat in two sentences:\\n{chat}"


        class Child(Base):
            @classmethod
            def summarize(cls, chat):
                return fakellm.complete(messages=[{"role": "user", "content": cls.SUMMARY.format(chat=chat)}])
        ''',
    )

    detection = module.Child.summarize("A: hi\nB: hello")

    assert detection.task == "SUMMARY"
    assert detection.variable == "cls.SUMMARY"


def test_nested_dict_and_enum_keys(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import enum

        import fakellm


        class Kind(enum.Enum):
            SHORT = "short"
            LONG = "long"


        PROMPTS = {"en": {"greeting": "Say hello to {name} in English, politely."}}
        BY_KIND = {Kind.SHORT: "Answer in one short sentence: {question}"}

        def greet():
            return fakellm.complete(messages=[{"role": "user", "content": PROMPTS["en"]["greeting"].format(name="Li")}])

        def answer():
            return fakellm.complete(messages=[{"role": "user", "content": BY_KIND[Kind.SHORT].format(question="Why?")}])
        ''',
    )

    greeting = module.greet()
    answer = module.answer()

    assert greeting.task == "greeting"
    assert greeting.variable == 'PROMPTS["en"]["greeting"]'
    assert answer.task == "SHORT"
    assert answer.variable == "BY_KIND[Kind.SHORT]"


def test_message_dict_named_after_dict(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        SYSTEM_MESSAGE = {"role": "system", "content": "You are a strict JSON generator."}

        def run(question):
            return fakellm.complete(messages=[SYSTEM_MESSAGE, {"role": "user", "content": question}])
        ''',
    )

    assert module.run("List three colors").task == "SYSTEM_MESSAGE"


def test_local_dict_value(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        def run(kind):
            templates = {"formal": "Rewrite formally, keep the meaning: {text}", "casual": "Rewrite casually, keep it short: {text}"}
            return fakellm.complete(messages=[{"role": "user", "content": templates[kind].format(text="hey")}])
        ''',
    )

    detection = module.run("casual")

    assert detection.task == "casual"
    assert detection.variable == 'templates["casual"]'


# --- fallbacks and records -----------------------------------------------------------------


def test_lambda_and_comprehension_fall_back_to_function(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        def batch(items):
            send = lambda item: fakellm.complete(messages=[{"role": "user", "content": "Label: " + item}])
            return [send(item) for item in items]
        ''',
    )

    assert [d.task for d in module.batch(["a", "b"])] == ["batch", "batch"]


def test_module_level_call_uses_module_name(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        DETECTION = fakellm.complete(messages=[{"role": "user", "content": "Hello " + "there"}])
        ''',
    )

    assert module.DETECTION.rule == "module"
    assert module.DETECTION.task == module.__name__


def test_script_run_as_main_uses_file_name(tmp_path: Path) -> None:
    script = tmp_path / "weekly_report.py"
    script.write_text(
        "from kaizen_sdk._detection import detect_task\n"
        "print(detect_task([{'role': 'user', 'content': 'Hi ' + 'there'}]).task)\n"
    )

    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "weekly_report"


def test_records_file_line_and_template(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        TITLE_PROMPT = "Write a title for this recipe:\\n{recipe}"

        def ask(prompt):
            return fakellm.complete(messages=[{"role": "user", "content": prompt}])

        def make_title(recipe):
            return ask(TITLE_PROMPT.format(recipe=recipe))
        ''',
    )

    detection = module.make_title("Soup")

    assert detection.file == module.__file__
    # The line is where TITLE_PROMPT is read, in the helper's caller.
    assert detection.line == 9
    assert detection.template == "Write a title for this recipe:\n{recipe}"
    assert detection.inputs == {"recipe": "Soup"}


def test_fallback_records_function_frame(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        def chat(text):
            return fakellm.complete(messages=[{"role": "user", "content": text}])
        ''',
    )

    detection = module.chat("hello")

    assert detection == Detection("chat", "function", None, module.__file__, 4, None, None)


def test_never_raises_on_bad_input(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        class Exploding:
            template = property(lambda self: 1 / 0)
            template_format = "f-string"
            input_variables = []

        BROKEN = Exploding()

        def run(messages):
            return fakellm.send_raw(messages)
        ''',
    )

    for messages in (None, [], [None], [{"role": "user", "content": None}], [{"content": [{"type": "text"}]}], "text"):
        assert module.run(messages).task == "run"


def test_recursion_deeper_than_frame_limit(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        DEEP_PROMPT = "Explain recursion to a beginner using {example}."

        def descend(depth):
            if depth:
                return descend(depth - 1)
            return fakellm.complete(messages=[{"role": "user", "content": DEEP_PROMPT.format(example="stairs")}])
        ''',
    )

    assert module.descend(300).task == "DEEP_PROMPT"


def test_async_call_captured_at_creation(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import asyncio

        import fakellm

        def start(topic):
            return fakellm.acomplete(messages=[{"role": "user", "content": f"Tell me about {topic}"}])

        async def run():
            pending = [start(topic) for topic in ("tea", "coffee")]
            return await asyncio.gather(*pending)
        ''',
    )

    assert [d.task for d in asyncio.run(module.run())] == ["start", "start"]


# --- override --------------------------------------------------------------------------------


def test_override_names_calls_in_block(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        PROMPT = "Classify the mood of this review as happy, sad or neutral: {review}"

        def run():
            return fakellm.complete(messages=[{"role": "user", "content": PROMPT.format(review="Loved it")}])
        ''',
    )

    with task("review-mood"):
        inside = module.run()
        with task("inner"):
            nested = module.run()
        after_nested = module.run()
    outside = module.run()

    assert (inside.task, inside.rule) == ("review-mood", "override")
    assert inside.inputs == {"review": "Loved it"}
    assert nested.task == "inner"
    assert after_nested.task == "review-mood"
    assert (outside.task, outside.rule) == ("PROMPT", "template")


def test_override_decorator_sync_and_async(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        def call():
            return fakellm.complete(messages=[{"role": "user", "content": "hi"}])

        async def acall():
            return await fakellm.acomplete(messages=[{"role": "user", "content": "hi"}])
        ''',
    )

    sync_call = task("sync-name")(module.call)
    async_call = task("async-name")(module.acall)

    assert sync_call().task == "sync-name"
    assert asyncio.run(async_call()).task == "async-name"
    assert module.call().task == "call"


def test_override_isolated_between_threads_and_tasks(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        def call():
            return fakellm.complete(messages=[{"role": "user", "content": "hi"}])
        ''',
    )
    seen: dict[str, str] = {}
    shared = task("shared")

    def worker(label: str) -> None:
        with shared:
            seen[label] = module.call().task
        seen[label + "-after"] = module.call().task

    threads = [threading.Thread(target=worker, args=(str(i),)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    async def in_task(name: str) -> str:
        with task(name):
            await asyncio.sleep(0)
            return module.call().task

    async def main() -> list[str]:
        return await asyncio.gather(in_task("a"), in_task("b"))

    assert {seen[str(i)] for i in range(4)} == {"shared"}
    assert {seen[f"{i}-after"] for i in range(4)} == {"call"}
    assert asyncio.run(main()) == ["a", "b"]


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_override_rejects_invalid_name(bad) -> None:
    with pytest.raises(ValueError, match="task name must be a non-empty string"):
        task(bad)


# --- Level 2 ---------------------------------------------------------------------------------


def _detection(name: str, rule: str = "template") -> Detection:
    return Detection(name, rule, name, "app.py", 1, None, None)


def test_task_map_hit_miss_and_ignore() -> None:
    task_map = {"SUMMARY_PROMPT": "summarize"}

    assert apply_task_map(_detection("SUMMARY_PROMPT"), task_map, False) == "summarize"
    assert apply_task_map(_detection("OTHER"), task_map, False) == "OTHER"
    assert apply_task_map(_detection("OTHER"), task_map, True) is None
    assert apply_task_map(_detection("helper", "function"), {"helper": "help"}, True) == "help"
    assert apply_task_map(_detection("x"), None, False) == "x"


def test_task_map_leaves_override_alone() -> None:
    assert apply_task_map(_detection("chosen", "override"), {"chosen": "renamed"}, True) == "chosen"
    assert apply_task_map(_detection("chosen", "override"), {}, True) == "chosen"


def test_detect_task_called_directly_from_user_code() -> None:
    prompt = "Give a one-line fun fact about {animal}."

    detection = detect_task([{"role": "user", "content": prompt.format(animal="otters")}])

    assert detection.task == "prompt"
    assert detection.rule == "template"


# --- caches ----------------------------------------------------------------------------------


def test_rebound_global_and_dict_values_seen(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        SYSTEM = "You are a helpful assistant for gardeners."
        PROMPTS = {"plant": "Suggest a plant for a {light} balcony."}

        def ask(content, system=None):
            messages = [{"role": "user", "content": content}]
            if system:
                messages.insert(0, {"role": "system", "content": system})
            return fakellm.complete(messages=messages)
        ''',
    )
    assert module.ask(module.PROMPTS["plant"].format(light="sunny")).task == "plant"
    assert module.ask("hi", module.SYSTEM).task == "SYSTEM"

    module.SYSTEM = "You are a terse assistant for gardeners."
    module.PROMPTS["plant"] = "Name one herb that grows on a {light} windowsill."
    module.PROMPTS["tree"] = "Suggest a tree for a {size} garden."
    module.LATE_PROMPT = "Explain how to compost {material} at home."

    assert module.ask("hi", "You are a terse assistant for gardeners.").task == "SYSTEM"
    assert module.ask("Name one herb that grows on a shady windowsill.").task == "plant"
    assert module.ask("Suggest a tree for a small garden.").task == "tree"
    assert module.ask("Explain how to compost coffee grounds at home.").task == "LATE_PROMPT"


def test_call_site_cache_follows_changing_prompt(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        PROMPTS = {
            "short": "Answer in one short sentence: {question}",
            "long": "Answer in a detailed paragraph with examples: {question}",
        }

        def ask(kind, question):
            return fakellm.complete(messages=[{"role": "user", "content": PROMPTS[kind].format(question=question)}])
        ''',
    )

    kinds = ["short", "long", "short", "short", "long"]

    assert [module.ask(kind, "Why is the sky blue?").task for kind in kinds] == kinds


def test_cached_template_rechecked_like_full_search(sandbox) -> None:
    # The same call site sends the template rendered, then its raw text, then rendered again.
    # The cached winner's quick recheck must give what the full search gives: a template
    # with inputs, or a fixed prompt when the message is the template text itself.
    module = load(
        sandbox,
        '''
        import fakellm

        GREETING_PROMPT = "Greet the customer by name and ask how we can help: {name}"

        def greet(content):
            return fakellm.complete(messages=[{"role": "user", "content": content}])
        ''',
    )
    contents = [
        module.GREETING_PROMPT.format(name="Ann"),
        module.GREETING_PROMPT,
        module.GREETING_PROMPT.format(name="Bob"),
        "What is the weather like?",
    ]

    # One loop, so every call comes from the same chain of call sites.
    first, raw, again, unrelated = [module.greet(content) for content in contents]

    assert (first.rule, first.inputs) == ("template", {"name": "Ann"})
    assert (raw.task, raw.rule, raw.inputs) == ("GREETING_PROMPT", "fixed_prompt", None)
    assert (again.rule, again.inputs) == ("template", {"name": "Bob"})
    assert unrelated.task == "greet"
    assert unrelated.rule == "function"


def test_outer_global_beats_cached_inner_local(sandbox) -> None:
    # The inner frame's local template wins when no outer frame has a better candidate. The
    # same call site reached through a caller whose module has a global template must then
    # give that global, so the local's win must not be cached for the call site alone.
    module = load(
        sandbox,
        '''
        import fakellm

        def translate(text):
            local_prompt = "Translate the following text into French, keeping names: {text}"
            return fakellm.complete(messages=[{"role": "user", "content": local_prompt.format(text=text)}])

        def plain_caller(text):
            return translate(text)
        ''',
        outer='''
        FRENCH_PROMPT = "Translate the following text into French, keeping names: {text}"

        def caller_with_global(translate, text):
            return translate(text)
        ''',
    )
    # Only the function is kept: a local bound to the module would make FRENCH_PROMPT a
    # candidate in this test's own frame.
    caller_with_global = importlib.import_module("outer").caller_with_global

    first = module.plain_caller("Hello Ann")
    second = caller_with_global(module.translate, "Hello Bob")
    third = module.plain_caller("Hello Cy")

    assert (first.task, first.inputs) == ("local_prompt", {"text": "Hello Ann"})
    assert (second.task, second.inputs) == ("FRENCH_PROMPT", {"text": "Hello Bob"})
    assert (third.task, third.inputs) == ("local_prompt", {"text": "Hello Cy"})


def test_inner_global_wins_for_every_caller(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import helpers

        def from_orders(question):
            return helpers.ask(question)

        def from_billing(question):
            # A local template in an outer frame: the global in the inner frame outranks it.
            template = "Answer the customer's question politely and briefly: {question}"
            return helpers.ask(question)
        ''',
        helpers='''
        import fakellm

        ASK_PROMPT = "Answer the customer's question politely and briefly: {question}"

        def ask(question):
            return fakellm.complete(messages=[{"role": "user", "content": ASK_PROMPT.format(question=question)}])
        ''',
    )

    detections = [
        module.from_orders("Where is my order?"),
        module.from_billing("Why two invoices?"),
        module.from_orders("Can I return it?"),
    ]

    assert [detection.task for detection in detections] == ["ASK_PROMPT"] * 3
    assert [detection.inputs["question"] for detection in detections] == ["Where is my order?", "Why two invoices?", "Can I return it?"]
    assert [Path(detection.file).name for detection in detections] == ["helpers.py"] * 3


def test_call_site_cache_follows_new_library_package(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import kz_support_helpers

        def run(question):
            return kz_support_helpers.ask(question)
        ''',
        kz_support_helpers='''
        import fakellm

        ASK_PROMPT = "Answer the customer's question politely and briefly: {question}"

        def ask(question):
            return fakellm.complete(messages=[{"role": "user", "content": ASK_PROMPT.format(question=question)}])
        ''',
    )
    before = [module.run("Where is my order?") for _ in range(2)]

    register_library_package("kz_support_helpers")
    try:
        after = module.run("Where is my order?")
    finally:
        _frames._LIBRARY_PACKAGES.discard("kz_support_helpers")
        _frames._code_verdicts.clear()
        _frames._module_verdicts.clear()

    assert [detection.task for detection in before] == ["ASK_PROMPT", "ASK_PROMPT"]
    assert before[1].file.endswith("kz_support_helpers.py")
    assert after.file.endswith("main.py")


def test_rebound_template_replaces_cached_winner(sandbox) -> None:
    module = load(
        sandbox,
        '''
        import fakellm

        SUMMARY_PROMPT = "Summarize this note in one line for the team: {note}"

        def summarize(note):
            return fakellm.complete(messages=[{"role": "user", "content": SUMMARY_PROMPT.format(note=note)}])
        ''',
    )
    tasks = []
    for version in range(3):
        module.SUMMARY_PROMPT = f"Summarize this note in one line for team {version}: {{note}}"
        tasks += [module.summarize("Deploy at noon").task for _ in range(2)]

    cached = [entry[1] for entry in _detect._innermost_winners.values() if entry[0] is module.summarize.__code__]

    assert tasks == ["SUMMARY_PROMPT"] * 6
    assert [len(winners) for winners in cached] == [1]
    assert cached[0][0].candidate.value == module.SUMMARY_PROMPT
