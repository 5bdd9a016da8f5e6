"""Training (a small real run) and the committed compact artifact."""

import dataclasses
import json
from pathlib import Path

import pytest
from safetensors import safe_open

from emotionaware.artifact import MANIFEST, METRICS, WEIGHTS, ArtifactManifest
from emotionaware.paths import MODELS_DIR
from emotionaware.taxonomy import GOEMOTIONS_LABELS
from train.config import TrainConfig
from train.model import FROZEN_PARAMETERS, load_artifact

LIMIT_BYTES = 25 * 1024 * 1024
COMMITTED = MODELS_DIR / "goemotions"


def stored_tensors(model_dir: Path) -> set[str]:
    with safe_open(str(model_dir / WEIGHTS), framework="pt") as fh:
        return set(fh.keys())


def test_committed_artifact_is_compact_and_rebuilds():
    assert (COMMITTED / WEIGHTS).stat().st_size <= LIMIT_BYTES
    assert not set(FROZEN_PARAMETERS) & stored_tensors(COMMITTED)
    model, manifest = load_artifact(COMMITTED)
    assert manifest.labels == GOEMOTIONS_LABELS
    assert sum(p.numel() for p in model.parameters()) < 25_000_000


def test_committed_metrics_were_measured_on_test_with_dev_thresholds():
    metrics = json.loads((COMMITTED / METRICS).read_text())
    assert metrics["thresholds"] == "per label, tuned on dev only"
    assert metrics["baselines"]["tfidf_lr"]["test"]["examples"] == 5427
    for figure in ("per_label_f1.png", "confusion_matrix.png", "thresholds.png"):
        assert (COMMITTED / figure).stat().st_size > 10_000
    assert metrics["test"]["examples"] == 5427 and metrics["dev"]["examples"] == 5426
    # A floor well under the recorded value: catches a broken or untrained artifact.
    assert metrics["test"]["macro_f1"] > 0.40


def test_rebuild_refuses_a_different_base_encoder(tmp_path):
    for path in COMMITTED.iterdir():
        if path.is_file():  # the artifact; experiments/ holds records of other runs
            (tmp_path / path.name).write_bytes(path.read_bytes())
    manifest = ArtifactManifest.load(tmp_path)
    wrong = {name: "0" * 64 for name in manifest.frozen_from_base}
    (tmp_path / MANIFEST).write_text(dataclasses.replace(manifest, frozen_from_base=wrong).to_json())
    with pytest.raises(ValueError, match="differs from the one the model was trained with"):
        load_artifact(tmp_path)


def test_small_training_run_writes_an_artifact_with_metrics(tmp_path, data_dir):
    from train.run import train

    config = TrainConfig.for_model("goemotions").with_overrides(epochs=1)
    metrics = train(config, tmp_path, data_dir, limit_train=96)
    assert (tmp_path / WEIGHTS).stat().st_size <= LIMIT_BYTES
    assert not set(FROZEN_PARAMETERS) & stored_tensors(tmp_path)
    log = json.loads((tmp_path / "train_log.json").read_text())
    assert log["train_examples"] == 96 and len(log["epochs"]) == 1
    assert 0.0 <= metrics["test"]["macro_f1"] <= 1.0
    assert set(json.loads((tmp_path / "thresholds.json").read_text())) == set(GOEMOTIONS_LABELS)


def test_an_experiment_records_its_figures_next_to_the_model_it_varies(tmp_path):
    from train.card import experiments_section
    from train.evaluate import EXPERIMENTS, experiment_records
    from train.run import record_experiment

    config = TrainConfig.for_model("goemotions-r1")
    assert config.experiment_of == "goemotions"

    def split(macro: float) -> dict:
        return {"macro_f1": macro, "micro_f1": 0.6, "views": {"ekman": {"macro_f1": 0.63}}}

    metrics = {"dev": split(0.53456), "test": split(0.51234)}
    log = {"epochs": [{"seconds": 600.4}, {"seconds": 599.9}], "selected_epoch": 2}
    path = record_experiment(config, metrics, log, tmp_path)
    assert path == tmp_path / "goemotions" / EXPERIMENTS / "goemotions-r1.json"
    record = json.loads(path.read_text())
    assert (record["dev"]["macro_f1"], record["test"]["macro_f1"]) == (0.5346, 0.5123)
    assert record["train"]["epochs"] == 3 and record["train_seconds"] == 1200 and "CPUs" in record["machine"]
    assert record["selected"] == {"epoch": 2, "weights": "trained"}
    assert record["command"] == "make train MODEL=goemotions-r1"
    # The model it varies lists it in its card's table, next to its own recipe.
    records = experiment_records(tmp_path / "goemotions")
    assert records == [record]
    table = "\n".join(experiments_section("goemotions", metrics | {"experiments": records}, log))
    assert "| goemotions-r1 | round 1: 3 epochs" in table and "| goemotions (served) |" in table
    assert "| 20 min |" in table


