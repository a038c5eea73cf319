"""Level 2 naming: map detected task names to the names a product uses."""

from __future__ import annotations

from typing import Mapping

from kaizen_sdk._detection._detect import RULE_OVERRIDE, Detection


def apply_task_map(detection: Detection, task_map: Mapping[str, str] | None, ignore_unmapped: bool) -> str | None:
    """Return the task name to record for ``detection``, or None when the call is not traced.

    The detected name (a variable's, a dict key, an attribute's, or a function's when no
    variable held the prompt) is looked up in ``task_map``. A hit gives the mapped name; a miss
    keeps the detected name, or returns None with ``ignore_unmapped``. A name set with
    ``kaizen_sdk.task(...)`` is returned unchanged and is always traced.
    """
    if detection.rule == RULE_OVERRIDE:
        return detection.task

    if task_map:
        mapped = task_map.get(detection.task)
        if mapped is not None:
            return mapped

    if ignore_unmapped:
        return None
    return detection.task
