"""Request bodies of the HTTP transport: any bytes decode to a request or to a short, named
problem; never an exception, never a long quote of what was sent."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from emotionaware.v1 import emotion_pb2 as pb
from gateway.errors import Code
from gateway.http.app import error_body, from_json
from gateway.protocol.convert import Undecodable

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "text": JSON | st.text(max_size=3000),
        "model": JSON,
        "options": st.fixed_dictionaries({}, optional={"view": JSON, "topK": JSON, "threshold": JSON}) | JSON,
        "context": st.lists(st.fixed_dictionaries({}, optional={"speaker": JSON, "text": JSON})) | JSON,
    },
)


def check(decoded) -> None:
    assert isinstance(decoded, pb.ClassifyRequest | Undecodable)
    if isinstance(decoded, Undecodable):
        assert decoded.field == "body" and len(decoded.problem) < 300


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes(body):
    check(from_json(body, pb.ClassifyRequest))


@settings(max_examples=300, deadline=None)
@given(JSON | FIELDS)
def test_any_json(value):
    check(from_json(json.dumps(value).encode(), pb.ClassifyRequest))


def test_a_valid_body_is_the_request_and_errors_have_one_shape():
    decoded = from_json(b'{"text": "hi", "options": {"view": "VIEW_EKMAN", "topK": 2}}', pb.ClassifyRequest)
    assert decoded == pb.ClassifyRequest(text="hi", options=pb.ClassifyOptions(view=pb.VIEW_EKMAN, top_k=2))
    assert from_json(b"", pb.ListModelsRequest) == pb.ListModelsRequest()
    assert error_body(Code.RESOURCE_EXHAUSTED, "busy", retry_ms=250) == {
        "error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "busy", "retryAfterMs": 250}
    }