def test_a_rerun_of_the_served_recipe_is_its_spread_not_a_candidate():
    import dataclasses

    from train.card import experiments_section

    def split(macro: float) -> dict:
        return {"macro_f1": macro, "micro_f1": 0.6, "views": {"ekman": {"macro_f1": 0.63}}}

    def record(name: str, train: dict, dev: float) -> dict:
        def headline(macro: float) -> dict:
            return {"macro_f1": macro, "micro_f1": 0.6, "ekman_macro_f1": 0.63}

        return {"name": name, "description": "d", "command": "c", "train": train, "dev": headline(dev),
                "test": headline(0.5), "train_seconds": 60, "machine": "m"}  # fmt: skip

    served = dataclasses.asdict(TrainConfig.for_model("goemotions").train)
    # Records predating a parameter omit it: it took its default then, as it does now.
    older = {k: v for k, v in served.items() if k != "class_weight_power"}
    other = served | {"epochs": served["epochs"] + 1}
    metrics = {"dev": split(0.55), "test": split(0.52)}
    log = {"epochs": [{"seconds": 60.0}], "machine": "m"}
    rows = [record("rerun", older, 0.56), record("longer", other, 0.57)]
    table = "\n".join(experiments_section("goemotions", metrics | {"experiments": rows}, log))
    assert "not a candidate), dev macro-F1: `rerun` 0.560; served 0.550." in table
    assert "Not served yet, although ahead on dev macro-F1: `longer`." in table


def test_a_conversation_experiment_is_recorded_and_chosen_on_weighted_f1(tmp_path):
    from train.card import SINGLE_LABEL_COLUMNS, experiments_section
    from train.evaluate import experiment_records
    from train.run import record_experiment

    config = TrainConfig.for_model("conversation-r2w")
    assert config.experiment_of == "conversation" and config.train.class_weight_power == 0.5

    def split(weighted: float) -> dict:
        return {"weighted_f1": weighted, "macro_f1": 0.43, "accuracy": 0.63}

    metrics = {"dev": split(0.58761), "test": split(0.62049)}
    log = {"epochs": [{"seconds": 300.0}] * 4, "selected_epoch": 4, "selected_weights": "ema"}
    record = json.loads(record_experiment(config, metrics, log, tmp_path).read_text())
    assert record["dev"] == {"weighted_f1": 0.5876, "macro_f1": 0.43, "accuracy": 0.63}
    assert record["selected"] == {"epoch": 4, "weights": "ema"} and record["train_seconds"] == 1200
    records = experiment_records(tmp_path / "conversation")
    table = "\n".join(
        experiments_section("conversation", metrics | {"experiments": records}, log, SINGLE_LABEL_COLUMNS)
    )
    assert "chosen on dev weighted-F1 only" in table
    assert "| conversation-r2w | the round-2 recipe plus class weights" in table
    assert "| 0.588 | 0.620 | 0.430 | 0.430 | 20 min |" in table
    assert "Not served yet" not in table  # the served row has the same dev figure
    ahead = metrics | {"experiments": records, "dev": split(0.5), "test": split(0.6)}
    table = "\n".join(experiments_section("conversation", ahead, log, SINGLE_LABEL_COLUMNS))
    assert "Not served yet, although ahead on dev weighted-F1: `conversation-r2w`." in table


def test_committed_goemotions_card_reports_experiments_calibration_and_the_meld_transfer():
    metrics = json.loads((COMMITTED / METRICS).read_text())
    card = (COMMITTED / "README.md").read_text()
    records = sorted((COMMITTED / "experiments").glob("*.json"))
    assert len(metrics["experiments"]) == len(records) >= 1
    for record in metrics["experiments"]:
        assert f"| {record['name']} |" in card
        config = MODELS_DIR.parent / "train" / "configs" / f"{record['name']}.toml"
        assert config.exists() or record["command"].startswith("git checkout ")
    calibration = metrics["calibration"]
    assert calibration["temperature"] > 0 and 0 <= calibration["served"]["pooled"] < 0.05
    assert "## Calibration" in card and "## Transfer to MELD" in card
    # The served thresholds are the per-label rule; its test figure is the card's headline.
    assert "## Threshold rules" in card
    served_rule = metrics["threshold_rules"]["per_label"]
    assert served_rule["test"] == pytest.approx(metrics["test"]["macro_f1"])
    assert served_rule["dev_in_sample"] == pytest.approx(metrics["dev"]["macro_f1"])
    transfer = metrics["meld_transfer"]
    assert transfer["examples"] == 2610 and 0 <= transfer["served"]["top_neutral"] <= 1


