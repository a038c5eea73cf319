"""Template matchers: the placeholder values read back from a rendered message."""

from __future__ import annotations

import pytest

from kaizen_sdk._detection._matchers import SYNTAX_FORMAT, SYNTAX_JINJA, build_matcher


@pytest.mark.parametrize(
    ("template", "text", "expected"),
    [
        ("Summarize this ticket: {ticket}", "Summarize this ticket: printer jams", {"ticket": "printer jams"}),
        ("Summarize this ticket: {ticket}", "Summarize this ticket: printer jams \n\t ", {"ticket": "printer jams"}),
        ("Summarize this ticket: {ticket}", "Summarize this ticket: line one\nline two\n", {"ticket": "line one\nline two"}),
        ("Summarize this ticket: {ticket}", "Summarize this ticket: ", {"ticket": ""}),
        ("Ticket {ticket} for team {team}", "Ticket 42 for team ops  ", {"ticket": "42", "team": "ops"}),
        ("Ticket {ticket} ends here.", "Ticket 42 ends here.", {"ticket": "42"}),
        ("Say {word} twice: {word}", "Say hi twice: hi ", {"word": "hi"}),
    ],
)
def test_format_values_read_back(template, text, expected):
    matcher = build_matcher(template, SYNTAX_FORMAT)

    assert matcher is not None
    assert matcher.match(text) == expected


def test_repeated_value_must_agree():
    matcher = build_matcher("Say {word} twice: {word}", SYNTAX_FORMAT)

    assert matcher.match("Say hi twice: bye") is None


def test_other_text_does_not_match():
    matcher = build_matcher("Summarize this ticket: {ticket}", SYNTAX_FORMAT)

    assert matcher.match("Translate this ticket: printer jams") is None


def test_jinja_block_at_end_matches_anything():
    matcher = build_matcher("Items:{% for item in items %} {{ item }}{% endfor %}", SYNTAX_JINJA)

    assert matcher is not None
    assert matcher.match("Items: a b c\n") == {}
