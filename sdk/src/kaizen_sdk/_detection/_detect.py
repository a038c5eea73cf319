"""``detect_task``: name an LLM call after the variable that held its prompt.

Runs on the caller's thread when the user's call enters the instrumented library: walk the
user's frames, collect the named strings and template objects in them, find the message that
names the task and the candidate that wins it, and fall back to the calling function or
module. Any failure inside detection is logged (rate-limited) and turned into a fallback
``Detection``; it never reaches the user's code.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, replace
from types import FrameType
from typing import Any

from kaizen_sdk._detection._candidates import collect_candidates
from kaizen_sdk._detection._frames import user_frames
from kaizen_sdk._detection._naming import KIND_TEMPLATE, choose, fallback_frame
from kaizen_sdk._detection._override import current_override

logger = logging.getLogger("kaizen_sdk.detection")

RULE_TEMPLATE = "template"
RULE_FIXED_PROMPT = "fixed_prompt"
RULE_FUNCTION = "function"
RULE_MODULE = "module"
RULE_OVERRIDE = "override"

# Task name when detection failed or found no user frame at all.
UNNAMED_TASK = "unnamed"

_LOG_EVERY_FAILURES = 1000
_failure_count = 0


@dataclass(frozen=True)
class Detection:
    """Where a call's task name came from."""

    task: str  # detected name, before task_map
    rule: str  # "template" | "fixed_prompt" | "function" | "module" | "override"
    variable: str | None  # the name as written where the prompt was found: SUMMARY, PROMPTS["summary"], self.SYSTEM
    file: str | None  # file and line of the user frame where that name is used
    line: int | None
    inputs: dict | None  # placeholder values when a template matched
    template: str | None  # template (or fixed prompt) text: identifies the prompt version


def detect_task(messages: list[dict], *, skip_frames: int = 0) -> Detection:
    """Name the LLM call whose normalized ``messages`` the caller is about to send.

    Call it on the thread of the user's call, before any hop to an executor or another
    asyncio task; ``skip_frames`` drops that many extra innermost frames (library frames are
    skipped anyway). Never raises.
    """
    override = current_override()
    try:
        detection = _detect(messages, sys._getframe(1 + skip_frames))
    except Exception as exc:  # detection must never break the user's call
        _log_failure(exc)
        detection = Detection(UNNAMED_TASK, RULE_MODULE, None, None, None, None, None)

    if override is not None:
        return replace(detection, task=override, rule=RULE_OVERRIDE)
    return detection


def _detect(messages: Any, start: FrameType | None) -> Detection:
    frames = user_frames(start)
    try:
        candidates, infos = collect_candidates(frames)
        if isinstance(messages, (list, tuple)):
            choice = choose(candidates, list(messages))
        else:
            choice = None

        if choice is not None:
            candidate = choice.candidate
            frame = frames[candidate.report_index]
            if candidate.template is not None:
                template_text = candidate.template.text
            else:
                template_text = candidate.text
            rule = RULE_TEMPLATE if choice.kind == KIND_TEMPLATE else RULE_FIXED_PROMPT
            return Detection(
                task=candidate.name,
                rule=rule,
                variable=candidate.path,
                file=frame.f_code.co_filename,
                line=frame.f_lineno,
                inputs=choice.inputs if rule == RULE_TEMPLATE else None,
                template=template_text,
            )

        fallback = fallback_frame(frames, infos)
        if fallback is None:
            return Detection(UNNAMED_TASK, RULE_MODULE, None, None, None, None, None)
        name, rule, frame = fallback
        return Detection(name, rule, None, frame.f_code.co_filename, frame.f_lineno, None, None)
    finally:
        # Frames reference every local of the user's code; drop them promptly.
        del frames


def _log_failure(exc: BaseException) -> None:
    global _failure_count
    _failure_count += 1
    if _failure_count == 1 or _failure_count % _LOG_EVERY_FAILURES == 0:
        logger.warning(
            "task detection failed (%d failures so far); the call is traced as %r: %s: %s",
            _failure_count,
            UNNAMED_TASK,
            type(exc).__name__,
            exc,
            exc_info=_failure_count == 1,
        )
