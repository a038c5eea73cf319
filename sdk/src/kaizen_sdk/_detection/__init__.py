"""Task detection: name each LLM call after the variable that held its prompt.

``detect_task(messages)`` walks the caller's frames (``_frames``), collects the named strings
and template objects in them (``_candidates``, ``_template_objects``), matches them against
the messages (``_matchers``), and picks the name (``_naming``). ``task("name")`` overrides
the result for a block of code (``_override``); ``apply_task_map`` applies Level 2 naming
(``_task_map``).
"""

from kaizen_sdk._detection._detect import (
    RULE_FIXED_PROMPT,
    RULE_FUNCTION,
    RULE_MODULE,
    RULE_OVERRIDE,
    RULE_TEMPLATE,
    UNNAMED_TASK,
    Detection,
    detect_task,
)
from kaizen_sdk._detection._frames import register_library_package
from kaizen_sdk._detection._override import current_override, task
from kaizen_sdk._detection._task_map import apply_task_map

__all__ = [
    "Detection",
    "detect_task",
    "task",
    "current_override",
    "apply_task_map",
    "register_library_package",
    "RULE_TEMPLATE",
    "RULE_FIXED_PROMPT",
    "RULE_FUNCTION",
    "RULE_MODULE",
    "RULE_OVERRIDE",
    "UNNAMED_TASK",
]
