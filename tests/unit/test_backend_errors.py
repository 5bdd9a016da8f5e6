import pytest
from tritonclient.utils import InferenceServerException

from gateway.backend import translate
from gateway.errors import BackendUnavailable, DeadlineExceeded, InternalError, Overloaded


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", DeadlineExceeded),
        ("StatusCode.UNAVAILABLE", "Request timeout expired", DeadlineExceeded),
        ("StatusCode.UNAVAILABLE", "Exceeds maximum queue size", Overloaded),
        ("StatusCode.RESOURCE_EXHAUSTED", "too many requests", Overloaded),
        ("StatusCode.UNAVAILABLE", "failed to connect to all addresses", BackendUnavailable),
        ("StatusCode.NOT_FOUND", "Request for unknown model: 'goemotions' is not found", BackendUnavailable),
        ("StatusCode.INTERNAL", "python stub crashed", InternalError),
    ],
)
def test_triton_errors_translate_to_the_gateway_hierarchy(status, message, expected):
    error = translate(InferenceServerException(msg=message, status=status))
    assert type(error) is expected
    assert message not in error.message  # Triton's wording stays in the gateway
