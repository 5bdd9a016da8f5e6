"""The committed classifier rebuilt in PyTorch from the artifact and the bundle, for the GPU.

The GPU machine has torch and transformers but not the base encoder's package, so the word
embeddings come from the bundle (the rows the benchmark texts use; the others stay zero and
are never read). The module layout matches ``train.model.MeanPoolClassifier``, so the
artifact's state dict loads unchanged; this file imports nothing from ``train`` because that
package needs the base encoder and the training extras.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from emotionaware.padding import pad_rows

WORD_EMBEDDINGS = "encoder.embeddings.word_embeddings.weight"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


class MeanPoolClassifier(nn.Module):
    """Encoder, masked mean pooling and a linear head (inference only: no dropout)."""

    def __init__(self, encoder: nn.Module, num_labels: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-6)
        return self.classifier(pooled)


def build(artifact: Path, bundle_model: Path, dtype: str, device: str) -> nn.Module:
    """The classifier in ``dtype`` on ``device``, in eval mode, with every stored tensor loaded."""
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    manifest = json.loads((artifact / "artifact.json").read_text())
    config = BertConfig.from_json_file(str(bundle_model / "config.json"))
    config._attn_implementation = "sdpa"  # fused attention; the default for from_pretrained
    encoder = BertModel(config, add_pooling_layer=False)
    model = MeanPoolClassifier(encoder, len(manifest["labels"]))
    state = load_file(str(artifact / "weights.safetensors"))
    embeddings = load_file(str(bundle_model / "embeddings.safetensors"))
    table = torch.zeros(tuple(embeddings["shape"].tolist()), dtype=torch.float16)
    table[embeddings["ids"]] = embeddings["rows"]
    state[WORD_EMBEDDINGS] = table
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("position_ids")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ValueError(
            f"weights do not match the architecture: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
    return model.to(device=device, dtype=DTYPES[dtype]).eval()


def pad(rows: list, pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id rows -> (input_ids, attention_mask), int64, padded to the longest row."""
    ids, mask = pad_rows(rows, pad_id)
    return torch.from_numpy(ids), torch.from_numpy(mask)
