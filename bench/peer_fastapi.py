"""The "write it yourself" peer: FastAPI + ONNX Runtime serving the same graph, as a team would.

    python -m bench.peer_fastapi --port 8000 [--model-repository model_repository] [--model goemotions]

``POST /classify`` with ``{"texts": [...]}`` answers ``{"scores": [[...], ...]}`` (sigmoid per
label, in the model's label order). One uvicorn worker; the endpoint is a plain ``def`` (FastAPI
runs it in its thread pool), tokenization with the model's own ``tokenizer.json`` (``tokenizers``,
truncation at the model's limit, padding to the longest text of the request), one ONNX Runtime
session with one intra-op thread per core. No batching across requests, no admission, no
limits: what `make peers` compares the gateway with, on the same graph, texts and machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from pydantic import BaseModel


class Texts(BaseModel):
    """The request body: the texts to classify."""

    texts: list[str]


def build_app(repository: Path, model: str):
    import onnxruntime as ort
    from fastapi import FastAPI
    from tokenizers import Tokenizer

    from gateway.backends.onnxruntime import served_graph
    from gateway.specs import load_model_spec

    spec = load_model_spec(repository, model)  # only to find the version folder and its limits
    folder = repository / model / spec.version
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=spec.max_tokens)
    tokenizer.enable_padding(pad_id=spec.tokenizer.pad_id)
    session = ort.InferenceSession(
        str(folder / served_graph(repository / model)), providers=["CPUExecutionProvider"]
    )
    needs_types = "token_type_ids" in {i.name for i in session.get_inputs()}

    app = FastAPI()

    @app.post("/classify")
    def classify(body: Texts) -> dict:
        encodings = tokenizer.encode_batch(body.texts)
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        feed = {
            "input_ids": ids,
            "attention_mask": np.asarray([e.attention_mask for e in encodings], np.int64),
        }
        if needs_types:
            feed["token_type_ids"] = np.zeros_like(ids)
        logits = session.run(["logits"], feed)[0]
        return {"scores": (1.0 / (1.0 + np.exp(-logits))).tolist()}

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from gateway.settings import DEFAULT_MODEL_REPOSITORY

    parser = argparse.ArgumentParser(prog="bench.peer_fastapi", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-repository", type=Path, default=DEFAULT_MODEL_REPOSITORY)
    parser.add_argument("--model", default="goemotions")
    args = parser.parse_args(argv)
    uvicorn.run(
        build_app(args.model_repository, args.model), host="127.0.0.1", port=args.port, log_level="warning"
    )


if __name__ == "__main__":
    main()
