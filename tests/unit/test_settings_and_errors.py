import grpc
import pytest

from gateway.errors import (
    INTERNAL_MESSAGE,
    STATUS_CODES,
    BackendUnavailable,
    Code,
    DeadlineExceeded,
    GatewayError,
    InternalError,
    InvalidArgument,
    ModelNotFound,
    Overloaded,
    to_status,
)
from gateway.grpc.status import GRPC_CODES, grpc_status
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
        (Overloaded("queue full", 100), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (BackendUnavailable("down"), grpc.StatusCode.UNAVAILABLE),
        (DeadlineExceeded("late"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (InternalError(), grpc.StatusCode.INTERNAL),
    ],
)
def test_every_error_maps_to_its_status(error, code):
    assert grpc_status(error) == (code, error.message)
    assert to_status(error)[0].number == code.value[0]


def test_codes_are_grpc_codes_with_their_http_status():
    assert {c.name for c in Code} <= {c.name for c in grpc.StatusCode}
    assert all(GRPC_CODES[c].value[0] == c.number for c in Code)
    http = {c.name: c.http for c in Code}
    assert http["INVALID_ARGUMENT"] == 400 and http["UNAUTHENTICATED"] == 401
    assert http["PERMISSION_DENIED"] == 403 and http["NOT_FOUND"] == 404
    assert http["RESOURCE_EXHAUSTED"] == 429 and http["UNAVAILABLE"] == 503
    assert http["DEADLINE_EXCEEDED"] == 504 and http["INTERNAL"] == 500


def test_mapping_table_covers_every_error_class():
    assert set(STATUS_CODES) == set(GatewayError.__subclasses__())


def test_unknown_exceptions_become_internal_without_details():
    assert to_status(KeyError("secret detail")) == (Code.INTERNAL, INTERNAL_MESSAGE)


def test_invalid_argument_names_the_field():
    assert InvalidArgument("text", "is 12 characters long; the limit is 10").message.startswith("text: ")


def test_new_settings_parse_from_flags_and_environment():
    settings = load_settings(
        ["--backend", "embedded", "--batch-wait-ms", "5"],
        {"EMOTIONAWARE_PAD_TO_BUCKETS": "true", "EMOTIONAWARE_LOG_FORMAT": "json"},
    )
    assert settings.backend == "embedded" and settings.batch_wait_ms == 5.0
    assert settings.pad_to_buckets is True and settings.log_format == "json"


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--backend", "tpu"], {}, "backend must be triton or embedded"),
        ([], {"EMOTIONAWARE_PAD_TO_BUCKETS": "maybe"}, "expected true or false"),
        (["--queue-max-texts", "0"], {}, "queue_max_texts must be at least 1"),
        (["--log-format", "xml"], {}, "log_format must be text or json"),
    ],
)
def test_bad_new_settings_are_refused_with_the_reason(argv, environ, message, capsys):
    with pytest.raises(SystemExit):
        load_settings(argv, environ)
    assert message in capsys.readouterr().err


def test_json_logs_are_one_object_per_line(capsys):
    import json
    import logging

    from gateway.server import configure_logging

    configure_logging(Settings(log_format="json"))
    logging.getLogger("gateway").info("routing reloaded")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert (
        record["message"] == "routing reloaded" and record["level"] == "INFO" and record["name"] == "gateway"
    )
    configure_logging(Settings())


def test_the_queue_must_hold_a_whole_batch_call():
    with pytest.raises(ValueError, match=r"queue_max_texts \(100\) must hold a whole batch call"):
        Settings(queue_max_texts=100, max_batch_texts=256)
