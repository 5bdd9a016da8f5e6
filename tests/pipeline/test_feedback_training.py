"""make train FEEDBACK=...: exported feedback joins the training split (dev untouched), the train
log counts it and the model card says so."""

from __future__ import annotations

from emotionaware.feedback_file import FeedbackExample, write_examples
from emotionaware.tokenization import TextTokenizer
from train.card import training_table
from train.config import TrainConfig
from train.fitting import goemotions_task
from train.model import base_model_path


def test_feedback_examples_join_the_training_split_only(tmp_path, data_dir):
    from emotionaware.datasets import load_goemotions

    dev_text = load_goemotions(data_dir).dev[0].text
    path = tmp_path / "feedback.jsonl"
    write_examples(path, [
        FeedbackExample(1, "I waited two hours on hold.", ("annoyance", "anger"), "goemotions", "1", "wrong"),
        FeedbackExample(2, "Thanks, all sorted!", ("gratitude",), "goemotions", "1", "correct"),
        FeedbackExample(3, "A turn of a chat.", ("anger",), "conversation", "1", "wrong"),  # another model
        FeedbackExample(4, "Odd labels.", ("rage",), "goemotions", "1", "wrong"),  # not a label
        FeedbackExample(5, "Thanks,  all sorted!", ("joy",), "goemotions", "1", "wrong"),  # the same text, later
        FeedbackExample(6, dev_text, ("anger",), "goemotions", "1", "wrong"),  # a dev text: never trained on
    ])  # fmt: skip
    config = TrainConfig.for_model("goemotions")
    tokenizer = TextTokenizer(base_model_path(config.base) / "tokenizer.json", config.train.max_length)
    plain = goemotions_task(config, tokenizer, data_dir, 16)
    mixed = goemotions_task(config.with_overrides(feedback_file=str(path)), tokenizer, data_dir, 16)
    assert (len(plain.train_ids), len(mixed.train_ids), mixed.feedback_examples) == (16, 18, 2)
    assert mixed.dev_ids == plain.dev_ids
    labels = list(mixed.labels)
    assert mixed.train_targets[16, labels.index("anger")] == 1 and mixed.train_targets[16].sum() == 2
    # "Thanks, all sorted!" twice: the later verdict (joy) is the one trained on.
    assert mixed.train_targets[17, labels.index("joy")] == 1 and mixed.train_targets[17].sum() == 1
    log = {"train_examples": 18, "feedback_examples": 2, "selected_epoch": 1,
           "epochs": [{"epoch": 1, "train_loss": 0.1, "dev_macro_f1": 0.2, "dev_micro_f1": 0.3, "seconds": 1}]}  # fmt: skip
    assert "18 examples (2 of them reviewers' feedback" in "\n".join(training_table(log))


def test_the_feedback_experiment_is_recorded_beside_the_served_recipe(tmp_path):
    from train.card import experiments_section
    from train.evaluate import experiment_records
    from train.run import record_experiment

    config = TrainConfig.for_model("goemotions-feedback").with_overrides(feedback_file="feedback.jsonl")
    assert (
        config.experiment_of == "goemotions"
        and config.train.epochs == TrainConfig.for_model("goemotions").train.epochs
    )

    def split(macro: float) -> dict:
        return {"macro_f1": macro, "micro_f1": 0.6, "views": {"ekman": {"macro_f1": 0.63}}}

    log = {"epochs": [{"seconds": 600.0}], "selected_epoch": 1, "feedback_examples": 240}
    record_experiment(config, {"dev": split(0.571), "test": split(0.55)}, log, tmp_path)
    (record,) = experiment_records(tmp_path / "goemotions")
    assert record["command"] == "make train MODEL=goemotions-feedback FEEDBACK=feedback.jsonl"
    table = "\n".join(
        experiments_section(
            "goemotions", {"dev": split(0.563), "test": split(0.54), "experiments": [record]}, log
        )
    )
    assert (
        "| goemotions-feedback | the served recipe plus reviewers' feedback in the training split (240 feedback examples) | 0.571 |"
        in table
    )
