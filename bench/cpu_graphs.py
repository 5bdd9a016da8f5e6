"""Which graph should the CPU flavour serve? Every candidate measured side by side, in one run.

    python -m bench.cpu_graphs --model goemotions     # make cpu-graphs MODELS="goemotions conversation"

For each candidate graph of a committed artifact, on this machine and the same thread count:

- speed: texts/s over the whole dev split in length-sorted batches of 64 (model time only),
  and one text per run over 200 dev texts (what an idle server's interactive call costs), each
  with its ratio to the fused fp32 graph measured in the same run;
- quality: dev and test headline metric, with thresholds tuned on dev for that graph
  (multi-label) or the top label (single-label);
- batch independence: 200 dev texts scored alone and inside batches of 64 with random
  others (two different mixes): the largest score difference and how many predicted sets
  change. A served score must not depend on batch neighbours (limit 1e-4).

- golden: the largest score difference against the model's committed golden scores
  (``models/<model>/golden.json``, made by the served fp32 graph) on its texts that fit one
  window: for an fp32 graph the cross-machine check, for an int8 one its quantization error.
- CPU independence: the float kernels of different CPUs (AVX2, AVX-512, AMX paths of softmax,
  layer norm, GELU) differ in the last bits. This column measures what such a difference does
  to the scores: the graph is run with the float input of every quantizer (for an fp32 graph:
  of every MatMul and Attention) multiplied by 1 + 2^-23 and by 1 - 2^-23, one unit in the last
  place, over 200 dev texts alone, and the largest score change is reported. A graph whose
  scores move by more than the golden tolerance here cannot give one answer on every CPU.

Candidates: ONNX Runtime fused fp32 (served); dynamic int8 (activation scales per batch: the
graph served until 2026-12-01, for reference); static int8 (QDQ, activation scales calibrated
once on single unpadded training texts, MatMuls with a weight operand only, per-channel)
quantized *before* transformer fusion so that ONNX Runtime fuses the quantized MatMuls at load,
with 7-bit weights (u8 x s7 pair sums cannot saturate AVX2's 16-bit ``vpmaddubsw``) and with
8-bit weights under ``session.x64quantprecision`` (MLAS's saturation-free AVX2 path); static
int8 of the feed-forward MatMuls only, on the fused fp32 graph; OpenVINO fp32 and OpenVINO
with NNCF static int8 (``INFERENCE_PRECISION_HINT=f32`` so nothing runs in bf16), when
installed. Writes a Markdown table to stdout and, with ``--out``, to a file.
"""

from __future__ import annotations

import argparse
import contextlib
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
    texts_per_s: float  # in length-sorted batches of 64
    ratio: float
    alone_per_s: float  # one text per run
    alone_ratio: float
    dev: float
    test: float
    max_dev: float
    set_changes: int
    golden: float | None = None  # largest |score - golden score|; None: no golden texts measured
    golden_sets: int = 0  # golden texts whose predicted set differs
    ulp: float | None = None  # largest score change under a one-ulp nudge; None: not measured

    def markdown(self) -> str:
        golden = "-" if self.golden is None else f"{self.golden:.2e} / {self.golden_sets}"
        return (
            f"| {self.model} | {self.graph} | {self.texts_per_s:.0f} | {self.ratio:.2f} | {self.alone_per_s:.0f} | "
            f"{self.alone_ratio:.2f} | {self.dev:.4f} | "
            f"{self.test:.4f} | {self.max_dev:.2e} | {self.set_changes} | {golden} | "
            f"{'-' if self.ulp is None else f'{self.ulp:.2e}'} |"
        )