def test_models_doc_quotes_the_committed_metrics():
    readme = (MODELS_DIR.parent / "docs" / "models.md").read_text()  # the README links it
    metrics = json.loads((COMMITTED / METRICS).read_text())
    for split in ("dev", "test"):
        m = metrics[split]
        row = (
            f"| {split} | {m['macro_f1']:.3f} | {m['micro_f1']:.3f} | {m['views']['ekman']['macro_f1']:.3f} "
            f"| {m['views']['sentiment']['macro_f1']:.3f} |"
        )
        assert row in readme


CONVERSATION = MODELS_DIR / "conversation"


def test_committed_conversation_model_is_compact_and_reads_context():
    from emotionaware.taxonomy import EKMAN_LABELS

    assert (CONVERSATION / WEIGHTS).stat().st_size <= LIMIT_BYTES
    model, manifest = load_artifact(CONVERSATION)
    assert manifest.labels == EKMAN_LABELS and manifest.context_turns > 0 and manifest.dataset == "meld"
    assert sum(p.numel() for p in model.parameters()) < 25_000_000
    metrics = json.loads((CONVERSATION / METRICS).read_text())
    assert metrics["test"]["examples"] == 2610 and metrics["dev"]["examples"] == 1109
    assert metrics["test"]["weighted_f1"] > 0.5  # a floor: catches a broken or untrained artifact
    # The report carries its baselines, scored on the same splits.
    baselines = metrics["baselines"]
    assert {"tfidf_lr", "same_weights_no_context", "conversation-nocontext"} <= set(baselines)
    assert all(b["test"]["examples"] == 2610 for b in baselines.values())
    assert metrics["exported"]["served_cpu_graph"] == "fp32"


def test_small_conversation_training_run(tmp_path, data_dir):
    from train.run import train

    config = TrainConfig.for_model("conversation").with_overrides(epochs=1)
    metrics = train(config, tmp_path, data_dir, limit_train=64)
    log = json.loads((tmp_path / "train_log.json").read_text())
    assert log["train_examples"] == 64 and "dev_weighted_f1" in log["epochs"][0]
    assert 0.0 <= metrics["test"]["weighted_f1"] <= 1.0
    assert len(metrics["test"]["confusion_matrix"]) == 7


def test_models_doc_quotes_the_conversation_metrics():
    readme = (MODELS_DIR.parent / "docs" / "models.md").read_text()  # the README links it
    metrics = json.loads((CONVERSATION / METRICS).read_text())
    for split in ("dev", "test"):
        m = metrics[split]
        assert f"| {split} | {m['weighted_f1']:.3f} | {m['macro_f1']:.3f} | {m['accuracy']:.3f} |" in readme


def test_small_poems_training_run_cross_validates_one_fold(tmp_path, data_dir):
    """The cross-validated path end to end on a few poems: artifact, record, eval, card, figures."""
    from train.crossval import CROSSVAL
    from train.run import train

    config = TrainConfig.for_model("poems").with_overrides(epochs=1)
    metrics = train(config, tmp_path, data_dir, limit_train=24)
    record = json.loads((tmp_path / CROSSVAL).read_text())
    assert record["folds"] == 5 and record["folds_trained"] == 1
    held = set(record["held_out_ids"][0])
    scored = [row is not None for row in record["scores"]]
    assert sum(scored) == len(held)
    # Only the trained fold is scored, and the baseline is scored on the same poems.
    for entry in (metrics["crossval"], metrics["baselines"]["tfidf_lr"]["crossval"]):
        assert entry["examples"] == len(held) and len(entry["per_fold_macro_f1"]) == 1
    assert metrics["served_fold"]["examples"] == len(held)
    card = (tmp_path / "README.md").read_text()
    for png in ("per_label_f1.png", "confusion_matrix.png"):
        assert (tmp_path / png).stat().st_size > 2000 and f"]({png})" in card


def test_cross_validation_refuses_to_select_epochs_on_held_out_poems(tmp_path, data_dir):
    from train.run import train

    config = TrainConfig.for_model("poems").with_overrides(select_best_epoch=True)
    with pytest.raises(SystemExit, match="keep the last epoch"):
        train(config, tmp_path, data_dir, limit_train=8)


def test_ablation_records_scores_next_to_the_model_it_ablates(tmp_path, data_dir):
    from emotionaware.datasets import load_meld
    from train.evaluate import ABLATIONS, ablation_report
    from train.run import train

    config = TrainConfig.for_model("conversation-nocontext").with_overrides(epochs=1)
    train(config, tmp_path / "weights", data_dir, limit_train=32, models_dir=tmp_path / "models")
    path = tmp_path / "models" / "conversation" / ABLATIONS / "conversation-nocontext.json"
    report = ablation_report(path, load_meld(data_dir))
    assert report["test"]["examples"] == 2610 and "utterance alone" in report["recipe"]
    assert report["command"].startswith("make train MODEL=conversation-nocontext")


