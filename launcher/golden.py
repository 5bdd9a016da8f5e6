"""Golden scores: what each committed model's served graph answers for 500 fixed dev texts.

`make golden` serves the exported models (Triton and the gateway, as `make serve` does), sends
each model's golden texts through ``Classify`` and writes ``models/<name>/golden.json``: every
label's score and threshold, the predicted set, the CPU that made them and the digest of the
weights they belong to. Texts are not copied into the file; rows name their dataset id and a
digest of the text, so a changed dataset is caught rather than compared.

The CI test (``tests/triton/test_golden.py``) serves the same texts on whatever CPU runs it
(machines of this kind are Intel with AVX-512/VNNI/AMX or AMD with AVX2 only) and compares: each
score within :data:`TOLERANCE` and the same predicted sets. A set may differ only where a score
sits within the tolerance of its decision boundary (:func:`compare` names each such text).

    python -m launcher.golden write [--model goemotions ...]   # after a model changes
    python -m launcher.golden check [--model goemotions ...]   # the comparison, as a table
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import platform
import random
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from emotionaware.paths import DEFAULT_DATA_DIR, MODEL_REPOSITORY, MODELS_DIR

MODELS = ("goemotions", "conversation", "poems")
SIZE = 500
SEED = 20261206
# fp32 graphs: AVX2 and AVX-512 kernels sum in different orders; measured differences are
# about 1e-7 (bench/results), so 1e-4 leaves room without hiding a changed graph.
TOLERANCE = 1e-4
# Earlier turns sent with a conversation text (the model reads its own last few of them).
CONTEXT_TURNS = 8
CONCURRENCY = 8
FORMAT = 1


@dataclass(frozen=True)
class GoldenText:
    """One golden input: a dataset example, with its earlier turns for the conversation model."""

    id: str
    text: str
    context: tuple[tuple[str, str], ...] = ()  # (speaker, text), oldest first
    speaker: str = ""

    @property
    def digest(self) -> str:
        payload = json.dumps([self.text, self.context, self.speaker], ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Served:
    """One served answer: every label's score and threshold (in the model's label order)."""

    scores: tuple[float, ...]
    thresholds: tuple[float, ...]
    predicted: frozenset[str]


@dataclass(frozen=True)
class Golden:
    """A model's committed golden scores (``models/<name>/golden.json``)."""

    model: str
    weights: str
    labels: tuple[str, ...]
    score_type: str
    made_on: str
    ids: tuple[str, ...]
    digests: tuple[str, ...]
    served: tuple[Served, ...]


@dataclass(frozen=True)
class Comparison:
    """Served answers against the golden ones."""

    model: str
    texts: int
    max_diff: float
    worst: str  # id of the text with the largest score difference
    flipped: tuple[str, ...]  # ids whose predicted set differs, away from any boundary
    at_boundary: tuple[str, ...]  # ids whose set differs where a score is within TOLERANCE of it

    @property
    def ok(self) -> bool:
        return self.max_diff <= TOLERANCE and not self.flipped

    def row(self) -> str:
        flips = ", ".join(self.flipped[:5]) or "none"
        edge = ", ".join(self.at_boundary[:5]) or "none"
        verdict = "pass" if self.ok else "FAIL"
        return f"| {self.model} | {self.texts} | {self.max_diff:.2e} ({self.worst}) | {flips} | {edge} | {verdict} |"


HEADER = (
    f"| model | texts | max score difference (text) | predicted set differs | differs within {TOLERANCE:g} of a boundary | check |",
    "|---|---:|---:|---|---|---|",
)