HEADER = (
    "| model | graph | texts/s, batches of 64 | x fp32 | texts/s, one per run | x fp32 | dev | test "
    "| max score diff across batches "
    "| predicted sets changed | vs golden: max diff / sets changed | max score diff, one-ulp nudge |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
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


def ort_runner(path: Path, threads: int, config: dict[str, str] | None = None) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
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


def weight_matmuls(path: Path, only: Callable[[str], bool] = lambda name: True) -> list[str]:
    """Names of the MatMul nodes whose second operand is a weight (an initializer)."""
    import onnx

    graph = onnx.load(str(path)).graph
    weights = {i.name for i in graph.initializer}
    return [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights and only(n.name)]


def quantize_int8_static(
    src: Path,
    dst: Path,
    calibration_ids: Sequence[Sequence[int]],
    input_names: Sequence[str],
    *,
    reduce_range: bool = True,
    nodes: Sequence[str] | None = None,
) -> None:
    """Static int8 (QDQ): activation scales calibrated once, so no score depends on batch neighbours.

    Only MatMuls with a weight operand are quantized (``nodes`` narrows them further). Weights
    are per-channel; 7-bit (``reduce_range``) u8 x s7 products cannot saturate the 16-bit pair
    sums of AVX2's ``vpmaddubsw``, so the integer products are exact on AVX2, AVX-512, VNNI and
    AMX alike.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        str(src),
        str(dst),
        _TokenFeeds(calibration_ids, input_names),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=reduce_range,
        nodes_to_quantize=list(nodes if nodes is not None else weight_matmuls(src)),
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def pre_processed(src: Path, dst: Path) -> Path:
    """The unfused graph with shapes inferred and constants folded: what the quantizer should see,
    so that every MatMul is still a MatMul (the fused Attention op hides four of them)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # Symbolic shape inference gives up on the exported position ids (Min(512, sequence));
    # ONNX shape inference is enough to type every MatMul.
    # It leaves temporary files in the working folder: work beside the output.
    with contextlib.chdir(dst.parent):
        quant_pre_process(str(src.resolve()), str(dst.resolve()), skip_symbolic_shape=True)
    return dst


def _feed_forward(name: str) -> bool:
    # The exporter names nodes after the module path: .../intermediate/dense/MatMul and
    # .../output/dense/MatMul (the attention block's is .../attention/output/dense/MatMul).
    return "attention" not in name and ("intermediate" in name or "/output/" in name)


_NUDGED = ("QuantizeLinear", "DynamicQuantizeLinear")


def nudged(src: Path, dst: Path, ulps: int) -> Path:
    """A copy of the graph whose quantizers' float inputs (or, without quantizers, whose MatMul
    and Attention inputs) are multiplied by ``1 + ulps * 2**-23``."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    weights = {i.name for i in graph.initializer}
    quantized = any(n.op_type in _NUDGED for n in graph.node)
    kinds = _NUDGED if quantized else ("MatMul", "Attention")
    factor = "ulp_nudge_factor"
    graph.initializer.append(numpy_helper.from_array(np.array(1.0 + ulps * 2.0**-23, np.float32), factor))
    nodes = []
    for node in graph.node:
        if node.op_type in kinds and node.input[0] not in weights:
            moved = node.input[0] + "/ulp_nudged"
            nodes.append(
                helper.make_node("Mul", [node.input[0], factor], [moved], name=node.name + "/ulp_nudge")
            )
            node.input[0] = moved
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(dst))
    return dst


def ulp_sensitivity(
    make: Callable[[Path], Runner | None], path: Path, ids: list[list[int]], pad_id: int, names, problem
) -> float:
    """Largest score change when every nudged float input moves by one ulp up or down."""

    def scores(run: Runner) -> np.ndarray:
        return to_scores(np.concatenate([run(padded([r], pad_id, names)) for r in ids]), problem)

    base = scores(make(path))
    worst = 0.0
    for ulps in (1, -1):
        moved = nudged(path, path.with_name(f"{path.stem}.nudged{ulps:+d}.onnx"), ulps)
        worst = max(worst, float(np.abs(scores(make(moved)) - base).max()))
    return worst


def openvino_nncf_runner(path: Path, threads: int, calibration: list[dict[str, np.ndarray]]) -> Runner | None:
    """OpenVINO with NNCF's static int8 (transformer preset), run with f32 as the precision of
    everything left in floating point."""
    try:
        import nncf
        import openvino as ov
    except ImportError:
        return None
    core = ov.Core()
    model = core.read_model(str(path))
    quantized = nncf.quantize(
        model,
        nncf.Dataset(calibration),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(calibration),
    )
    compiled = core.compile_model(
        quantized, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads}
    )
    request = compiled.create_infer_request()
    return lambda feed: np.asarray(request.infer(feed)[compiled.output(0)])


@dataclass(frozen=True)
class GoldenSet:
    """Committed golden texts that fit one window without context, as the graph sees them."""

    labels: tuple[str, ...]
    ids: list[list[int]]
    scores: np.ndarray  # (texts, labels), as served when the file was made
    thresholds: np.ndarray
    predicted: list[frozenset[str]]


def golden_set(name: str, tokenizer) -> GoldenSet | None:
    from launcher import golden

    if name != "goemotions":  # context turns and windows are the gateway's work: checked there
        return None
    saved = golden.load(name)
    texts = {g.id: g for g in golden.inputs(name)}
    ids, scores, predicted = [], [], []
    for key, served in zip(saved.ids, saved.served, strict=True):
        encoded = tokenizer.encode(texts[key].text)
        if encoded.truncated:
            continue
        ids.append(encoded.input_ids.tolist())
        scores.append(served.scores)
        predicted.append(served.predicted)
    thresholds = np.asarray(saved.served[0].thresholds, np.float32)
    return GoldenSet(saved.labels, ids, np.asarray(scores, np.float32), thresholds, predicted)


def golden_deviation(run: Runner, gold: GoldenSet, pad_id: int, names, problem) -> tuple[float, int]:
    """Largest score difference against the golden scores (each text alone, as they were made),
    and how many predicted sets differ."""
    logits = np.concatenate([run(padded([r], pad_id, names)) for r in gold.ids])
    scores = to_scores(logits, problem)
    chosen = decisions(logits, problem, gold.thresholds)
    sets = sum(
        frozenset(gold.labels[j] for j in np.flatnonzero(row)) != want
        for row, want in zip(chosen, gold.predicted, strict=True)
    )
    return float(np.abs(scores - gold.scores).max()), int(sets)


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
        pre = Path(tmp) / "pre.onnx"
        pre_processed(plain, pre)

        def ort(config: dict[str, str] | None = None) -> Callable[[Path], Runner]:
            return lambda path: ort_runner(path, threads, config)

        def at(stem: str) -> Path:
            return Path(tmp) / f"{stem}.onnx"

        x64 = {"session.x64quantprecision": "1"}
        feed_forward = weight_matmuls(fused, _feed_forward)
        calibration = [padded([ids], pad, names) for ids in pool]
        # name, graph file, how to build it (None: exists), runner for a graph file, nudged?
        candidates: list[
            tuple[str, Path, Callable[[Path], None] | None, Callable[[Path], Runner | None], bool]
        ] = [
            ("ORT fp32 (fused; served)", fused, None, ort(), True),
            (
                "ORT int8 dynamic (served until 2026-12-01)",
                at("dynamic"),
                lambda p: quantize_int8(fused, p),
                ort(),
                True,
            ),
            (
                "ORT int8 static QDQ before fusion, 7-bit weights",
                at("static7"),
                lambda p: quantize_int8_static(pre, p, pool, names, reduce_range=True),
                ort(),
                True,
            ),
            (
                "ORT int8 static QDQ before fusion, 8-bit weights, x64quantprecision",
                at("static8"),
                lambda p: quantize_int8_static(pre, p, pool, names, reduce_range=False),
                ort(x64),
                True,
            ),
            (
                "ORT int8 static QDQ, feed-forward only, on the fused graph, 7-bit weights",
                at("ffn7"),
                lambda p: quantize_int8_static(fused, p, pool, names, nodes=feed_forward),
                ort(),
                True,
            ),
            ("OpenVINO fp32", plain, None, lambda p: openvino_runner(p, threads), True),
            # NNCF quantizes inside OpenVINO: there is no ONNX graph of it to nudge.
            (
                "OpenVINO NNCF static int8, f32 hint",
                plain,
                None,
                lambda p: openvino_nncf_runner(p, threads, calibration),
                False,
            ),
        ]
        gold = golden_set(name, tokenizer)
        fp32_speed = fp32_alone = None
        for graph, path, build, make, nudge in candidates:
            if build is not None:
                build(path)
            run = make(path)
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
            test = headline.score(
                headline.test.targets, decisions(test_logits, source.problem_type, thresholds)
            )
            started = time.perf_counter()
            for ids in sample:
                run(padded([ids], pad, names))
            alone = len(sample) / (time.perf_counter() - started)
            fp32_alone = fp32_alone or alone
            worst, changed = deviation(run, sample, dev_ids, pad, names, source.problem_type, thresholds)
            golden, golden_sets = (
                golden_deviation(run, gold, pad, names, source.problem_type) if gold else (None, 0)
            )
            ulp = ulp_sensitivity(make, path, sample, pad, names, source.problem_type) if nudge else None
            rows.append(
                Row(
                    name,
                    graph,
                    speed,
                    speed / fp32_speed,
                    alone,
                    alone / fp32_alone,
                    dev,
                    test,
                    worst,
                    changed,
                    golden,
                    golden_sets,
                    ulp,
                )
            )
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
    from bench.run import results_page

    results_page(
        "CPU graph candidates",
        f"{args.threads} ONNX Runtime threads. `make cpu-graphs` (bench/cpu_graphs.py; its docstring "
        "defines every column).",
        "\n".join([HEADER, *(r.markdown() for r in rows)]),
        out=args.out,
    )


if __name__ == "__main__":
    main()
