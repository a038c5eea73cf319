"""Template matchers: does a message text come from a template string, and with which values?

A template string is parsed once per syntax (``str.format``, ``%`` formatting,
``string.Template`` and Jinja / Mustache) into literal text and placeholders, then compiled
into one anchored regular expression. Placeholders become lazy groups, so a match yields the
placeholder values as the call's inputs. Runs of whitespace in the literal text match any
run of whitespace, which lets one matcher accept the template after ``.strip()``,
``textwrap.dedent`` or ``inspect.cleandoc``. Before the regular expression runs, a cheap
substring test on the longest literal word rejects nearly every text that cannot match.

Matchers are cached by template string: module-level templates hit the stable cache on every
call; strings found in local variables (often rendered prompts, new on every call) go to a
small separate cache so they cannot evict the stable entries.
"""

from __future__ import annotations

import re
import string
from typing import Iterable

# A template whose literal text has fewer non-whitespace characters than this matches almost
# any text (`"{question}"`, `"Q: {q}"`), so it never names a task on its own.
MIN_LITERAL_CHARS = 6

SYNTAX_FORMAT = "format"
SYNTAX_PERCENT = "percent"
SYNTAX_DOLLAR = "dollar"
SYNTAX_JINJA = "jinja"
ALL_SYNTAXES = (SYNTAX_FORMAT, SYNTAX_JINJA, SYNTAX_PERCENT, SYNTAX_DOLLAR)

_STABLE_CACHE_SIZE = 4096
_VOLATILE_CACHE_SIZE = 256

_FORMATTER = string.Formatter()
_PERCENT_FIELD = re.compile(
    r"%(?:\((?P<name>[^()]*)\))?[#0+\-]*(?:\d+|\*)?(?:\.(?:\d+|\*))?[hlL]?(?P<conversion>[diouxXeEfFgGcrsa%])"
)
_JINJA_TAG = re.compile(
    r"\{\{\{(?P<raw>.*?)\}\}\}|\{\{(?P<expr>.*?)\}\}|\{%(?P<block>.*?)%\}|\{#.*?#\}",
    re.DOTALL,
)
_MUSTACHE_SECTION_SIGILS = ("#", "/", "^")

# A token is (is_placeholder, value). A placeholder value is its input key, or None for a
# span that renders to unknown text without naming an input (Jinja blocks, comments).
Token = tuple[bool, "str | None"]


class Matcher:
    """A compiled template: matches a whole message text and returns the placeholder values."""

    __slots__ = (
        "syntax",
        "anchor",
        "first_word",
        "last_word",
        "complete_first_word",
        "literal_chars",
        "_tokens",
        "_regex",
        "_groups",
        "_strip_key",
    )

    def __init__(self, syntax: str, tokens: list[Token]) -> None:
        self.syntax = syntax
        self._tokens = tokens
        self._regex: re.Pattern[str] | None = None
        self._groups: list[tuple[str, str]] = []
        self._strip_key: str | None = None  # input key of a greedy last group, see _compile

        words = [word for is_placeholder, value in tokens if not is_placeholder for word in (value or "").split()]
        self.literal_chars = sum(len(word) for word in words)
        self.anchor = max(words, key=len) if words else ""

        # The first and last literal words, when the template starts or ends with literal
        # text, must start or end the message: another cheap rejection before the regex.
        first, last = tokens[0], tokens[-1]
        first_literal = (first[1] or "") if not first[0] else ""
        first_words = first_literal.split()
        last_words = (last[1] or "").split() if not last[0] else []
        self.first_word = first_words[0] if first_words else ""
        self.last_word = last_words[-1] if last_words else ""
        # The first word as the message will show it, when whitespace follows it in the
        # template: then the message's first word equals it, which lets an index find the
        # template by the message's first word.
        complete = len(first_words) > 1 or (first_words and first_literal[-1].isspace())
        self.complete_first_word = self.first_word if complete else ""

    def match(self, text: str) -> dict[str, str] | None:
        """Return the placeholder values when ``text`` renders this template, else None."""
        if self.anchor not in text:
            return None
        if self.first_word and not text.lstrip().startswith(self.first_word):
            return None
        if self.last_word and not text.rstrip().endswith(self.last_word):
            return None

        regex = self._regex
        if regex is None:
            regex = self._compile()
        found = regex.match(text)
        if found is None:
            return None

        # A loop, not a comprehension: in Python 3.11 a comprehension is a function call.
        values = {}
        for group, key in self._groups:
            values[key] = found.group(group)
        if self._strip_key is not None:
            # The greedy last group also took the trailing whitespace that `\s*\Z` would have.
            values[self._strip_key] = values[self._strip_key].rstrip()
        return values

    def _compile(self) -> re.Pattern[str]:
        pieces: list[str] = [r"\s*"]
        group_of_key: dict[str, str] = {}
        last = len(self._tokens) - 1
        # A lazy `(.*?)\s*\Z` at the end retries the tail at every character (about 2 µs for a
        # 100-character value); a greedy `(.*)\Z` matches at once and match() strips the
        # trailing whitespace from the value instead, which gives the same value.
        greedy_end = False
        for position, (is_placeholder, value) in enumerate(self._tokens):
            at_end = position == last
            if not is_placeholder:
                pieces.append(_literal_pattern(value or "", position == 0, at_end))
            elif value is None:
                pieces.append(r"(?:.*)" if at_end else r"(?:.*?)")
                greedy_end = at_end
            elif value in group_of_key:
                # The same placeholder twice renders the same value twice.
                pieces.append(f"(?P={group_of_key[value]})")
            else:
                group = f"g{len(group_of_key)}"
                group_of_key[value] = group
                self._groups.append((group, value))
                if at_end:
                    pieces.append(f"(?P<{group}>.*)")
                    self._strip_key = value
                    greedy_end = True
                else:
                    pieces.append(f"(?P<{group}>.*?)")
        pieces.append(r"\Z" if greedy_end else r"\s*\Z")

        pattern = "".join(_drop_repeated_blank_runs(pieces))
        self._regex = re.compile(pattern, re.DOTALL)
        return self._regex


