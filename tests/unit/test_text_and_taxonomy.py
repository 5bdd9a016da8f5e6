import json

import pytest

from emotionaware.taxonomy import EKMAN_MAPPING, GOEMOTIONS_LABELS, SENTIMENT_MAPPING, group_indices
from emotionaware.text import normalize


def test_normalize_collapses_whitespace_and_folds_compatibility_forms():
    assert normalize("  Thank\u00a0you\n\n so\tmuch  ") == "Thank you so much"
    assert normalize("ｆｕｌｌ width\u200b") == "full width"
    assert normalize("Café") == "Café"  # meaning-bearing accents stay (tokenizer decides)


def test_ekman_mapping_is_the_official_one(data_dir):
    official = json.loads((data_dir / "goemotions" / "ekman_mapping.json").read_text())
    ours = {k: sorted(v) for k, v in EKMAN_MAPPING.items() if k != "neutral"}
    assert ours == {k: sorted(v) for k, v in official.items()}
    assert EKMAN_MAPPING["neutral"] == ("neutral",)


def test_label_list_matches_dataset(data_dir):
    labels = (data_dir / "goemotions" / "original" / "labels.txt").read_text().split()
    assert tuple(labels) == GOEMOTIONS_LABELS


@pytest.mark.parametrize("mapping", [EKMAN_MAPPING, SENTIMENT_MAPPING])
def test_views_cover_every_label_exactly_once(mapping):
    groups = group_indices(GOEMOTIONS_LABELS, mapping)
    flat = sorted(i for idx in groups.values() for i in idx)
    assert flat == list(range(len(GOEMOTIONS_LABELS)))


def test_view_with_gap_or_overlap_is_rejected():
    with pytest.raises(ValueError, match="unmapped"):
        group_indices(("a", "b"), {"x": ("a",)})
    with pytest.raises(ValueError, match="both"):
        group_indices(("a",), {"x": ("a",), "y": ("a",)})