def inputs(model: str, data_dir: Path = DEFAULT_DATA_DIR) -> list[GoldenText]:
    """The model's golden texts: :data:`SIZE` distinct dev texts (PERC has no dev split: its
    poems) within the default text limit, drawn with a fixed seed, in id order."""
    from emotionaware.datasets import load_goemotions, load_meld, load_perc

    if model == "goemotions":
        pool = [GoldenText(e.id, e.text) for e in load_goemotions(data_dir).dev]
    elif model == "conversation":
        pool = [
            GoldenText(
                e.id,
                e.text,
                tuple((t.speaker, t.text) for t in e.previous[-CONTEXT_TURNS:]),
                e.speaker,
            )
            for e in load_meld(data_dir).dev
        ]
    elif model == "poems":
        pool = [GoldenText(p.id, p.text) for p in load_perc(data_dir).poems]
    else:
        raise ValueError(f"no golden texts for model {model!r}; models: {', '.join(MODELS)}")
    from gateway.settings import Settings

    longest = Settings().max_text_chars  # the default limit: a longer text is refused, not scored
    pool = [g for g in pool if len(g.text) <= longest]
    unique = list({g.digest: g for g in sorted(pool, key=lambda g: g.id)}.values())
    chosen = random.Random(SEED).sample(unique, min(SIZE, len(unique)))
    return sorted(chosen, key=lambda g: g.id)


async def score(stub, model: str, texts: Sequence[GoldenText], labels: Sequence[str]) -> list[Served]:
    """Each text's served answer (one ``Classify`` each, :data:`CONCURRENCY` in flight)."""
    from emotionaware.v1 import emotion_pb2 as pb

    gate = asyncio.Semaphore(CONCURRENCY)
    # Bulk: a batch job, admitted by its deadline (eight long poems at once are more than the
    # interactive queue-time budget).
    options = pb.ClassifyOptions(return_all_scores=True, traffic_class=pb.TRAFFIC_CLASS_BULK)

    async def one(g: GoldenText) -> Served:
        context = [pb.Turn(speaker=s, text=t) for s, t in g.context]
        request = pb.ClassifyRequest(
            text=g.text, model=model, options=options, context=context, speaker=g.speaker
        )
        async with gate:
            reply = await stub.Classify(request, timeout=120)
        by_label = {s.label: s for s in reply.scores}
        return Served(
            tuple(float(by_label[k].score) for k in labels),
            tuple(float(by_label[k].threshold) for k in labels),
            frozenset(reply.predicted),
        )

    return list(await asyncio.gather(*(one(g) for g in texts)))


def weights_digest(model: str, models_dir: Path = MODELS_DIR) -> str:
    """Digest of the committed weights the golden scores belong to."""
    digest = hashlib.sha256()
    with (models_dir / model / "weights.safetensors").open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()[:16]


def labels_of(model: str, models_dir: Path = MODELS_DIR) -> tuple[str, ...]:
    return tuple(json.loads((models_dir / model / "artifact.json").read_text())["labels"])


