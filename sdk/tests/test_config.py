"""Settings resolution: keywords over KAIZEN_* variables over defaults, and clear errors."""

from __future__ import annotations

import pytest

from kaizen_sdk._config import (
    DEFAULT_BASE_URL,
    ENV_VARS,
    EXPORTER_KEYWORDS,
    Settings,
    resolve_base_url,
    resolve_settings,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS.values():
        monkeypatch.delenv(name, raising=False)


def test_defaults_without_environment() -> None:
    settings = resolve_settings()

    assert settings == Settings()
    assert settings.api_key is None
    assert settings.base_url == DEFAULT_BASE_URL == "http://localhost:8000"
    assert settings.exit_timeout == 2.0
    assert settings.spool_dir is None
    assert settings.sample_rate == 1.0
    assert not settings.enabled


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("KAIZEN_API_KEY", "env-key")
    monkeypatch.setenv("KAIZEN_BASE_URL", "http://127.0.0.1:9999/")
    monkeypatch.setenv("KAIZEN_MAX_QUEUE_SIZE", "500")
    monkeypatch.setenv("KAIZEN_FLUSH_INTERVAL", "0.25")
    monkeypatch.setenv("KAIZEN_SPOOL_DIR", str(tmp_path))
    monkeypatch.setenv("KAIZEN_SAMPLE_RATE", "0.5")

    settings = resolve_settings()

    assert settings.api_key == "env-key"
    assert settings.base_url == "http://127.0.0.1:9999"
    assert settings.max_queue_size == 500
    assert settings.flush_interval == 0.25
    assert settings.spool_dir == str(tmp_path)
    assert settings.sample_rate == 0.5
    assert settings.enabled


def test_keywords_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAIZEN_API_KEY", "env-key")
    monkeypatch.setenv("KAIZEN_MAX_BATCH_SIZE", "10")

    settings = resolve_settings(api_key="kw-key", max_batch_size=20)

    assert settings.api_key == "kw-key"
    assert settings.max_batch_size == 20


def test_none_keyword_falls_back_to_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAIZEN_API_KEY", "env-key")

    assert resolve_settings(api_key=None).api_key == "env-key"


def test_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAIZEN_API_KEY", "")
    monkeypatch.setenv("KAIZEN_MAX_RETRIES", "  ")

    settings = resolve_settings()

    assert settings.api_key is None
    assert settings.max_retries == Settings().max_retries


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("KAIZEN_MAX_BATCH_SIZE", "abc", "KAIZEN_MAX_BATCH_SIZE='abc'"),
        ("KAIZEN_MAX_QUEUE_SIZE", "0", "KAIZEN_MAX_QUEUE_SIZE='0'"),
        ("KAIZEN_FLUSH_INTERVAL", "soon", "KAIZEN_FLUSH_INTERVAL='soon'"),
        ("KAIZEN_SAMPLE_RATE", "1.5", "KAIZEN_SAMPLE_RATE='1.5'"),
        ("KAIZEN_BASE_URL", "localhost:8000", "KAIZEN_BASE_URL='localhost:8000'"),
    ],
)
def test_invalid_variable_names_value(monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValueError) as caught:
        resolve_settings()

    assert expected in str(caught.value)
    assert "expected" in str(caught.value)


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("max_batch_size", 0),
        ("max_batch_size", True),
        ("max_batch_size", 2.5),
        ("request_timeout", -1),
        ("request_timeout", float("nan")),
        ("sample_rate", 2),
        ("sample_rate", -0.1),
        ("base_url", "ftp://example"),
        ("redact", "not callable"),
        ("max_field_chars", 10),
    ],
)
def test_invalid_keyword_names_value(keyword: str, value: object) -> None:
    with pytest.raises(ValueError) as caught:
        resolve_settings(**{keyword: value})

    assert f"setting {keyword}=" in str(caught.value)
    assert "expected" in str(caught.value)


def test_unknown_keyword_lists_accepted() -> None:
    with pytest.raises(TypeError) as caught:
        resolve_settings(batch=5)

    assert "batch" in str(caught.value)
    assert "max_batch_size" in str(caught.value)


def test_api_key_not_in_repr() -> None:
    settings = resolve_settings(api_key="secret-key-123")

    assert "secret-key-123" not in repr(settings)


def test_settings_are_frozen() -> None:
    settings = resolve_settings()

    with pytest.raises(AttributeError):
        settings.api_key = "x"  # type: ignore[misc]


def test_keywords_cover_every_setting() -> None:
    assert "api_key" in EXPORTER_KEYWORDS
    assert "base_url" in EXPORTER_KEYWORDS
    assert "redact" in EXPORTER_KEYWORDS
    assert "sample_rate" in EXPORTER_KEYWORDS
    assert "redact" not in ENV_VARS
    assert ENV_VARS["spool_dir"] == "KAIZEN_SPOOL_DIR"
    assert set(ENV_VARS) == set(EXPORTER_KEYWORDS) - {"redact"}


def test_redact_callable_accepted() -> None:
    def mask(trace: dict) -> dict:
        return trace

    assert resolve_settings(redact=mask).redact is mask


def test_spool_dir_expands_home(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))

    assert resolve_settings(spool_dir="~/spool").spool_dir == str(tmp_path / "spool")


def test_spool_dir_created_when_missing(tmp_path) -> None:
    folder = tmp_path / "nested" / "spool"

    assert resolve_settings(spool_dir=str(folder)).spool_dir == str(folder)
    assert folder.is_dir()


def test_spool_dir_unusable_rejected(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    with pytest.raises(ValueError, match="invalid setting spool_dir=.*cannot create the folder.*choose a writable folder"):
        resolve_settings(spool_dir=str(blocker / "spool"))


def test_sample_rate_error_names_range() -> None:
    with pytest.raises(ValueError, match=r"invalid setting sample_rate=1\.5: expected a number from 0 to 1$"):
        resolve_settings(sample_rate=1.5)


def test_base_url_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_base_url() == DEFAULT_BASE_URL
    assert resolve_base_url("https://ct.example.com/") == "https://ct.example.com"

    monkeypatch.setenv("KAIZEN_BASE_URL", "http://127.0.0.1:1234")
    assert resolve_base_url() == "http://127.0.0.1:1234"
    with pytest.raises(ValueError):
        resolve_base_url("nope")
