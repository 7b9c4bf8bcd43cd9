"""Registries of image encoders and fusions, in the style of timm's model registry.

An entry is a factory function registered with a decorator. Its keyword arguments and their
defaults *are* the entry's default hyperparameters, and their annotations the accepted types, so
there is one place to read them. An entry may also carry a define-by-run Optuna search space (a
function of an ``optuna.Trial`` returning overrides) and the range each numeric hyperparameter
accepts, both kept next to the definition they describe.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

SearchSpace = Callable[[Any], dict[str, Any]]


@dataclass(frozen=True)
class Range:
    """The values a numeric hyperparameter accepts: ``low <= v <= high`` (``v < high`` when
    ``open_high``), so that a bad override is refused before a model is built, not deep inside
    a layer or halfway through training."""

    low: float
    high: float
    open_high: bool = False

    def __contains__(self, value: float) -> bool:
        return self.low <= value and (value < self.high if self.open_high else value <= self.high)

    def __str__(self) -> str:
        if isinstance(self.low, int) and isinstance(self.high, int) and not self.open_high:
            return f"{self.low}..{self.high}"
        return f"[{self.low}, {self.high}{')' if self.open_high else ']'}"


RATE = Range(0, 1, open_high=True)  # a dropout rate: 1 would drop everything


def did_you_mean(name: str, names: Iterable[str]) -> str:
    """`` (did you mean tiny_resnet?)`` for a mistyped ``name`` (``tiny-resnet``, ``GAP_CNN``)
    where one of ``names`` is near it, else ``""``."""
    by_lower = {n.lower(): n for n in sorted(names, reverse=True)}  # the first of a case clash
    near = difflib.get_close_matches(name.replace("-", "_").lower(), sorted(by_lower), 1, 0.75)
    return f" (did you mean {by_lower[near[0]]}?)" if near else ""


def comma_items(text: str) -> list[str]:
    """A comma list's items, stripped; ``[]`` where every item is empty (``''``, ``,``). An
    empty item beside others is a ``ValueError``: ``1,,2`` or ``gap_cnn,,small_cnn`` lost a
    value far likelier than it gained a stray comma, and was read as ``1,2`` without a word."""
    items = [x.strip() for x in text.split(",")]
    if not any(items):
        return []
    if "" in items:
        raise ValueError(f"{text!r} has an empty item")
    return items


class NameTakenError(ValueError):
    """Raised for a name registered twice; ``origin`` is where the first one came from."""

    def __init__(self, kind: str, name: str, origin: str) -> None:
        super().__init__(f"{kind} {name!r} is already registered ({origin})")
        self.kind, self.name, self.origin = kind, name, origin


class UnknownNameError(KeyError, ValueError):
    """Raised for a name that is not registered; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


BUILT_IN = "built-in"


@dataclass(frozen=True)
class Entry:
    """One registered encoder or fusion."""

    name: str
    factory: Callable[..., Any]
    defaults: dict[str, Any]
    search_space: SearchSpace | None = None
    description: str = ""
    ranges: dict[str, Range] = field(default_factory=dict)
    origin: str = BUILT_IN  # where it came from: built-in, or the plug-in that registered it

    def check(self, key: str, value: Any) -> Any:
        """``value`` for hyperparameter ``key`` if it is of the annotated type (an int for an
        int: not 1.5, not True; a finite number for a float) and in the declared range; else a
        one-line ``ValueError`` saying what is accepted."""
        kind = annotated_types(self.factory).get(key, type(self.defaults[key]))
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            ok = ok and math.isfinite(value)
        else:
            return value  # strings and the like: the factory judges them
        accepted = f"{kind.__name__}" + (f" in {self.ranges[key]}" if key in self.ranges else "")
        if not ok or (key in self.ranges and value not in self.ranges[key]):
            raise ValueError(f"{key}={value!r} for {self.name}: expected {accepted}")
        return value


