"""Routing of request model names to served model versions, from a declarative file.

The routing file (TOML) names the served models, their limits, and aliases::

    [models.goemotions]            # a served model, by its public name
    backend_model = "goemotions"   # Triton model name (default: the public name)
    version = ""                   # routed version; empty: the newest in the repository
    pinnable_versions = []         # older versions requests may pin (Triton must load them)
    max_text_chars = 10000         # per-model limits (defaults: the gateway's settings)
    max_batch_texts = 256

    [aliases]
    default = "goemotions"                                   # required
    stable = "goemotions"
    canary = { "goemotions" = 0.9, "goemotions@2" = 0.1 }    # weighted split

    [clients.billing-bot]                                    # grants and quotas per client
    models = ["goemotions"]                                  # (see gateway/callers.py)
    texts_per_s = 50

    [policies.abuse]                                         # rules that flag texts, sentences
    when = "anger + disgust >= 0.8"                          # and conversations
    scope = ["text", "sentence"]                             # (see gateway/policies.py)

Without a file, every model in the repository is served under its own name, with the
aliases ``default`` (the settings' default model) and ``stable`` (the same).

:class:`Router` holds the current :class:`RouteTable` and swaps it atomically when the file
changes: requests already resolved keep the table they started with, so a reload never drops
one. A file that fails to load or validate is logged and the previous table stays.
"""

from __future__ import annotations

import asyncio
import logging
import random
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.callers import ClientPolicy
from gateway.callers import parse_policies as parse_client_policies
from gateway.errors import ModelNotFound, quote
from gateway.metrics import ROUTING_RELOADS
from gateway.policies import Policies, parse_policies
from gateway.settings import Settings
from gateway.specs import ModelSpec, load_model_spec

log = logging.getLogger(__name__)

_MODEL_KEYS = {"backend_model", "version", "pinnable_versions", "max_text_chars", "max_batch_texts"}


@dataclass(frozen=True)
class Route:
    """A served model: its routed version, the versions that can be pinned, and its limits."""

    name: str
    version: str
    versions: tuple[str, ...]  # routed version first
    max_text_chars: int
    max_batch_texts: int


@dataclass(frozen=True)
class AliasTarget:
    model: str
    version: str  # empty: the model's routed version
    weight: float


@dataclass(frozen=True)
class Resolved:
    """What a request is routed to."""

    spec: ModelSpec
    route: Route


@dataclass(frozen=True)
class RouteTable:
    """An immutable routing snapshot: specs per (model, version), routes and aliases."""

    specs: Mapping[tuple[str, str], ModelSpec]
    routes: Mapping[str, Route]
    aliases: Mapping[str, tuple[AliasTarget, ...]]
    clients: Mapping[str, ClientPolicy] = field(default_factory=dict)
    policies: Policies = field(default_factory=Policies)

    def resolve(self, name: str, version: str = "", rng: random.Random | None = None) -> Resolved:
        """Route a model name or alias (empty: ``default``) and an optional pinned version."""
        name = name or "default"
        if name in self.aliases:
            targets = self.aliases[name]
            target = (rng or random).choices(targets, weights=[t.weight for t in targets])[0]
            name, alias_version = target.model, target.version
            version = version or alias_version
        route = self.routes.get(name)
        if route is None:
            known = sorted(set(self.routes) | set(self.aliases))
            raise ModelNotFound(f"model {quote(name)} is not served; available: {', '.join(known)}")
        version = version or route.version
        spec = self.specs.get((name, version))
        if spec is None:
            raise ModelNotFound(
                f"model {name!r} has no served version {quote(version)}; served: {', '.join(route.versions)}"
            )
        return Resolved(spec, route)

    def aliases_of(self, model: str) -> tuple[str, ...]:
        return tuple(
            sorted(a for a, targets in self.aliases.items() if any(t.model == model for t in targets))
        )

    @property
    def backend_models(self) -> tuple[tuple[str, str], ...]:
        """(Triton model name, version) of every served spec, for readiness checks."""
        return tuple(sorted({(s.triton_name, s.version) for s in self.specs.values()}))


def _parse_target(text: str, weight: float) -> AliasTarget:
    model, _, version = text.partition("@")
    return AliasTarget(model.strip(), version.strip(), weight)


