"""GenAgentSettings.from_env and Secret: every problem reported at once, secrets hidden."""

from __future__ import annotations

import pytest

from adapter.config import DEFAULT_API_BASE_URL, ConfigError, GenAgentSettings, Secret

SECRET_VALUE = "s3cr3t-value-from-env"
GOOD_ENV = {"GA_API_ID": "id-123", "GA_API_SECRET": SECRET_VALUE}


def env(**changes: str) -> dict[str, str]:
    values = dict(GOOD_ENV)
    values.update(changes)
    return values


def config_error(values: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        GenAgentSettings.from_env(values)
    return caught.value


def test_defaults():
    settings = GenAgentSettings.from_env(dict(GOOD_ENV))

    assert settings.base_url == "https://api.sandbox.asapp.com"
    assert settings.base_url == DEFAULT_API_BASE_URL
    assert settings.api_id == "id-123"
    assert settings.api_secret == Secret(SECRET_VALUE)
    assert settings.api_secret.reveal() == SECRET_VALUE
    assert settings.deadline == 4.0
    assert settings.attempt_timeout == 2.0
    assert settings.max_requests_per_second == 100


def test_explicit_values_are_read_and_trimmed():
    settings = GenAgentSettings.from_env(
        env(
            GA_API_BASE_URL=" https://api.asapp.com/ ",
            GA_API_ID="  id-456 ",
            GA_API_DEADLINE="2.5",
            GA_API_ATTEMPT_TIMEOUT="0.75",
            GA_API_MAX_RPS="50",
        )
    )

    assert settings.base_url == "https://api.asapp.com"
    assert settings.api_id == "id-456"
    assert settings.deadline == 2.5
    assert settings.attempt_timeout == 0.75
    assert settings.max_requests_per_second == 50


def test_blank_optional_values_fall_back_to_defaults():
    settings = GenAgentSettings.from_env(env(GA_API_BASE_URL="  ", GA_API_MAX_RPS=""))

    assert settings.base_url == DEFAULT_API_BASE_URL
    assert settings.max_requests_per_second == 100


def test_missing_id_and_secret_are_reported_together():
    error = config_error({})

    assert len(error.problems) == 2
    message = str(error)
    assert "GA_API_ID" in message
    assert "GA_API_SECRET" in message
    assert any("GA_API_ID" in p for p in error.problems)
    assert any("GA_API_SECRET" in p for p in error.problems)


def test_blank_id_and_secret_count_as_missing():
    error = config_error({"GA_API_ID": "   ", "GA_API_SECRET": "\t"})

    assert "GA_API_ID" in str(error)
    assert "GA_API_SECRET" in str(error)


@pytest.mark.parametrize("url", ["ftp://x", "not a url", "https://", "api.asapp.com", "//host"])
def test_malformed_base_url_is_named(url):
    error = config_error(env(GA_API_BASE_URL=url))

    assert len(error.problems) == 1
    assert "GA_API_BASE_URL" in error.problems[0]


@pytest.mark.parametrize("url", ["http://localhost:8080", "https://api.asapp.com/prefix/"])
def test_http_and_https_base_urls_are_accepted(url):
    assert GenAgentSettings.from_env(env(GA_API_BASE_URL=url)).base_url == url.rstrip("/")


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1.5", "10001"])
def test_bad_max_rps_is_named(value):
    error = config_error(env(GA_API_MAX_RPS=value))

    assert len(error.problems) == 1
    assert "GA_API_MAX_RPS" in error.problems[0]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GA_API_DEADLINE", "abc"),
        ("GA_API_DEADLINE", "0"),
        ("GA_API_DEADLINE", "nan"),
        ("GA_API_DEADLINE", "61"),
        ("GA_API_ATTEMPT_TIMEOUT", "-1"),
        ("GA_API_ATTEMPT_TIMEOUT", "inf"),
    ],
)
def test_bad_numbers_are_named(name, value):
    error = config_error(env(**{name: value}))

    assert len(error.problems) == 1
    assert name in error.problems[0]


def test_every_problem_is_reported_in_one_error():
    error = config_error({"GA_API_BASE_URL": "ftp://x", "GA_API_MAX_RPS": "abc"})

    message = str(error)
    for name in ("GA_API_ID", "GA_API_SECRET", "GA_API_BASE_URL", "GA_API_MAX_RPS"):
        assert name in message
    assert len(error.problems) == 4


def test_secret_never_appears_in_config_error():
    error = config_error(
        {
            "GA_API_SECRET": SECRET_VALUE,
            "GA_API_BASE_URL": "not a url",
            "GA_API_MAX_RPS": "0",
            "GA_API_DEADLINE": "abc",
        }
    )

    assert "GA_API_ID" in str(error)
    assert SECRET_VALUE not in str(error)
    assert SECRET_VALUE not in repr(error)
    assert all(SECRET_VALUE not in p for p in error.problems)


def test_secret_with_control_characters_is_named_but_not_echoed():
    value = "s3cr3t\x01value"
    error = config_error(env(GA_API_SECRET=value))

    assert "GA_API_SECRET" in str(error)
    assert value not in str(error)
    assert "s3cr3t" not in str(error)


def test_settings_repr_hides_the_secret():
    settings = GenAgentSettings.from_env(dict(GOOD_ENV))

    assert SECRET_VALUE not in repr(settings)
    assert SECRET_VALUE not in str(settings)
    assert "id-123" in repr(settings)


def test_secret_repr_and_str_hide_the_value():
    secret = Secret("hunter2-value")

    assert "hunter2-value" not in repr(secret)
    assert "hunter2-value" not in str(secret)
    assert "hunter2-value" not in f"{secret}"
    assert "hunter2-value" not in f"{secret!r}"
    assert "hunter2-value" not in repr([secret])
    assert secret.reveal() == "hunter2-value"


def test_secret_equality_uses_the_value():
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert len({Secret("a"), Secret("a")}) == 1