@dataclass
class Registry:
    """A named collection of entries with wildcard listing and checked look-up."""

    kind: str
    entries: dict[str, Entry] = field(default_factory=dict)
    prefix_factories: dict[str, Callable[[str], Entry]] = field(default_factory=dict)
    prefix_listers: dict[str, Callable[[str], list[str]]] = field(default_factory=dict)
    # entries a prefix made, by name: made once, so what is keyed by an entry's factory
    # (``model_key``: check_model's and bench's caches) finds it again
    prefixed: dict[str, Entry] = field(default_factory=dict)

    def register(
        self,
        name: str | None = None,
        *,
        search_space: SearchSpace | None = None,
        ranges: dict[str, Range] | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register ``fn`` under ``name`` (default: the function's name), with the
        range each numeric hyperparameter accepts."""

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            key = name or fn.__name__
            if problem := name_problem(key):
                raise ValueError(f"{self.kind} name {key!r}: {problem}")
            if key in self.entries:
                raise NameTakenError(self.kind, key, self.entries[key].origin)
            entry = Entry(
                name=key,
                factory=fn,
                defaults=signature_defaults(fn),
                search_space=search_space,
                description=(inspect.getdoc(fn) or "").split("\n")[0],
                ranges=dict(ranges or {}),
                origin=_origins[-1] if _origins else default_origin(fn),
            )
            if problem := entry_problem(entry):
                raise ValueError(f"{self.kind} {key!r}: {problem}")
            self.entries[key] = entry
            if _added:
                _added[-1].append((self, entry))
            return fn

        return decorator

    def register_prefix(
        self,
        prefix: str,
        make_entry: Callable[[str], Entry],
        list_names: Callable[[str], list[str]] | None = None,
    ) -> None:
        """Names starting with ``prefix`` resolve through ``make_entry`` (e.g. ``timm:<model>``);
        ``list_names(wildcard)`` gives the names after the prefix that a wildcard matches (timm's
        own ``list_models``), so ``timm:mobilenetv3_small*`` selects a family. ``all`` stays the
        registered entries: a prefix may stand for a thousand models."""
        self.prefix_factories[prefix] = make_entry
        if list_names is not None:
            self.prefix_listers[prefix] = list_names

    def names(self) -> list[str]:
        return sorted(self.entries)

    def get(self, name: str) -> Entry:
        if name in self.entries:
            return self.entries[name]
        if name in self.prefixed:
            return self.prefixed[name]
        for prefix, make_entry in self.prefix_factories.items():
            if name.startswith(prefix) and len(name) > len(prefix):
                return self.prefixed.setdefault(name, make_entry(name))
        hint = did_you_mean(name, self.names())  # tiny-resnet, gapcnn
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}{hint}; valid: {', '.join(self.valid_names())}"
        )

    def _matching(self, wildcard: str) -> list[str]:
        for prefix, list_names in self.prefix_listers.items():
            if wildcard.startswith(prefix):
                return [prefix + name for name in list_names(wildcard[len(prefix) :])]
        return fnmatch.filter(self.names(), wildcard)

    def valid_names(self) -> list[str]:
        return self.names() + [f"{p}<name>" for p in self.prefix_factories]

    def select(self, patterns: str | Iterable[str]) -> list[str]:
        """Expand a comma list of names, shell wildcards and ``all`` into registered names.

        Order follows the patterns; duplicates are dropped. A pattern that matches nothing is an
        error naming the valid choices, so a typo never silently shrinks a grid.
        """
        if isinstance(patterns, str):
            try:
                patterns = comma_items(patterns)
            except ValueError as exc:
                raise UnknownNameError(
                    f"{self.kind} list {exc}; valid: {', '.join(self.valid_names())}"
                ) from None
        selected: list[str] = []
        for pattern in patterns:
            if pattern == "all":
                matches = self.names()
            elif any(ch in pattern for ch in "*?["):
                matches = self._matching(pattern)
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


NAME = re.compile(r"[A-Za-z0-9]+(?:[_-][A-Za-z0-9]+)*")


def name_problem(name: Any) -> str | None:
    """Why ``name`` cannot name an entry, or None. Names are read back from comma lists and
    wildcards (``--arch a,b``: ``a`` and ``b``), ``all`` selects every entry, a prefix's colon
    (``timm:``) routes to timm, and ``__`` separates the parts of a study's name: an entry named
    with any of them registered and then could never be selected, or hid another."""
    if not isinstance(name, str) or not NAME.fullmatch(name) or name == "all":
        return (
            "expected letters and digits, joined by single _ or - (as gap_cnn), other than "
            "'all' (names are typed in comma lists and wildcards, and make file names)"
        )
    return None


def entry_problem(entry: Entry) -> str | None:
    """What makes ``entry`` unusable, said at registration (a plug-in's mistakes were found at
    its first model, or never): a hyperparameter without a default (the defaults are what a run
    without --model-arg trains), ``ranges`` naming no hyperparameter (its range never checked)
    or a default outside its own range (``--model-arg`` refused the value the default ran)."""
    plain = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    for p in inspect.signature(entry.factory).parameters.values():
        if p.kind in plain and p.default is p.empty and p.name not in WIRING_ARGS:
            return f"its hyperparameter {p.name!r} has no default; give it one in {entry.name}()"
    known = ", ".join(entry.defaults) or "none"
    for key in entry.ranges:
        if key not in entry.defaults:
            hint = did_you_mean(key, entry.defaults)
            return f"ranges names {key!r}{hint}, not one of its hyperparameters ({known})"
        if entry.defaults[key] is not None:
            try:
                entry.check(key, entry.defaults[key])
            except ValueError as exc:
                return f"its default is out of its own range: {exc}"
    return None


def signature_defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """Keyword arguments with defaults, skipping the wiring ones the factory fills in itself."""
    return {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.default is not inspect.Parameter.empty and p.name not in WIRING_ARGS
    }


def annotated_types(fn: Callable[..., Any]) -> dict[str, type]:
    """The factory's parameters that are annotated with a plain class (``int``, ``float`` ...),
    or with one and ``None`` (``int | None``: ``None`` means the default, checked as ``int``)."""
    kinds = {}
    for p in inspect.signature(fn, eval_str=True).parameters.values():
        kind = p.annotation
        if typing.get_origin(kind) in (typing.Union, types.UnionType):  # not list[int]
            options = [a for a in typing.get_args(kind) if a is not type(None)]
            kind = options[0] if len(options) == 1 else kind
        if isinstance(kind, type) and kind is not inspect.Parameter.empty:  # unannotated: the
            kinds[p.name] = kind  # default's type, as Entry.check reads it
    return kinds


def default_origin(fn: Callable[..., Any]) -> str:
    """``built-in`` for the package's own entries, else the registering function's module (code
    that registers without going through a plug-in loader still says where it came from)."""
    module = getattr(fn, "__module__", None) or "?"
    return BUILT_IN if module.split(".")[0] == "architectures" else module


_origins: list[str] = []  # the origin of what is being registered, innermost last
_added: list[list[tuple[Registry, Entry]]] = []  # what each open ``registering_from`` added


@contextmanager
def registering_from(origin: str) -> Iterator[list[tuple[Registry, Entry]]]:
    """Entries registered inside the block record ``origin`` and are collected in the list it
    yields; if the block raises, they are removed again, so that a plug-in which fails halfway
    leaves no half of itself registered."""
    added: list[tuple[Registry, Entry]] = []
    _origins.append(origin)
    _added.append(added)
    try:
        yield added
    except BaseException:
        for registry, entry in added:
            registry.entries.pop(entry.name, None)
        added.clear()
        raise
    finally:
        _origins.pop()
        _added.pop()


# Arguments the model factory supplies; they are not hyperparameters.
WIRING_ARGS = frozenset({"in_features"})

ENCODERS = Registry("encoder")
FUSIONS = Registry("fusion")
register_encoder = ENCODERS.register
register_fusion = FUSIONS.register
