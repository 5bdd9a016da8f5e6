"""Which graph should the CPU flavour serve? Every candidate measured side by side, in one run.

    python -m bench.cpu_graphs --model goemotions     # make cpu-graphs MODELS="goemotions conversation"

For each candidate graph of a committed artifact, on this machine and the same thread count:

- speed: texts/s over the whole dev split in length-sorted batches of 64 (model time only),
  and the ratio to the fused fp32 graph measured in the same run;
- quality: dev and test headline metric, with thresholds tuned on dev for that graph
  (multi-label) or the top label (single-label);
- batch independence: 200 dev texts scored alone and inside batches of 64 with random
  others (two different mixes): the largest score difference and how many predicted sets
  change. A served score must not depend on batch neighbours (limit 1e-4).

Candidates: ONNX Runtime fused fp32; dynamic int8 (activation scales per batch: today's
graph), also with 7-bit weights; static int8 (QDQ, activation scales calibrated once on
training texts, 7-bit per-channel weights); OpenVINO fp32 when the package is installed.
Writes a Markdown table to stdout and, with ``--out``, to a file.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotionaware.artifact import ProblemType
from emotionaware.scores import to_scores
from export.parity import decisions

BATCH = 64
DEVIATION_TEXTS = 200
CALIBRATION_TEXTS = 512

Runner = Callable[[dict[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Row:
    model: str
    graph: str
    texts_per_s: float
    ratio: float
    dev: float
    test: float
    max_dev: float
    set_changes: int

    def markdown(self) -> str:
        return (
            f"| {self.model} | {self.graph} | {self.texts_per_s:.0f} | {self.ratio:.2f} | {self.dev:.4f} | "
            f"{self.test:.4f} | {self.max_dev:.2e} | {self.set_changes} |"
        )


HEADER = (
    "| model | graph | texts/s | x fp32 | dev | test | max score diff across batches | predicted sets changed |\n"
    "|---|---|---|---|---|---|---|---|"
)


def padded(rows: Sequence[Sequence[int]], pad_id: int, input_names: Sequence[str]) -> dict[str, np.ndarray]:
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    feed = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in input_names:
        feed["token_type_ids"] = np.zeros_like(ids)
    return feed


def logits_sorted(run: Runner, ids: Sequence[Sequence[int]], pad_id: int, names: Sequence[str]) -> np.ndarray:
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = None
    for start in range(0, len(order), BATCH):
        index = order[start : start + BATCH]
        logits = run(padded([ids[i] for i in index], pad_id, names))
        out = np.zeros((len(ids), logits.shape[1]), np.float32) if out is None else out
        out[index] = logits
    return out


def ort_runner(path: Path, threads: int) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda feed: session.run(["logits"], feed)[0]


def openvino_runner(path: Path, threads: int) -> Runner | None:
    try:
        import openvino as ov
    except ImportError:
        return None
    core = ov.Core()
    # f32 everywhere: on CPUs with AMX or AVX-512 BF16 OpenVINO would otherwise pick bf16.
    compiled = core.compile_model(
        str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads}
    )
    request = compiled.create_infer_request()
    return lambda feed: np.asarray(request.infer(feed)[compiled.output(0)])


def deviation(
    run: Runner, ids: list[list[int]], others: list[list[int]], pad_id: int, names, problem, thresholds
) -> tuple[float, int]:
    """Largest score difference between each text alone and inside two different random batches."""
    alone = np.concatenate([run(padded([r], pad_id, names)) for r in ids])
    base = to_scores(alone, problem)
    worst, changed = 0.0, 0
    for seed in (1, 2):
        rng = random.Random(seed)
        mixed = np.zeros_like(alone)
        for i, r in enumerate(ids):
            batch = rng.sample(others, BATCH - 1)
            at = rng.randrange(BATCH)
            batch.insert(at, r)
            mixed[i] = run(padded(batch, pad_id, names))[at]
        scores = to_scores(mixed, problem)
        worst = max(worst, float(np.abs(scores - base).max()))
        changed += int(
            (decisions(mixed, problem, thresholds) != decisions(alone, problem, thresholds)).any(axis=1).sum()
        )
    return worst, changed


def quantize_int8(src: Path, dst: Path, reduce_range: bool = False) -> None:
    """Dynamic int8 with per-channel weights: the graph served until scores had to be batch-independent.

    Its activation scales are computed per run over the whole batch tensor, so a text's
    scores move with whatever it is batched with (see the deviation column).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=reduce_range,
        # Fused contrib ops defeat shape inference; their outputs are float.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