def _literal_pattern(text: str, at_start: bool, at_end: bool) -> str:
    # Whitespace inside the template survives strip() and dedent() as at least one
    # character (dedent keeps the newline), so it matches `\s+`. Only whitespace at the very
    # start or end of the template may vanish, so it matches `\s*`.
    inner_blank = r"\s*" if at_start or at_end else r"\s+"
    words = text.split()
    if not words:
        return inner_blank

    body = r"\s+".join(re.escape(word) for word in words)
    if text[0].isspace():
        body = (r"\s*" if at_start else r"\s+") + body
    if text[-1].isspace():
        body = body + (r"\s*" if at_end else r"\s+")
    return body


def _drop_repeated_blank_runs(pieces: Iterable[str]) -> list[str]:
    # Consecutive optional-whitespace runs (`\s*\s*`) only slow a failing match down.
    result: list[str] = []
    for piece in pieces:
        if result and result[-1].endswith(r"\s*") and piece.startswith(r"\s*"):
            piece = piece[3:]
            if not piece:
                continue
        result.append(piece)
    return result


def _parse_format(text: str) -> list[Token] | None:
    tokens: list[Token] = []
    next_index = 0
    try:
        for literal, field, _spec, _conversion in _FORMATTER.parse(text):
            if literal:
                tokens.append((False, literal))
            if field is None:
                continue
            if field == "":
                field = str(next_index)
                next_index += 1
            tokens.append((True, field))
    except ValueError:
        return None

    return tokens


def _parse_percent(text: str) -> list[Token] | None:
    tokens: list[Token] = []
    position = 0
    next_index = 0
    for found in _PERCENT_FIELD.finditer(text):
        literal = text[position : found.start()]
        position = found.end()
        if found.group("conversion") == "%":
            tokens.append((False, literal + "%"))
            continue
        if literal:
            tokens.append((False, literal))
        name = found.group("name")
        if name is None:
            name = str(next_index)
            next_index += 1
        tokens.append((True, name))
    if position < len(text):
        tokens.append((False, text[position:]))

    return tokens


