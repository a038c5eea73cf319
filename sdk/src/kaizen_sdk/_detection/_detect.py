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
from types import CodeType, FrameType
from typing import Any

from kaizen_sdk._detection._candidates import SCOPE_ATTRIBUTE, Candidate, collect_candidates, resolve
from kaizen_sdk._detection._frames import innermost_user_frame, user_frames
from kaizen_sdk._detection._naming import (
    KIND_TEMPLATE,
    UNDECIDED,
    Choice,
    choose,
    fallback_frame,
    last_user_index,
    rematch,
    rematch_inputs,
    sole_matcher,
)
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

# Winners cached per chain of call sites: the id of each user frame's code object and its
# instruction offset, flattened into one tuple of ints, which hashes far faster than code
# objects do. The entry keeps those code objects alive, so their ids cannot be reused. A call
# site that alternates between prompts (`PROMPTS[kind]`) keeps a few winners.
_MAX_CACHED_SITES = 4096
_MAX_WINNERS_PER_SITE = 4
_site_winners: dict[tuple[int, ...], tuple[tuple[CodeType, ...], list[_Winner]]] = {}
# Winners that no frame further out can beat, cached per innermost call site alone: (id of the
# code object, instruction offset) -> (the code object, winners). Such a winner is a string
# template bound to a global or attribute name in the innermost user frame. Candidates rank
# by kind first, then by scope, then by frame, so a candidate in an outer frame always ranks
# below it. Checking it needs neither the walk to the outer frames nor the chain's key.
_innermost_winners: dict[tuple[int, int], tuple[CodeType, list[_Winner]]] = {}


class _Winner:
    """A cached winner and, for a string template, the one matcher that checks it again."""

    __slots__ = ("candidate", "matcher")

    def __init__(self, candidate: Candidate) -> None:
        self.candidate = candidate
        self.matcher = sole_matcher(candidate)


@dataclass(slots=True)
class Detection:
    """The task name of one LLM call and the evidence for it; treat it as read-only.

    Not frozen: a frozen dataclass sets each field through ``object.__setattr__``, which
    more than doubles the cost of the one instance every traced call creates.
    """

    task: str  # detected name, before task_map
    rule: str  # "template" | "fixed_prompt" | "function" | "module" | "override"
    variable: str | None  # the name as written where the prompt was found: SUMMARY, PROMPTS["summary"], self.SYSTEM
    file: str | None  # file and line of the user frame where that name is used
    line: int | None
    inputs: dict | None  # placeholder values when a template matched
    template: str | None  # template (or fixed prompt) text: identifies the prompt version


def detect_task(messages: list[dict], *, skip_frames: int = 0, caller: FrameType | None = None) -> Detection:
    """Name the LLM call whose normalized ``messages`` the caller is about to send.

    Call it on the thread of the user's call, before any hop to an executor or another
    asyncio task. The walk starts at ``caller`` when given (the frame that called the
    patched function), else at the frame that called this function, with ``skip_frames``
    more innermost frames dropped. Library frames are skipped anyway. Never raises: a
    failure is logged and gives the "unnamed" fallback.
    """
    override = current_override()
    try:
        detection = _detect(messages, caller if caller is not None else sys._getframe(1 + skip_frames))
    except Exception as exc:  # detection must never break the user's call
        _log_failure(exc)
        detection = Detection(UNNAMED_TASK, RULE_MODULE, None, None, None, None, None)

    if override is not None:
        detection = replace(detection, task=override, rule=RULE_OVERRIDE)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "task %r (rule %s, variable %s) at %s:%s",
            detection.task,
            detection.rule,
            detection.variable,
            detection.file,
            detection.line,
        )
    return detection