class _TokenFeeds:
    """Calibration batches for static quantization: one real text per run, unpadded."""

    def __init__(self, token_ids: Sequence[Sequence[int]], input_names: Sequence[str]) -> None:
        self._feeds = iter(
            {
                name: (
                    np.asarray([ids], dtype=np.int64)
                    if name == "input_ids"
                    else np.ones((1, len(ids)), np.int64)
                    if name == "attention_mask"
                    else np.zeros((1, len(ids)), np.int64)
                )
                for name in input_names
            }
            for ids in token_ids
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def quantize_int8_static(
    src: Path, dst: Path, calibration_ids: Sequence[Sequence[int]], input_names: Sequence[str]
) -> None:
    """Static int8 (QDQ): activation scales calibrated once, so no score depends on batch neighbours.

    Only MatMuls with a weight operand are quantized. Weights are per-channel and 7-bit
    (``reduce_range``): u8 x s7 products cannot saturate the 16-bit pair sums of AVX2's
    ``vpmaddubsw``, so the integer products are exact on AVX2, AVX-512, VNNI and AMX alike.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    graph = onnx.load(str(src))
    weights = {i.name for i in graph.graph.initializer}
    nodes = [n.name for n in graph.graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    quantize_static(
        str(src),
        str(dst),
        _TokenFeeds(calibration_ids, input_names),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
        nodes_to_quantize=nodes,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def measure_model(name: str, data_dir: Path, threads: int, log) -> list[Row]:
    from emotionaware.tokenization import TextTokenizer
    from export.cli import MODELS_DIR
    from export.onnx_export import optimize
    from export.parity import HEADLINES
    from export.source import from_artifact
    from train.metrics import tune_thresholds

    source = from_artifact(MODELS_DIR / name)
    tokenizer = TextTokenizer(source.tokenizer_json, source.max_length)
    headline = HEADLINES[source.dataset](data_dir, source.context_turns)

    def encode(split) -> list[list[int]]:
        contexts = split.contexts or [""] * len(split.texts)
        return [tokenizer.encode(t, c).input_ids.tolist() for t, c in zip(split.texts, contexts, strict=True)]

    dev_ids, test_ids = encode(headline.dev), encode(headline.test)
    names, pad = source.input_names, source.pad_token_id
    rng = random.Random(0)
    sample = rng.sample(dev_ids, min(DEVIATION_TEXTS, len(dev_ids)))
    # Calibration texts for static int8: GoEmotions training texts, or the model's dev split
    # (where every choice is made) for the models whose inputs differ from short comments.
    if name == "goemotions":
        from emotionaware.datasets import load_goemotions

        train = [e.text for e in load_goemotions(data_dir).train]
        pool = [
            tokenizer.encode(t).input_ids.tolist() for t in random.Random(1).sample(train, CALIBRATION_TEXTS)
        ]
    else:
        pool = random.Random(1).sample(dev_ids, min(CALIBRATION_TEXTS, len(dev_ids)))

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        plain, fused = Path(tmp) / "plain.onnx", Path(tmp) / "fp32.onnx"
        source.write_onnx(plain)
        optimize(plain, fused, source.onnx_model_type, source.num_heads, source.hidden_size)
        graphs: dict[str, Callable[[], Runner | None]] = {
            "ORT fp32 (fused)": lambda: ort_runner(fused, threads)
        }

        def built(build: Callable[[Path], None]) -> Callable[[], Runner]:
            def make() -> Runner:
                path = Path(tmp) / f"{len(graphs)}.onnx"
                build(path)
                return ort_runner(path, threads)

            return make

        graphs["ORT int8 dynamic (today)"] = built(lambda p: quantize_int8(fused, p))
        graphs["ORT int8 dynamic, 7-bit weights"] = built(
            "dyn7", lambda p: quantize_int8(fused, p, reduce_range=True)
        )
        graphs["ORT int8 static QDQ, 7-bit weights"] = built(
            lambda p: quantize_int8_static(fused, p, pool, names)
        )
        graphs["OpenVINO fp32"] = lambda: openvino_runner(plain, threads)
        fp32_speed = None
        for graph, make in graphs.items():
            run = make()
            if run is None:
                log(f"{name}: {graph}: not installed, skipped")
                continue
            run(padded(dev_ids[:BATCH], pad, names))  # warm-up
            started = time.perf_counter()
            dev_logits = logits_sorted(run, dev_ids, pad, names)
            speed = len(dev_ids) / (time.perf_counter() - started)
            fp32_speed = fp32_speed or speed
            test_logits = logits_sorted(run, test_ids, pad, names)
            dev_scores = to_scores(dev_logits, source.problem_type)
            thresholds = (
                tune_thresholds(dev_scores, headline.dev.targets)
                if source.problem_type is ProblemType.MULTI_LABEL
                else np.zeros(len(source.labels))
            )
            dev = headline.score(headline.dev.targets, decisions(dev_logits, source.problem_type, thresholds))
            to_scores(test_logits, source.problem_type)
            test = headline.score(
                headline.test.targets, decisions(test_logits, source.problem_type, thresholds)
            )
            worst, changed = deviation(run, sample, dev_ids, pad, names, source.problem_type, thresholds)
            rows.append(Row(name, graph, speed, speed / fp32_speed, dev, test, worst, changed))
            log(rows[-1].markdown())
    return rows


def main(argv: list[str] | None = None) -> None:
    from emotionaware.datasets import DEFAULT_DATA_DIR

    parser = argparse.ArgumentParser(prog="bench.cpu_graphs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="artifact name (repeatable; default goemotions)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    rows = [
        r for m in args.model or ["goemotions"] for r in measure_model(m, args.data_dir, args.threads, log)
    ]
    table = "\n".join([HEADER, *(r.markdown() for r in rows)])
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
