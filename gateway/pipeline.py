"""The request pipeline: route, validate, tokenize, batch and infer, post-process.

Everything here works on typed domain objects; protobuf stays in the servicer. Deadlines are
absolute ``time.monotonic()`` values, passed down to the batcher and the backend.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from emotionaware import sentences as sentencizer
from emotionaware.artifact import ProblemType
from emotionaware.context import format_context
from emotionaware.scores import aggregate_intensity, intensity
from emotionaware.text import has_visible_character
from emotionaware.tokenization import TokenizedText
from gateway.backends.base import Backend
from gateway.batching import BatcherPool, SequenceOutput
from gateway.callers import UNRESTRICTED, current_call
from gateway.errors import BackendUnavailable, GatewayError, InternalError, InvalidArgument, log_unhandled
from gateway.metrics import SENTENCES, STAGE_LATENCY, TOKENS, TRUNCATED
from gateway.postprocess import aggregate, decide, scores_of
from gateway.routing import Resolved, Router, RouteTable
from gateway.settings import Settings
from gateway.specs import ModelSpec
from gateway.types import (
    AnalyzeInput,
    AnalyzeResult,
    ChunkResult,
    ClassifyInput,
    ClassifyOptions,
    ClassifyResult,
    LongTextMode,
    SentenceResult,
    TrafficClass,
)

MAX_SPEAKER_CHARS = 128
# Tokenizing a few thousand characters takes long enough to stall other requests on the event
# loop; shorter texts are cheaper to tokenize inline than to hand to a thread.
_THREAD_TOKENIZE_CHARS = 2000


def long_text_mode(request: ClassifyInput, spec: ModelSpec) -> LongTextMode:
    """The request's mode, else the model's default; text sent with context is one sequence."""
    if request.options.long_text is not None:
        return request.options.long_text
    return LongTextMode.TRUNCATE if request.context else spec.long_text_mode


@dataclass(frozen=True)
class _Prepared:
    """A validated, tokenized request on its way to the batcher."""

    request: ClassifyInput
    spec: ModelSpec
    windows: list[TokenizedText]
    dropped: bool
    turns: int


class Pipeline:
    """Classifies texts with the routed models through the micro-batchers and a backend."""

    def __init__(self, settings: Settings, router: Router, backend: Backend) -> None:
        self.settings = settings
        self.router = router
        self.backend = backend
        self.batchers = BatcherPool(backend, settings)
        self._sentencizer: asyncio.Future[None] | None = None

    @property
    def table(self) -> RouteTable:
        """The current routing snapshot (models, versions, aliases, client policies)."""
        return self.router.table

    # -- validation -------------------------------------------------------------------------

    def check_text(self, text: str, limit: int, field: str = "text") -> None:
        """The one rule for every text field: within the limit, at least one visible character."""
        if len(text) > limit:
            raise InvalidArgument(field, f"is {len(text)} characters long; the limit is {limit}")
        if not has_visible_character(text):
            raise InvalidArgument(field, "must contain at least one visible character")

    def check_options(self, spec: ModelSpec, options: ClassifyOptions) -> None:
        views = spec.views
        if options.view not in views:
            offered = ", ".join(v.value for v in views)
            raise InvalidArgument(
                "options.view", f"model {spec.name} offers {offered}; got {options.view.value}"
            )
        labels = len(views[options.view].labels)
        if options.top_k > labels:
            raise InvalidArgument(
                "options.top_k", f"must be at most {labels} (labels of the view); got {options.top_k}"
            )
        if options.threshold is not None:
            if spec.problem_type is not ProblemType.MULTI_LABEL:
                raise InvalidArgument(
                    "options.threshold",
                    f"applies to multi-label models only; model {spec.name} is single-label (softmax)",
                )
            if not 0.0 <= options.threshold <= 1.0:
                raise InvalidArgument("options.threshold", f"must be in [0, 1]; got {options.threshold}")

    def resolve(self, model: str, options: ClassifyOptions) -> Resolved:
        """Route a model name or alias, check the caller's grant for it and the options."""
        resolved = self.router.resolve(model, options.model_version)
        if (call := current_call()) is not None:
            call.check_model(resolved.spec.name)
        self.check_options(resolved.spec, options)
        return resolved

    def traffic_class(self, options: ClassifyOptions, default: TrafficClass) -> TrafficClass:
        """The class a call is admitted in: the caller's policy, else its option, else ``default``."""
        call = current_call()
        return (call.policy if call is not None else UNRESTRICTED).traffic_class_of(
            options.traffic_class, default
        )

    def charge(self, texts: int) -> None:
        """Take ``texts`` from the calling client's rate quota (RESOURCE_EXHAUSTED beyond)."""
        if (call := current_call()) is not None:
            call.charge(texts, self.settings.retry_after_ms)

    def check_request(self, request: ClassifyInput, resolved: Resolved) -> None:
        spec, route = resolved.spec, resolved.route
        self.check_text(request.text, route.max_text_chars)
        if len(request.speaker) > MAX_SPEAKER_CHARS:
            raise InvalidArgument(
                "speaker", f"is {len(request.speaker)} characters long; the limit is {MAX_SPEAKER_CHARS}"
            )
        if not request.context:
            return
        if spec.context_turns == 0:
            raise InvalidArgument(
                "context", f"model {spec.name} reads no conversation context; send no turns"
            )
        if request.options.long_text is LongTextMode.CHUNK:
            raise InvalidArgument("options.long_text_mode", "chunk mode cannot be combined with context")
        if len(request.context) > self.settings.max_context_turns:
            raise InvalidArgument(
                "context", f"has {len(request.context)} turns; the limit is {self.settings.max_context_turns}"
            )
        for i, turn in enumerate(request.context):
            self.check_text(turn.text, route.max_text_chars, f"context[{i}].text")
            if len(turn.speaker) > MAX_SPEAKER_CHARS:
                raise InvalidArgument(
                    f"context[{i}].speaker",
                    f"is {len(turn.speaker)} characters long; the limit is {MAX_SPEAKER_CHARS}",
                )

    # -- pipeline ---------------------------------------------------------------------------

    async def _tokenize(
        self, request: ClassifyInput, spec: ModelSpec
    ) -> tuple[list[TokenizedText], bool, int]:
        """Windows to classify, whether text was dropped, and the context turns used."""
        turns = min(len(request.context), spec.context_turns)
        if long_text_mode(request, spec) is LongTextMode.CHUNK:

            def work():
                return spec.tokenizer.encode_chunks(
                    request.text, self.settings.chunk_overlap_tokens, self.settings.max_chunks
                )
        else:
            context = format_context(request.context, request.speaker, spec.context_turns) if turns else ""

            def work():
                encoded = spec.tokenizer.encode(request.text, context)
                return [encoded], encoded.truncated

        used = request.context[len(request.context) - turns :]
        size = len(request.text) + sum(len(t.text) for t in used)
        if size > _THREAD_TOKENIZE_CHARS:
            windows, dropped = await asyncio.to_thread(work)
        else:
            windows, dropped = work()
        return windows, dropped, turns

    async def _prepare(self, request: ClassifyInput, resolved: Resolved) -> _Prepared:
        """Validate and tokenize one request (everything before the batcher)."""
        self.check_request(request, resolved)
        spec = resolved.spec
        started = time.perf_counter()
        windows, dropped, turns = await self._tokenize(request, spec)
        STAGE_LATENCY.labels("tokenize").observe(time.perf_counter() - started)
        TOKENS.observe(windows[0].token_count)
        if dropped:
            TRUNCATED.labels(spec.name).inc()
        return _Prepared(request, spec, windows, dropped, turns)

    def _finish(self, prepared: _Prepared, outputs: Sequence[SequenceOutput]) -> ClassifyResult:
        """Scores, decisions and chunk aggregation from the logits of each window."""
        return self._finish_native(prepared, outputs)[0]

    def _finish_native(
        self, prepared: _Prepared, outputs: Sequence[SequenceOutput], text_flags: bool = True
    ) -> tuple[ClassifyResult, np.ndarray]:
        """The result, and its scores over the model's own labels (before any view).

        ``text_flags``: evaluate the policies' text rules (an Analyze sentence has its own)."""
        request, spec, windows = prepared.request, prepared.spec, prepared.windows
        post = time.perf_counter()
        chunk_scores = [scores_of(spec, o.logits) for o in outputs]
        specials = spec.tokenizer.specials
        chunks: tuple[ChunkResult, ...] = ()
        if len(windows) > 1:
            sizes = [len(w.input_ids) - specials for w in windows]
            scores = aggregate(spec, chunk_scores, sizes)
            chunks = tuple(
                ChunkResult(i, w.first_token, size, decide(spec, s, request.options))
                for i, (w, size, s) in enumerate(zip(windows, sizes, chunk_scores, strict=True))
            )
            parts = [intensity(s, spec.labels) for s in chunk_scores]
            strength = (
                None if parts[0] is None else aggregate_intensity(parts, sizes, spec.problem_type)  # type: ignore[arg-type]
            )
        else:
            scores = chunk_scores[0]
            strength = intensity(scores, spec.labels)
        scored = decide(spec, scores, request.options)
        STAGE_LATENCY.labels("postprocess").observe(time.perf_counter() - post)
        result = ClassifyResult(
            scored=scored,
            problem_type=spec.problem_type,
            token_count=windows[0].token_count,
            token_count_exact=windows[0].token_count_exact,
            truncated=prepared.dropped,
            max_tokens=spec.max_tokens,
            model=spec.name,
            model_version=outputs[0].model_version,
            view=request.options.view,
            chunks=chunks,
            chunk_count=len(windows),
            context_turns=prepared.turns,
            intensity=strength,
            flags=self.table.policies.flags(spec, scores, strength) if text_flags else (),
            native=scores,
        )
        return result, scores

    async def classify(
        self,
        request: ClassifyInput,
        deadline: float,
        resolved: Resolved | None = None,
        *,
        flow: bool = False,
    ) -> ClassifyResult:
        """Classify one text before ``deadline`` (monotonic seconds).

        ``flow`` marks a stream message: when the model is busy it waits for room as long as its
        deadline allows (the stream is not read meanwhile) instead of only within the budget.
        """
        arrived = time.monotonic()
        resolved = resolved or self.resolve(request.model, request.options)
        self.charge(1)
        batcher = self.batchers.get(resolved.spec)
        # Admit before tokenizing, counting a typical text: a request that waits or is refused
        # costs no tokenization exactly when the gateway is busiest. Its own work is known
        # (and checked against its deadline) after it.
        traffic_class = self.traffic_class(request.options, TrafficClass.INTERACTIVE)
        ticket = await batcher.admit(traffic_class, 1, None, deadline, arrived, flow)
        try:
            prepared = await self._prepare(request, resolved)
            tokens = sum(len(w.input_ids) for w in prepared.windows)
            batcher.check_deadline(ticket, len(prepared.windows), tokens, deadline)
            futures = [batcher.enqueue(w.input_ids, deadline, ticket) for w in prepared.windows]
        finally:
            batcher.release(ticket)
        try:
            outputs = await asyncio.gather(*futures)
            if len(futures) == 1:  # the budget is about single texts; chunked ones take longer by design
                batcher.observe(ticket)
            return self._finish(prepared, outputs)
        finally:
            for future in futures:  # a failed window, deadline or cancel: the others must not run
                future.cancel()

    async def classify_batch(
        self, texts: Sequence[str], model: str, options: ClassifyOptions, deadline: float
    ) -> list[ClassifyResult | GatewayError]:
        """Classify every text with one routed model; per-text failures are returned in place.

        Every text is validated, tokenized and queued first, then the call waits on the
        sequences' futures: no task per text, and the batcher sees the whole call at once.
        """
        resolved = self.resolve(model, options)
        limit = resolved.route.max_batch_texts
        if not texts:
            raise InvalidArgument("texts", "must hold at least one text")
        if len(texts) > limit:
            raise InvalidArgument("texts", f"holds {len(texts)} texts; the limit is {limit}")
        self.charge(len(texts))
        batcher = self.batchers.get(resolved.spec)
        # All or nothing: a batch that cannot be queued whole is refused rather than half-served.
        traffic_class = self.traffic_class(options, TrafficClass.BULK)
        ticket = await batcher.admit(traffic_class, len(texts), None, deadline)
        pending: list[tuple[_Prepared, list[asyncio.Future]] | GatewayError] = []
        try:
            for i, text in enumerate(texts):
                try:
                    prepared = await self._prepare(ClassifyInput(text, model, options), resolved)
                    pending.append(
                        (prepared, [batcher.enqueue(w.input_ids, deadline, ticket) for w in prepared.windows])
                    )
                except InvalidArgument as exc:
                    pending.append(InvalidArgument(f"texts[{i}]", exc.message.split(": ", 1)[1]))
                except GatewayError as exc:
                    pending.append(exc)
            batcher.release(ticket)
            futures = [f for p in pending if not isinstance(p, GatewayError) for f in p[1]]
            if futures:
                await asyncio.wait(futures)
                batcher.observe(ticket)
        except BaseException:
            batcher.release(ticket)
            # Cancelled or past the deadline: queued sequences must not run for nobody.
            for p in pending:
                if not isinstance(p, GatewayError):
                    for f in p[1]:
                        f.cancel()
            raise
        results: list[ClassifyResult | GatewayError] = []
        for p in pending:
            if isinstance(p, GatewayError):
                results.append(p)
                continue
            prepared, item_futures = p
            failed = next((f.exception() for f in item_futures if f.exception() is not None), None)
            if failed is None:
                results.append(self._finish(prepared, [f.result() for f in item_futures]))
            else:
                results.append(failed if isinstance(failed, GatewayError) else InternalError())
        return results

    # -- sentences ---------------------------------------------------------------------------

    def warm_sentencizer(self) -> asyncio.Future | None:
        """Start loading the sentencizer in a thread (importing spaCy takes seconds); returns the
        load when this call started it."""
        if self._sentencizer is None and not sentencizer.loaded():
            self._sentencizer = asyncio.ensure_future(asyncio.to_thread(sentencizer.load))
            return self._sentencizer
        return None

    async def _sentencizer_ready(self) -> None:
        """Every Analyze that comes before the load waits on the one load (no thread each); a
        failed load is UNAVAILABLE and the next Analyze tries again."""
        if sentencizer.loaded():
            return
        self.warm_sentencizer()
        assert self._sentencizer is not None
        try:
            await asyncio.shield(self._sentencizer)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._sentencizer = None
            log_unhandled("Analyze", exc)
            raise BackendUnavailable("the sentence splitter could not be loaded; retry later") from None

    def _sentences(
        self, request: AnalyzeInput, spec: ModelSpec
    ) -> list[tuple[sentencizer.Sentence, _Prepared]]:
        """Split, check the sentence limit, and tokenize every sentence (a thread's work for
        long texts). A sentence longer than the model reads is windowed unless the request
        asks for truncation."""
        found = sentencizer.split(request.text)
        limit = self.settings.max_sentences
        if len(found) > limit:
            raise InvalidArgument("text", f"has {len(found)} sentences; the limit is {limit}")
        if not found:  # only invisible characters between sentence ends: nothing to read
            raise InvalidArgument("text", "must contain at least one visible character")
        mode = request.options.long_text or LongTextMode.CHUNK
        out = []
        for sentence in found:
            if mode is LongTextMode.CHUNK:
                windows, dropped = spec.tokenizer.encode_chunks(
                    sentence.text, self.settings.chunk_overlap_tokens, self.settings.max_chunks
                )
            else:
                encoded = spec.tokenizer.encode(sentence.text)
                windows, dropped = [encoded], encoded.truncated
            piece = ClassifyInput(sentence.text, request.model, request.options)
            out.append((sentence, _Prepared(piece, spec, windows, dropped, 0)))
        return out

    async def analyze(self, request: AnalyzeInput, deadline: float) -> AnalyzeResult:
        """Split ``request.text`` into sentences, classify them together, aggregate the document.

        One admission for the call; every window of every sentence is queued at once, so the
        sentences share batches. A quota counts one text per sentence.
        """
        arrived = time.monotonic()
        resolved = self.resolve(request.model, request.options)
        spec = resolved.spec
        self.check_text(request.text, resolved.route.max_text_chars)
        await self._sentencizer_ready()  # before admission: no ticket held while it loads
        batcher = self.batchers.get(spec)
        traffic_class = self.traffic_class(request.options, TrafficClass.INTERACTIVE)
        ticket = await batcher.admit(traffic_class, 1, None, deadline, arrived)
        futures: list[list[asyncio.Future]] = []
        try:
            started = time.perf_counter()
            if len(request.text) > _THREAD_TOKENIZE_CHARS:
                parts = await asyncio.to_thread(self._sentences, request, spec)
            else:
                parts = self._sentences(request, spec)
            STAGE_LATENCY.labels("tokenize").observe(time.perf_counter() - started)
            SENTENCES.observe(len(parts))
            self.charge(len(parts))
            windows = [w for _, p in parts for w in p.windows]
            batcher.check_deadline(ticket, len(windows), sum(len(w.input_ids) for w in windows), deadline)
            for _, p in parts:
                TOKENS.observe(p.windows[0].token_count)
                if p.dropped:
                    TRUNCATED.labels(spec.name).inc()
                futures.append([batcher.enqueue(w.input_ids, deadline, ticket) for w in p.windows])
        except BaseException:
            for f in (f for fs in futures for f in fs):
                f.cancel()
            raise
        finally:
            batcher.release(ticket)
        flat = [f for fs in futures for f in fs]
        try:
            await asyncio.gather(*flat)
        finally:
            for f in flat:
                f.cancel()
        return self._document(spec, request, parts, futures)

    def _document(
        self,
        spec: ModelSpec,
        request: AnalyzeInput,
        parts: list[tuple[sentencizer.Sentence, _Prepared]],
        futures: list[list[asyncio.Future]],
    ) -> AnalyzeResult:
        """Each sentence's result, and the document's: its scores aggregated over the
        sentences as chunk windows are (max for sigmoid, mean weighted by each sentence's
        tokens without the special ones for softmax); its intensity likewise."""
        results, natives = [], []
        policies = self.table.policies
        for i, ((sentence, prepared), item_futures) in enumerate(zip(parts, futures, strict=True)):
            result, native = self._finish_native(
                prepared, [f.result() for f in item_futures], text_flags=False
            )
            flags = policies.flags(spec, native, result.intensity, "sentence", i, sentence.span)
            results.append(SentenceResult(i, sentence.text, sentence.span, replace(result, flags=flags)))
            natives.append(native)
        first = results[0].result
        if len(results) == 1:
            document = replace(
                first,
                chunks=(),
                chunk_count=1,
                flags=policies.flags(spec, natives[0], first.intensity),
            )
            return AnalyzeResult(tuple(results), document, False)
        specials = spec.tokenizer.specials
        weights = [max(r.result.token_count - specials, 1) for r in results]
        scores = aggregate(spec, natives, weights)
        strengths = [r.result.intensity for r in results]
        strength = (
            None if strengths[0] is None else aggregate_intensity(strengths, weights, spec.problem_type)  # type: ignore[arg-type]
        )
        document = replace(
            first,
            scored=decide(spec, scores, request.options),
            token_count=sum(r.result.token_count for r in results),
            token_count_exact=all(r.result.token_count_exact for r in results),
            truncated=any(r.result.truncated for r in results),
            chunks=(),
            chunk_count=1,
            intensity=strength,
            flags=policies.flags(spec, scores, strength),
            native=scores,
        )
        return AnalyzeResult(tuple(results), document, True)

    async def close(self) -> None:
        await self.batchers.close()
