import grpc
import pytest

from gateway.errors import (
    INTERNAL_MESSAGE,
    STATUS_CODES,
    BackendUnavailable,
    DeadlineExceeded,
    GatewayError,
    InternalError,
    InvalidArgument,
    ModelNotFound,
    Overloaded,
    to_status,
)
from gateway.settings import Settings, load_settings


def test_flags_override_environment_which_overrides_defaults():
    env = {"EMOTIONAWARE_TRITON_URL": "triton:8001", "EMOTIONAWARE_MAX_TEXT_CHARS": "500"}
    settings = load_settings(["--max-text-chars", "42"], env)
    assert settings.triton_url == "triton:8001"
    assert settings.max_text_chars == 42
    assert settings.listen == Settings().listen


def test_list_and_float_environment_values():
    env = {"EMOTIONAWARE_MODELS": "goemotions, other", "EMOTIONAWARE_HEALTH_POLL_S": "0.5"}
    settings = load_settings([], env)
    assert settings.models == ("goemotions", "other")
    assert settings.health_poll_s == 0.5


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        Settings().listen = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("argv", "env"),
    [(["--models", "a,b", "--default-model", "missing"], {}), ([], {"EMOTIONAWARE_MAX_TEXT_CHARS": "many"})],
)
def test_invalid_settings_exit_with_a_message(argv, env, capsys):
    with pytest.raises(SystemExit):
        load_settings(argv, env)
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidArgument("text", "too long"), grpc.StatusCode.INVALID_ARGUMENT),
        (ModelNotFound("no such model"), grpc.StatusCode.NOT_FOUND),
        (Overloaded("queue full"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (BackendUnavailable("down"), grpc.StatusCode.UNAVAILABLE),
        (DeadlineExceeded("late"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (InternalError(), grpc.StatusCode.INTERNAL),
    ],
)
def test_every_error_maps_to_its_status(error, code):
    assert to_status(error) == (code, error.message)


def test_mapping_table_covers_every_error_class():
    assert set(STATUS_CODES) == set(GatewayError.__subclasses__())


def test_unknown_exceptions_become_internal_without_details():
    assert to_status(KeyError("secret detail")) == (grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)


def test_invalid_argument_names_the_field():
    assert InvalidArgument("text", "is 12 characters long; the limit is 10").message.startswith("text: ")
