import pytest
from tritonclient.utils import InferenceServerException

from gateway.backends.triton import translate
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


async def test_unavailable_is_retried_a_bounded_number_of_times(monkeypatch):
    from gateway.backends.base import BatchOutput
    from gateway.backends.triton import TritonBackend

    backend = TritonBackend("127.0.0.1:1", 1 << 20, retries=2)
    attempts = []

    async def flaky(model, version, inputs, timeout_s):
        attempts.append(timeout_s)
        if len(attempts) < 3:
            raise BackendUnavailable("inference server is unavailable")
        return BatchOutput(None, version)

    monkeypatch.setattr(backend, "_infer_once", flaky)
    assert (await backend.infer("m", "1", {}, 5.0)).model_version == "1"
    assert len(attempts) == 3 and attempts[2] < attempts[0] <= 5.0  # each try gets what is left

    attempts.clear()

    async def down(model, version, inputs, timeout_s):
        attempts.append(timeout_s)
        raise BackendUnavailable("inference server is unavailable")

    monkeypatch.setattr(backend, "_infer_once", down)
    with pytest.raises(BackendUnavailable):
        await backend.infer("m", "1", {}, 5.0)
    assert len(attempts) == 3  # one try and two retries, no more
    await backend.close()


async def test_other_errors_are_not_retried(monkeypatch):
    from gateway.backends.triton import TritonBackend

    backend = TritonBackend("127.0.0.1:1", 1 << 20, retries=2)
    attempts = []

    async def overloaded(model, version, inputs, timeout_s):
        attempts.append(1)
        raise Overloaded("the inference server's queue is full", 100)

    monkeypatch.setattr(backend, "_infer_once", overloaded)
    with pytest.raises(Overloaded):
        await backend.infer("m", "1", {}, 5.0)
    assert attempts == [1]
    await backend.close()