def cpu_name() -> str:
    """The CPU, and the vector extensions that decide which kernels ran."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    extensions = [f for f in ("avx2", "avx512f", "avx512_vnni", "amx_tile") if f in flags]
    return f"{name} ({', '.join(extensions) or 'no AVX2'})"


def path_of(model: str, models_dir: Path = MODELS_DIR) -> Path:
    return models_dir / model / "golden.json"


def save(model: str, texts: Sequence[GoldenText], served: Sequence[Served], score_type: str,
         models_dir: Path = MODELS_DIR) -> Path:  # fmt: skip
    labels = labels_of(model, models_dir)
    document = {
        "format": FORMAT,
        "model": model,
        "weights_sha256": weights_digest(model, models_dir),
        "made_on": cpu_name(),
        "texts": f"{len(texts)} distinct texts drawn with seed {SEED} (launcher/golden.py: inputs)",
        "score_type": score_type,
        "labels": list(labels),
        "thresholds": [round(t, 8) for t in served[0].thresholds] if served else [],
        "rows": [
            {"id": g.id, "text_sha256": g.digest, "scores": [round(x, 8) for x in s.scores],
             "predicted": sorted(s.predicted)}
            for g, s in zip(texts, served, strict=True)
        ],
    }  # fmt: skip
    path = path_of(model, models_dir)
    path.write_text(json.dumps(document, separators=(",", ":")) + "\n")
    return path


def load(model: str, models_dir: Path = MODELS_DIR) -> Golden:
    d = json.loads(path_of(model, models_dir).read_text())
    thresholds = tuple(d["thresholds"])
    rows = d["rows"]
    return Golden(
        d["model"], d["weights_sha256"], tuple(d["labels"]), d["score_type"], d["made_on"],
        tuple(r["id"] for r in rows), tuple(r["text_sha256"] for r in rows),
        tuple(Served(tuple(r["scores"]), thresholds, frozenset(r["predicted"])) for r in rows),
    )  # fmt: skip


def _at_boundary(golden: Golden, a: Served, b: Served) -> bool:
    """Whether every label whose membership differs sits within TOLERANCE of its boundary."""
    if golden.score_type == "softmax":  # the top label: a tie within the tolerance
        top = sorted(a.scores, reverse=True)
        return len(top) > 1 and top[0] - top[1] <= 2 * TOLERANCE
    differs = [i for i, k in enumerate(golden.labels) if (k in a.predicted) != (k in b.predicted)]
    return all(abs(a.scores[i] - a.thresholds[i]) <= TOLERANCE for i in differs)


def compare(golden: Golden, texts: Sequence[GoldenText], served: Sequence[Served]) -> Comparison:
    """Served answers for ``texts`` against ``golden`` (the same texts, checked by digest)."""
    if tuple(g.id for g in texts) != golden.ids or tuple(g.digest for g in texts) != golden.digests:
        raise ValueError(
            f"{golden.model}: the golden texts changed (dataset or selection); run `make golden` "
            "if that is intended"
        )
    worst, worst_id, flipped, edge = 0.0, "-", [], []
    for g, a, b in zip(texts, golden.served, served, strict=True):
        diff = max(abs(x - y) for x, y in zip(a.scores, b.scores, strict=True))
        if diff > worst:
            worst, worst_id = diff, g.id
        if a.predicted != b.predicted:
            (edge if _at_boundary(golden, a, b) else flipped).append(g.id)
    return Comparison(golden.model, len(texts), worst, worst_id, tuple(flipped), tuple(edge))


async def _serve_and(
    action: str, models: Sequence[str], repository: Path, data_dir: Path
) -> list[Comparison]:
    import grpc

    from emotionaware.v1 import emotion_pb2 as pb
    from emotionaware.v1 import emotion_pb2_grpc
    from gateway.server import GatewayServer
    from gateway.settings import Settings
    from launcher.tritonserver import TritonServer

    log_path = Path(tempfile.mkdtemp(prefix="golden-")) / "triton.log"
    triton = TritonServer(repository, log_path=log_path).start()
    try:
        triton.wait_ready(timeout_s=180)
        settings = Settings(listen="127.0.0.1:0", http_listen="", triton_url=triton.grpc_url,
                            model_repository=repository, metrics_port=0)  # fmt: skip
        server = GatewayServer(settings)
        port = await server.start()
        try:
            out = []
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = emotion_pb2_grpc.EmotionServiceStub(channel)
                for model in models:
                    texts = inputs(model, data_dir)
                    served = await score(stub, model, texts, labels_of(model))
                    if action == "write":
                        probe = await stub.Classify(pb.ClassifyRequest(text="ok", model=model), timeout=60)
                        score_type = "softmax" if probe.score_type == pb.SCORE_TYPE_SOFTMAX else "sigmoid"
                        print(f"wrote {save(model, texts, served, score_type)} ({len(texts)} texts)")
                    out.append(compare(load(model), texts, served))
            return out
        finally:
            await server.stop()
    finally:
        triton.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m launcher.golden", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("write", "check"))
    parser.add_argument("--model", action="append", choices=MODELS, help="default: all")
    parser.add_argument("--model-repository", type=Path, default=MODEL_REPOSITORY)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)
    results = asyncio.run(_serve_and(args.action, args.model or MODELS, args.model_repository, args.data_dir))
    print(f"\nOn {cpu_name()}; golden scores made on: "
          + "; ".join(f"{r.model} {load(r.model).made_on}" for r in results))  # fmt: skip
    print("\n".join([*HEADER, *(r.row() for r in results)]))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
