"""One request's pipeline: validate, tokenize, infer, post-process."""

from __future__ import annotations

import time

from gateway.backend import Backend
from gateway.errors import InvalidArgument
from gateway.metrics import STAGE_LATENCY, TOKENS, TRUNCATED
from gateway.models import ModelRegistry
from gateway.postprocess import label_scores
from gateway.settings import Settings
from gateway.types import ClassifyInput, ClassifyResult


class EmotionService:
    """Classifies texts with the registry's models through a backend."""

    def __init__(self, settings: Settings, registry: ModelRegistry, backend: Backend) -> None:
        self.settings = settings
        self.registry = registry
        self.backend = backend

    def validate(self, request: ClassifyInput) -> None:
        if not request.text.strip():
            raise InvalidArgument("text", "must contain at least one non-whitespace character")
        if len(request.text) > self.settings.max_text_chars:
            raise InvalidArgument(
                "text", f"is {len(request.text)} characters long; the limit is {self.settings.max_text_chars}"
            )

    async def classify(self, request: ClassifyInput, timeout_s: float) -> ClassifyResult:
        """Classify one text within ``timeout_s`` seconds."""
        self.validate(request)
        spec = self.registry.resolve(request.model)
        started = time.perf_counter()
        tokens = spec.tokenizer.encode(request.text)
        tokenized = time.perf_counter()
        STAGE_LATENCY.labels("tokenize").observe(tokenized - started)
        TOKENS.observe(tokens.token_count)
        if tokens.truncated:
            TRUNCATED.labels(spec.name).inc()
        output = await self.backend.infer(
            spec.name, spec.version, tokens.model_inputs(spec.input_names), timeout_s
        )
        inferred = time.perf_counter()
        STAGE_LATENCY.labels("infer").observe(inferred - tokenized)
        scores, predicted = label_scores(spec, output.logits)
        STAGE_LATENCY.labels("postprocess").observe(time.perf_counter() - inferred)
        return ClassifyResult(
            scores=scores,
            predicted=predicted,
            problem_type=spec.problem_type,
            token_count=tokens.token_count,
            truncated=tokens.truncated,
            max_tokens=spec.max_tokens,
            model=spec.name,
            model_version=output.model_version,
        )
