"""Baselines measured in the same run, on the same texts and thread count as the served paths.

- ``hf_pipeline``: Hugging Face ``pipeline("text-classification")`` in process, PyTorch, batch 32:
  what a team would write without a serving stack. It runs the same encoder (MiniLM-L6 via
  ``AutoModelForSequenceClassification``, whose head adds one small dense layer), so its cost per
  text is the model's, not a strawman's.
- ``ort_ceiling``: the served graph in ONNX Runtime in process, tokenization included, over
  length-sorted batches of 64: the ceiling of this machine without any serving overhead. Run
  with spinning and with sleeping idle threads; the faster counts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from emotionaware.padding import pad_rows


@dataclass(frozen=True)
class Baseline:
    name: str
    texts: int
    seconds: float

    @property
    def texts_per_s(self) -> float:
        return self.texts / self.seconds

    def summary(self) -> dict:
        return {"name": self.name, "texts": self.texts, "seconds": round(self.seconds, 2),
                "texts_per_s": round(self.texts_per_s, 1)}  # fmt: skip


def hf_pipeline(texts: Sequence[str], threads: int, base_path: Path, batch_size: int = 32) -> Baseline:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(threads)
    hf_logging.set_verbosity_error()  # the fresh head's "newly initialized" warning is expected here
    model = AutoModelForSequenceClassification.from_pretrained(base_path, num_labels=28)
    classify = pipeline(
        "text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(base_path), device=-1,
        top_k=None, function_to_apply="sigmoid", batch_size=batch_size, truncation=True, max_length=128,
    )  # fmt: skip
    classify(list(texts[:64]))  # warm-up
    started = time.perf_counter()
    outputs = classify(list(texts))
    seconds = time.perf_counter() - started
    assert len(outputs) == len(texts)
    return Baseline(f"HF pipeline (PyTorch, batch {batch_size})", len(texts), seconds)


def ort_ceiling(
    texts: Sequence[str], repository: Path, model: str, threads: int, batch_size: int = 64, spin: bool = True
) -> Baseline:
    import onnxruntime as ort

    from gateway.backends.onnxruntime import served_graph
    from gateway.specs import load_model_spec

    spec = load_model_spec(repository, model)
    graph = repository / model / spec.version / served_graph(repository / model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # Spinning threads are ONNX Runtime's default; without it back-to-back runs can go either way.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    def run(batch_texts: Sequence[str]) -> int:
        ids = [spec.tokenizer.encode(t).input_ids for t in batch_texts]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        done = 0
        for start in range(0, len(order), batch_size):
            rows = [ids[i] for i in order[start : start + batch_size]]
            input_ids, mask = pad_rows(rows, spec.tokenizer.pad_id)
            done += len(session.run(["logits"], {"input_ids": input_ids, "attention_mask": mask})[0])
        return done

    run(texts[:64])  # warm-up
    started = time.perf_counter()
    done = run(texts)
    waiting = "spinning" if spin else "sleeping"
    return Baseline(f"ONNX Runtime in process ({graph.name}, sorted batches of {batch_size}, {waiting} threads)", done,
                    time.perf_counter() - started)  # fmt: skip