def _parse_dollar(text: str, pattern: re.Pattern[str] | None = None) -> list[Token] | None:
    pattern = pattern or string.Template.pattern
    tokens: list[Token] = []
    position = 0
    for found in pattern.finditer(text):
        groups = found.groupdict()
        literal = text[position : found.start()]
        position = found.end()
        name = groups.get("named") or groups.get("braced")
        if name is None:
            # `$$` renders one delimiter; an invalid placeholder is kept as written.
            rendered = found.group(0)[: len(found.group(0)) // 2] if groups.get("escaped") is not None else found.group(0)
            tokens.append((False, literal + rendered))
            continue
        if literal:
            tokens.append((False, literal))
        tokens.append((True, name))
    if position < len(text):
        tokens.append((False, text[position:]))

    return tokens


def _parse_jinja(text: str) -> list[Token] | None:
    tags = list(_JINJA_TAG.finditer(text))
    if not tags:
        return None

    # Control blocks (`{% for %}`, `{% if %}`, Mustache sections) may repeat or drop the
    # text between them, so everything from the first block tag to the end of the last one
    # matches as one unknown span and names no input.
    block_tags = [tag for tag in tags if _is_block_tag(tag)]
    region = (block_tags[0].start(), block_tags[-1].end()) if block_tags else None

    tokens: list[Token] = []
    position = 0
    trim_next = False
    region_done = region is None
    for tag in tags:
        if not region_done and tag.start() >= region[0]:
            _append_literal(tokens, _trim(text[position : region[0]], trim_next, block_tags[0].group(0)[2:3] == "-"))
            tokens.append((True, None))
            position = region[1]
            trim_next = block_tags[-1].group(0)[-3:-2] == "-"
            region_done = True
        if tag.start() < position:
            continue

        # `{{-` / `-}}` (and the `{%` forms) make Jinja drop the whitespace on that side.
        _append_literal(tokens, _trim(text[position : tag.start()], trim_next, tag.group(0)[2:3] == "-"))
        position = tag.end()
        trim_next = tag.group(0)[-3:-2] == "-"
        tokens.append((True, _jinja_key(tag)))
    _append_literal(tokens, _trim(text[position:], trim_next, False))

    return tokens


def _trim(literal: str, left: bool, right: bool) -> str:
    if left:
        literal = literal.lstrip()
    if right:
        literal = literal.rstrip()
    return literal


def _is_block_tag(tag: re.Match[str]) -> bool:
    if tag.group("block") is not None:
        return True

    expression = tag.group("expr")
    return expression is not None and expression.strip("-~ \t\n").startswith(_MUSTACHE_SECTION_SIGILS)


def _jinja_key(tag: re.Match[str]) -> str | None:
    expression = tag.group("raw") if tag.group("raw") is not None else tag.group("expr")
    if expression is None:
        return None  # a comment renders nothing

    key = expression.strip("-+~ \t\r\n")
    if key.startswith(("!", ">")):
        return None
    if key.startswith("&"):
        key = key[1:].strip()
    return key or None


def _append_literal(tokens: list[Token], literal: str) -> None:
    if literal:
        tokens.append((False, literal))


_PARSERS = {
    SYNTAX_FORMAT: _parse_format,
    SYNTAX_PERCENT: _parse_percent,
    SYNTAX_DOLLAR: _parse_dollar,
    SYNTAX_JINJA: _parse_jinja,
}
# Characters without which a syntax cannot have a placeholder: a free test before parsing.
_TRIGGERS = {SYNTAX_FORMAT: "{", SYNTAX_PERCENT: "%", SYNTAX_DOLLAR: "$", SYNTAX_JINJA: "{"}


def build_matcher(text: str, syntax: str, dollar_pattern: re.Pattern[str] | None = None) -> Matcher | None:
    """Parse ``text`` in one syntax; None when it is malformed there or has no placeholder."""
    if _TRIGGERS[syntax] not in text:
        return None

    if syntax == SYNTAX_DOLLAR:
        tokens = _parse_dollar(text, dollar_pattern)
    else:
        tokens = _PARSERS[syntax](text)
    if not tokens or not any(is_placeholder for is_placeholder, _ in tokens):
        return None

    return Matcher(syntax, tokens)


_stable: dict[tuple[str, tuple[str, ...]], tuple[Matcher, ...]] = {}
_volatile: dict[tuple[str, tuple[str, ...]], tuple[Matcher, ...]] = {}
_NO_MATCHERS: tuple[Matcher, ...] = ()


def matchers_for(text: str, syntaxes: tuple[str, ...] = ALL_SYNTAXES, *, volatile: bool = False) -> tuple[Matcher, ...]:
    """Return the matchers of ``text`` in each syntax where it has placeholders, most literal first.

    ``volatile`` marks strings that are likely new on every call (local variables); they are
    cached apart so they cannot push out the templates that repeat.
    """
    if "{" not in text and "%" not in text and "$" not in text:
        return _NO_MATCHERS

    key = (text, syntaxes)
    cache = _volatile if volatile else _stable
    cached = cache.get(key)
    if cached is not None:
        return cached
    if volatile:
        cached = _stable.get(key)
        if cached is not None:
            return cached

    built = [matcher for syntax in syntaxes if (matcher := build_matcher(text, syntax)) is not None]
    built.sort(key=lambda matcher: -matcher.literal_chars)
    result = tuple(built)
    if len(cache) >= (_VOLATILE_CACHE_SIZE if volatile else _STABLE_CACHE_SIZE):
        cache.clear()
    cache[key] = result
    return result


def normalize_whitespace(text: str) -> str:
    """Return ``text`` with every run of whitespace made one space and both ends stripped."""
    return " ".join(text.split())