def build_table(settings: Settings, config: Mapping | None) -> RouteTable:
    """Load every routed spec; raises ValueError/FileNotFoundError on an inconsistent config."""
    repository = Path(settings.model_repository)
    if config is None:
        names = settings.models or tuple(sorted(p.parent.name for p in repository.glob("*/config.pbtxt")))
        models = {name: {} for name in names}
        aliases_raw: Mapping = {"default": settings.default_model, "stable": settings.default_model}
    else:
        unknown_sections = set(config) - {"models", "aliases", "clients", "policies"}
        if unknown_sections:
            raise ValueError(f"unknown sections {sorted(unknown_sections)}")
        models, aliases_raw = config.get("models", {}), config.get("aliases", {})
    if not models:
        raise ValueError("no models to serve")
    specs: dict[tuple[str, str], ModelSpec] = {}
    routes: dict[str, Route] = {}
    for name, entry in models.items():
        unknown = set(entry) - _MODEL_KEYS
        if unknown:
            raise ValueError(f"models.{name}: unknown keys {sorted(unknown)}")
        backend = str(entry.get("backend_model", name))
        routed = load_model_spec(repository, name, str(entry.get("version", "")), backend)
        versions = [routed.version] + [
            str(v) for v in entry.get("pinnable_versions", []) if str(v) != routed.version
        ]
        for version in versions:
            specs[(name, version)] = (
                routed if version == routed.version else load_model_spec(repository, name, version, backend)
            )
        routes[name] = Route(
            name=name,
            version=routed.version,
            versions=tuple(versions),
            max_text_chars=int(entry.get("max_text_chars", settings.max_text_chars)),
            max_batch_texts=int(entry.get("max_batch_texts", settings.max_batch_texts)),
        )
        if routes[name].max_text_chars < 1 or routes[name].max_batch_texts < 1:
            raise ValueError(f"models.{name}: limits must be positive")
        if routes[name].max_batch_texts > settings.queue_max_texts:
            raise ValueError(
                f"models.{name}: max_batch_texts {routes[name].max_batch_texts} exceeds the queue "
                f"(queue_max_texts {settings.queue_max_texts})"
            )
    aliases: dict[str, tuple[AliasTarget, ...]] = {}
    for alias, value in aliases_raw.items():
        if alias in routes:
            raise ValueError(f"alias {alias!r} shadows a model of the same name")
        raw = {value: 1.0} if isinstance(value, str) else dict(value)
        total = sum(float(w) for w in raw.values())
        if not raw or total <= 0 or any(float(w) < 0 for w in raw.values()):
            raise ValueError(f"aliases.{alias}: weights must be non-negative and sum to more than 0")
        targets = tuple(_parse_target(t, float(w) / total) for t, w in raw.items())
        for target in targets:
            route = routes.get(target.model)
            if route is None or (target.version and target.version not in route.versions):
                raise ValueError(
                    f"aliases.{alias}: target {target.model}@{target.version or '*'} is not served"
                )
        aliases[alias] = targets
    if "default" not in aliases:
        raise ValueError("aliases.default is required")
    clients = parse_client_policies((config or {}).get("clients", {}), set(routes))
    routed = {name: specs[(name, route.version)] for name, route in routes.items()}
    policies = parse_policies((config or {}).get("policies"), routed)
    return RouteTable(specs, routes, aliases, clients, policies)


class Router:
    """The current route table, reloaded from the routing file when it changes (the process's
    :class:`gateway.reloading.Reloader` calls :meth:`reload`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = Path(settings.routing_file) if settings.routing_file else None
        self.table = build_table(settings, self._read())

    def _read(self) -> Mapping | None:
        if self.path is None:
            return None
        return tomllib.loads(self.path.read_text())

    def resolve(self, name: str, version: str = "") -> Resolved:
        return self.table.resolve(name, version)

    async def reload(self) -> bool:
        """Read the file again; True when a new table is in place (a bad file keeps the old one)."""
        if self.path is None or not self.path.exists():
            return False
        try:
            # Loading tokenizers reads files: keep it off the event loop.
            table = await asyncio.to_thread(lambda: build_table(self.settings, self._read()))
        except (OSError, ValueError, KeyError, tomllib.TOMLDecodeError) as exc:
            ROUTING_RELOADS.labels("error").inc()
            log.error("routing file %s not applied, keeping the previous routes: %s", self.path, exc)
            return False
        self.table = table
        ROUTING_RELOADS.labels("ok").inc()
        log.info(
            "routing reloaded: models %s, aliases %s, policies %s",
            ",".join(table.routes),
            ",".join(table.aliases),
            ",".join(r.name for r in (*table.policies.label_rules, *table.policies.conversation_rules))
            or "none",
        )
        return True
