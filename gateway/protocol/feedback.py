"""A SubmitFeedbackRequest checked and turned into a feedback store Submission."""

from __future__ import annotations

import datetime as dt

from emotionaware.artifact import ProblemType
from emotionaware.v1 import emotion_pb2 as pb
from gateway.callers import Call
from gateway.errors import InvalidArgument, ModelNotFound, quote
from gateway.feedback.ids import RequestIds
from gateway.feedback.store import Submission
from gateway.pipeline import Pipeline

VERDICTS = {pb.VERDICT_CORRECT: "correct", pb.VERDICT_WRONG: "wrong"}


def feedback_submission(
    request: pb.SubmitFeedbackRequest, ids: RequestIds, pipeline: Pipeline, call: Call | None
) -> Submission:
    """Every field checked (INVALID_ARGUMENT names it), the answer's model still served
    (NOT_FOUND) and granted to the caller (PERMISSION_DENIED).

    Labels are checked against the answering version when it is still served, else against the
    model's routed version (an answer given before an upgrade can still be reviewed); the row
    names the answering version either way.
    """
    issued = ids.check(request.request_id)
    if request.verdict not in VERDICTS:
        raise InvalidArgument("verdict", f"must be VERDICT_CORRECT or VERDICT_WRONG; got {request.verdict}")
    try:
        resolved = pipeline.router.resolve(issued.model, issued.model_version)
    except ModelNotFound:
        resolved = pipeline.router.resolve(issued.model)  # NOT_FOUND when the model itself is gone
    spec = resolved.spec
    if call is not None:
        call.check_model(spec.name)
    labels = list(request.labels)
    if not labels:
        raise InvalidArgument(
            "labels",
            "must name the labels the text should have (VERDICT_CORRECT: the answer's predicted labels)",
        )
    for label in labels:
        if label not in spec.labels:
            raise InvalidArgument(
                "labels",
                f"{quote(label)} is not a label of model {spec.name}; its labels: {', '.join(spec.labels)}",
            )
    if len(set(labels)) != len(labels):
        raise InvalidArgument("labels", "names a label twice")
    if spec.problem_type is ProblemType.SINGLE_LABEL and len(labels) != 1:
        raise InvalidArgument(
            "labels", f"model {spec.name} is single-label: name exactly one label; got {len(labels)}"
        )
    text = request.text if request.HasField("text") else None
    if text is not None:
        if len(text) > resolved.route.max_text_chars:
            raise InvalidArgument(
                "text", f"is {len(text)} characters long; the limit is {resolved.route.max_text_chars}"
            )
        if ids.text_digest(text) != issued.text_digest:
            raise InvalidArgument("text", "is not the text of the answer request_id names")
        if "\x00" in text and request.store_text:  # PostgreSQL text cannot hold U+0000
            raise InvalidArgument("text", "holds U+0000, which cannot be stored; send it without store_text")
    elif request.store_text:
        raise InvalidArgument("store_text", "needs the text: send it in text")
    return Submission(
        client=call.client if call is not None else "anonymous",
        request_id=request.request_id,
        model=spec.name,
        model_version=issued.model_version,
        verdict=VERDICTS[request.verdict],
        labels=tuple(labels),
        text=text,
        store_text=request.store_text,
        answered_at=dt.datetime.fromtimestamp(issued.issued_at, dt.UTC).replace(tzinfo=None),
    )