def _detect(messages: Any, start: FrameType | None) -> Detection:
    if _innermost_winners and type(messages) is list:
        detection = _innermost_detection(messages, innermost_user_frame(start))
        if detection is not None:
            return detection

    frames = user_frames(start)
    try:
        if type(messages) is list:
            message_list = messages
        elif isinstance(messages, tuple):
            message_list = list(messages)
        else:
            message_list = []

        # Fast path: the same chain of call sites usually sends the same prompt. A winner
        # cached for it still names the call when its name still refers to the same object
        # and that object still matches the last user message.
        site = _site_key(frames)
        entry = _site_winners.get(site)
        if entry is not None:
            for winner in entry[1]:
                candidate = winner.candidate
                value = resolve(candidate.locator, frames)
                if value is not candidate.value and not (type(value) is str and value == candidate.value):
                    # An equal string counts: each new instance builds its own copy of
                    # `self.prompt_template`.
                    continue

                if winner.matcher is not None:
                    inputs = rematch_inputs(candidate, winner.matcher, message_list)
                    if inputs is None:
                        continue
                    if inputs is not UNDECIDED:
                        frame = frames[candidate.report_index]
                        return Detection(
                            candidate.name, RULE_TEMPLATE, candidate.path, frame.f_code.co_filename, frame.f_lineno, inputs, candidate.text
                        )

                choice = rematch(candidate, message_list)
                if choice is not None:
                    return _from_choice(choice, frames)

        found = collect_candidates(frames)
        choice = choose(found, message_list)
        if choice is not None:
            if choice.message_index == last_user_index(message_list):
                _remember(site, frames, choice.candidate)
            return _from_choice(choice, frames)

        fallback = fallback_frame(frames, found.infos)
        if fallback is None:
            return Detection(UNNAMED_TASK, RULE_MODULE, None, None, None, None, None)
        name, rule, frame = fallback
        return Detection(name, rule, None, frame.f_code.co_filename, frame.f_lineno, None, None)
    finally:
        # Frames reference every local of the user's code; drop them promptly.
        del frames


def _innermost_detection(messages: list, start: FrameType | None) -> Detection | None:
    """Return the detection of a winner cached for the call site of ``start``, or None to search.

    ``start`` is the innermost user frame. Winners cached for its call site are checked like
    the chain's winners are: same object behind the name, and the last user message matches.
    """
    if start is None:
        return None

    code = start.f_code
    entry = _innermost_winners.get((id(code), start.f_lasti))
    if entry is None:
        return None

    for winner in entry[1]:
        candidate = winner.candidate
        value = resolve(candidate.locator, (start,))
        if value is not candidate.value and not (type(value) is str and value == candidate.value):
            continue

        inputs = rematch_inputs(candidate, winner.matcher, messages)
        if inputs is None or inputs is UNDECIDED:
            continue
        return Detection(candidate.name, RULE_TEMPLATE, candidate.path, code.co_filename, start.f_lineno, inputs, candidate.text)

    return None


def _from_choice(choice: Choice, frames: list[FrameType]) -> Detection:
    candidate = choice.candidate
    frame = frames[candidate.report_index]
    template_text = candidate.template.text if candidate.template is not None else candidate.text
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


def _site_key(frames: list[FrameType]) -> tuple[int, ...]:
    key: list[int] = []
    for frame in frames:
        key.append(id(frame.f_code))
        key.append(frame.f_lasti)
    return tuple(key)


def _remember(site: tuple[int, ...], frames: list[FrameType], candidate: Candidate) -> None:
    # NOTE: the fast path does not look for a better candidate that appeared after the
    # winner was cached, such as a global bound while the app runs. Such a change shows up
    # once the cached winner stops matching.
    winner = _Winner(candidate)
    entry = _site_winners.get(site)
    if entry is None:
        if len(_site_winners) >= _MAX_CACHED_SITES:
            _site_winners.clear()
        _site_winners[site] = (tuple([frame.f_code for frame in frames]), [winner])
    else:
        _add_winner(entry[1], winner)

    innermost = frames[0]
    if not _beats_outer_frames(winner) or innermost_user_frame(innermost) is not innermost:
        # In an application installed into site-packages, frames[0] is not a user frame by
        # the path test, and _detect would never look its call site up.
        return

    key = (id(innermost.f_code), innermost.f_lasti)
    entry = _innermost_winners.get(key)
    if entry is None:
        if len(_innermost_winners) >= _MAX_CACHED_SITES:
            _innermost_winners.clear()
        _innermost_winners[key] = (innermost.f_code, [winner])
        return

    # A name bound to a new template replaces its old winner, which can no longer match.
    winners = [known for known in entry[1] if known.candidate.locator != candidate.locator]
    _add_winner(winners, winner)
    _innermost_winners[key] = (innermost.f_code, winners)


def _add_winner(winners: list[_Winner], winner: _Winner) -> None:
    if len(winners) >= _MAX_WINNERS_PER_SITE:
        winners.pop(0)
    winners.append(winner)


def _beats_outer_frames(winner: _Winner) -> bool:
    """Tell whether no candidate in a frame outside the innermost one can outrank ``winner``.

    That holds for a string template named by a global or an attribute (the best kind and
    scope) and found in the innermost frame, whose name is read there too.
    """
    candidate = winner.candidate
    return (
        winner.matcher is not None
        and candidate.scope == SCOPE_ATTRIBUTE
        and candidate.frame_index == 0
        and candidate.report_index == 0
        and candidate.locator[1] == 0
    )


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