POEMS = MODELS_DIR / "poems"


def test_committed_poems_model_is_compact_chunks_and_matches_its_cross_validation_record():
    from emotionaware.artifact import ArtifactManifest
    from emotionaware.datasets import PERC_LABELS
    from train.crossval import CROSSVAL

    assert (POEMS / WEIGHTS).stat().st_size <= LIMIT_BYTES
    manifest = ArtifactManifest.load(POEMS)
    assert (
        manifest.labels == PERC_LABELS and manifest.long_text_mode == "chunk" and manifest.dataset == "perc"
    )
    record = json.loads((POEMS / CROSSVAL).read_text())
    assert record["folds"] == record["folds_trained"] == 5 and all(
        row is not None for row in record["scores"]
    )
    metrics = json.loads((POEMS / METRICS).read_text())
    assert metrics["crossval"]["examples"] == metrics["baselines"]["tfidf_lr"]["crossval"]["examples"] == 725
    assert len(metrics["crossval"]["per_fold_macro_f1"]) == 5


def test_models_doc_quotes_the_poems_metrics():
    readme = (MODELS_DIR.parent / "docs" / "models.md").read_text()  # the README links it
    metrics = json.loads((POEMS / METRICS).read_text())
    for name, m in (
        ("poems", metrics["crossval"]),
        ("TF-IDF + LR", metrics["baselines"]["tfidf_lr"]["crossval"]),
    ):
        assert (
            f"| {name} | {m['macro_f1']:.3f} | {m['mean_fold_macro_f1']:.3f} | {m['accuracy']:.3f} |"
            in readme
        )


def test_eval_refuses_a_crossval_record_the_committed_weights_do_not_reproduce(tmp_path, data_dir):
    from emotionaware.datasets import load_perc
    from train.crossval import CROSSVAL
    from train.evaluate import evaluate_perc

    for path in POEMS.iterdir():
        if path.is_file():  # the artifact; experiments/ holds records of other recipes
            (tmp_path / path.name).write_bytes(path.read_bytes())
    record = json.loads((tmp_path / CROSSVAL).read_text())
    # Scores are stored in poem order; shift one held-out poem of fold 1 by 0.02.
    index = [p.id for p in load_perc(data_dir).poems].index(record["held_out_ids"][0][0])
    record["scores"][index] = [
        round(v + (0.02 if k == 0 else -0.02 / 8), 6) for k, v in enumerate(record["scores"][index])
    ]
    (tmp_path / CROSSVAL).write_text(json.dumps(record))
    with pytest.raises(ValueError, match="do not reproduce the recorded fold-1 scores"):
        evaluate_perc(tmp_path, data_dir)


def test_ablation_scores_out_of_dataset_order_are_refused(tmp_path, data_dir):
    from emotionaware.datasets import load_meld
    from train.evaluate import ABLATIONS, ablation_report

    record = json.loads((CONVERSATION / ABLATIONS / "conversation-nocontext.json").read_text())
    record["ids"]["test"] = record["ids"]["test"][::-1]
    path = tmp_path / "ablation.json"
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="recorded test scores are not in the dataset's order"):
        ablation_report(path, load_meld(data_dir))


def test_committed_conversation_card_lists_every_recipe_tried():
    metrics = json.loads((CONVERSATION / METRICS).read_text())
    card = (CONVERSATION / "README.md").read_text()
    records = sorted((CONVERSATION / "experiments").glob("*.json"))
    assert len(metrics["experiments"]) == len(records) >= 2
    assert "chosen on dev weighted-F1 only" in card and "| conversation (served) |" in card
    for record in metrics["experiments"]:
        assert f"| {record['name']} |" in card
        # Re-trainable: a config of its own, or the commit whose recipe it was.
        config = MODELS_DIR.parent / "train" / "configs" / f"{record['name']}.toml"
        assert config.exists() or record["command"].startswith("git checkout ")
    # The served model is the recipe with the best dev figure of all recorded ones.
    served = metrics["dev"]["weighted_f1"]
    assert all(round(served, 4) >= r["dev"]["weighted_f1"] for r in metrics["experiments"])


def test_committed_poems_card_compares_probes_on_the_same_folds():
    poems = MODELS_DIR / "poems"
    metrics = json.loads((poems / METRICS).read_text())
    card = (poems / "README.md").read_text()
    (probe,) = [r for r in metrics["experiments"] if r["name"] == "poems-probe"]
    assert len(probe["crossval"]["per_fold"]) == metrics["folds_trained"] == 5
    assert "| poems-probe |" in card and "| poems (served) |" in card and "| tfidf_lr |" in card
