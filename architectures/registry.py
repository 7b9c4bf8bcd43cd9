"""Registries of image encoders and fusions, in the style of timm's model registry.

An entry is a factory function registered with a decorator. Its keyword arguments and their
defaults *are* the entry's default hyperparameters, so there is one place to read them. An entry
may also carry a define-by-run Optuna search space (a function of an ``optuna.Trial`` returning
overrides), kept next to the definition it tunes.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

SearchSpace = Callable[[Any], dict[str, Any]]


class UnknownNameError(KeyError, ValueError):
    """Raised for a name that is not registered; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Entry:
    """One registered encoder or fusion."""

    name: str
    factory: Callable[..., Any]
    defaults: dict[str, Any]
    search_space: SearchSpace | None = None
    description: str = ""


@dataclass
class Registry:
    """A named collection of entries with wildcard listing and checked look-up."""

    kind: str
    entries: dict[str, Entry] = field(default_factory=dict)
    prefix_factories: dict[str, Callable[[str], Entry]] = field(default_factory=dict)

    def register(
        self, name: str | None = None, *, search_space: SearchSpace | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register ``fn`` under ``name`` (default: the function's name)."""

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            key = name or fn.__name__
            if key in self.entries:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self.entries[key] = Entry(
                name=key,
                factory=fn,
                defaults=signature_defaults(fn),
                search_space=search_space,
                description=(inspect.getdoc(fn) or "").split("\n")[0],
            )
            return fn

        return decorator

    def register_prefix(self, prefix: str, make_entry: Callable[[str], Entry]) -> None:
        """Names starting with ``prefix`` resolve through ``make_entry`` (e.g. ``timm:<model>``)."""
        self.prefix_factories[prefix] = make_entry

    def names(self) -> list[str]:
        return sorted(self.entries)

    def get(self, name: str) -> Entry:
        if name in self.entries:
            return self.entries[name]
        for prefix, make_entry in self.prefix_factories.items():
            if name.startswith(prefix) and len(name) > len(prefix):
                return make_entry(name)
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}; valid: {', '.join(self.valid_names())}"
        )

    def valid_names(self) -> list[str]:
        return self.names() + [f"{p}<name>" for p in self.prefix_factories]

    def select(self, patterns: str | Iterable[str]) -> list[str]:
        """Expand a comma list of names, shell wildcards and ``all`` into registered names.

        Order follows the patterns; duplicates are dropped. A pattern that matches nothing is an
        error naming the valid choices, so a typo never silently shrinks a grid.
        """
        if isinstance(patterns, str):
            patterns = [p.strip() for p in patterns.split(",")]
        selected: list[str] = []
        for pattern in patterns:
            if not pattern:
                continue
            if pattern == "all":
                matches = self.names()
            elif any(ch in pattern for ch in "*?["):
                matches = fnmatch.filter(self.names(), pattern)
            else:
                matches = [self.get(pattern).name]
            if not matches:
                raise UnknownNameError(
                    f"{self.kind} pattern {pattern!r} matches nothing; "
                    f"valid: {', '.join(self.valid_names())}"
                )
            selected.extend(m for m in matches if m not in selected)
        if not selected:
            raise UnknownNameError(f"no {self.kind} given; valid: {', '.join(self.valid_names())}")
        return selected


def signature_defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """Keyword arguments with defaults, skipping the wiring ones the factory fills in itself."""
    return {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.default is not inspect.Parameter.empty and p.name not in WIRING_ARGS
    }


# Arguments the model factory supplies; they are not hyperparameters.
WIRING_ARGS = frozenset({"in_features"})

ENCODERS = Registry("encoder")
FUSIONS = Registry("fusion")
register_encoder = ENCODERS.register
register_fusion = FUSIONS.register
