"""Plug-ins: encoders and fusions from outside the package (see docs/plugins.md).

A plug-in is a module that registers entries with ``register_encoder`` / ``register_fusion`` when
imported: a dotted module name on ``sys.path`` or a ``.py`` file given to ``--plugin``, or a
module an installed distribution names in the ``digitsum_bench.plugins`` entry-point group
(loaded by every command that names architectures, no flag needed). Each entry a plug-in adds is
built and run on a few images on the CPU before any command goes on, so that a plug-in which
cannot be imported, clashes with a registered name or returns wrong shapes or non-finite values
is one line naming it (a ``UsageError``: exit status 2) before anything is written. An installed
entry point that fails so costs only its own names: a one-line warning, and the command goes on
(one that names its entries then fails on the unknown name, and the error says why).

A run records the plug-ins its encoder and fusion came from (``TrainConfig.plugins``: what was
given, a SHA-256 of the code), so that reading the run back (``runs.load_config``) imports them
again without ``--plugin``, says when one is missing, and warns when its code has changed.

Torch-free at import: commands' ``--help`` must stay light.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.errors import DamagedFileError, UsageError, one_line
from benchmark.plugin_checks import check_entry

if TYPE_CHECKING:
    from architectures.registry import NameTakenError

GROUP = "digitsum_bench.plugins"  # the entry-point group installed plug-ins declare


@dataclass
class Plugin:
    """One loaded plug-in: what was given, where it says its entries come from, its code's hash."""

    spec: str  # a file path or dotted module name as given (the module, for an entry point)
    origin: str  # what ``list`` shows in the origin column
    sha256: str
    entries: list[str] = field(default_factory=list)  # "encoder <name>", "fusion <name>"
    entry_point: str | None = None
    distribution: str | None = None  # "<name> <version>" of an entry point's distribution

    def record(self) -> dict[str, Any]:
        """What a run's config.json keeps of it."""
        found: dict[str, Any] = {"plugin": self.spec, "sha256": self.sha256}
        if self.entry_point is not None:
            found.update(entry_point=self.entry_point, distribution=self.distribution)
        return {**found, "entries": list(self.entries)}


class PluginMissing(UsageError):
    """A plug-in that is not there at all (no such file or module), as opposed to a broken one."""


_loaded: dict[str, Plugin] = {}  # by resolved file path, module name or "entry point <name>"
_entry_points_done = False
_warned: set[tuple[str, str]] = set()
_broken: set[str] = set()  # installed entry points that did not load (each warned once)


# ------------------------------------------------------------------------------ loading


def load_all(specs: Iterable[str] = ()) -> list[Plugin]:
    """The installed entry-point plug-ins, then each ``--plugin`` given (each loaded once)."""
    load_entry_points()
    return [load(spec) for spec in specs]


def is_file(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def load(spec: str) -> Plugin:
    """Import one plug-in (a ``.py`` file or a dotted module name) and check what it registers."""
    return load_file(spec) if is_file(spec) else load_module(spec)


def load_file(spec: str) -> Plugin:
    path = Path(spec)
    key = str(path.resolve())
    if key in _loaded:
        return _loaded[key]
    if path.is_dir():  # a package is loaded by its dotted name, from sys.path
        raise UsageError(
            f"plug-in {spec}: a directory; give a .py file, or a package's dotted name on sys.path"
        )
    if not path.is_file():
        raise PluginMissing(f"plug-in {spec}: no such file")
    same_file(spec, key)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    name = f"digitsum_plugin_{''.join(c if c.isalnum() else '_' for c in path.stem)}_{digest[:8]}"
    # by its resolved path: the code's frames carry it, and ``raised_at`` looks for them
    found = importlib.util.spec_from_file_location(name, path.resolve())
    if found is None or found.loader is None:
        raise UsageError(f"plug-in {spec}: not a Python file Python can import")
    loader = found.loader

    def run() -> None:
        folder = str(path.resolve().parent)  # its own modules beside it, as for a script
        if folder not in sys.path:
            sys.path.append(folder)
        module = importlib.util.module_from_spec(found)
        sys.modules[name] = module  # dataclasses, pickle and friends look modules up by name
        try:
            loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise

    plugin = Plugin(spec, f"plug-in {spec}", digest)
    return remember(key, imported(plugin, run, str(path.resolve())))


def load_module(spec: str) -> Plugin:
    if spec in _loaded:
        return _loaded[spec]
    if not all(part.isidentifier() for part in spec.split(".")):
        raise UsageError(f"plug-in {spec}: neither a dotted module name nor a .py file")
    try:
        found = importlib.util.find_spec(spec)
    except (ImportError, ValueError):  # a parent package that is not there
        found = None
    if found is None and Path(spec).is_file():  # notes.txt: a file, read as a module's name
        raise UsageError(f"plug-in {spec}: a file, but not a .py file; give a .py file")
    if found is None:
        raise PluginMissing(f"plug-in {spec}: no module of that name on sys.path (nor a .py file)")
    if found.origin:
        same_file(spec, str(Path(found.origin).resolve()))
    if spec in sys.modules:  # imported by other means: nothing registers again
        raise UsageError(
            f"plug-in {spec}: already imported before plug-ins were loaded; give it only "
            f"through --plugin or its entry point"
        )
    plugin = Plugin(spec, f"plug-in {spec}", module_hash(found))
    return remember(spec, imported(plugin, lambda: importlib.import_module(spec), found.origin))


def same_file(spec: str, file: str) -> None:
    """A usage error where another ``--plugin`` loaded ``file`` already, by its module name or
    its path: its entries were called a clash with themselves, and renaming them advised."""
    for given in _loaded.values():
        module = sys.modules.get(given.spec) if not is_file(given.spec) else None
        there = getattr(module, "__file__", None) if module else given.spec
        if given.entry_point is None and there and str(Path(there).resolve()) == file:
            raise UsageError(f"plug-in {spec}: the same file as plug-in {given.spec}; give it once")


def load_entry_points() -> None:
    """Every installed distribution's plug-ins in the ``digitsum_bench.plugins`` group (once)."""
    global _entry_points_done
    if _entry_points_done:
        return
    _entry_points_done = True
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        if f"entry point {ep.name}" in _loaded or ep.module in _loaded:
            continue
        try:
            load_entry_point(ep)
        except UsageError as exc:  # installed, not asked for: the other names still work
            _broken.add(ep.name)
            sys.stderr.write(f"warning: {exc}; going on without it\n")


def load_entry_point(ep: Any) -> None:
    dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "unknown"
    try:
        found = importlib.util.find_spec(ep.module)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise UsageError(f"plug-in entry point {ep.name} ({dist}): no module {ep.module}")
    plugin = Plugin(
        ep.module, f"entry point {ep.name} ({dist})", module_hash(found), [], ep.name, dist
    )
    remember(f"entry point {ep.name}", imported(plugin, ep.load, found.origin))
    _loaded[ep.module] = plugin


def unknown_note(said: str) -> str:
    """For an unknown-name error ``said``: the installed plug-ins that did not load; else, where
    it suggests no near name and no ``--plugin`` was given, how one's own model is loaded (a
    plug-in's name typed without it read as a name that does not exist)."""
    if _broken:
        return f" (installed plug-ins not loaded: {', '.join(sorted(_broken))}; see the warning)"
    if "did you mean" in said or any(p.entry_point is None for p in _loaded.values()):
        return ""
    return " (your own encoders and fusions load with --plugin MODULE_OR_FILE: docs/plugins.md)"


def remember(key: str, plugin: Plugin) -> Plugin:
    _loaded[key] = plugin
    return plugin


def imported(plugin: Plugin, run: Callable[[], Any], source: str | None) -> Plugin:
    """Run the import with what it registers labelled by the plug-in, then check each entry;
    on any failure what it registered is removed again and the failure is one line."""
    import architectures  # noqa: F401  (the built-ins first: a clash is the plug-in's)
    from architectures.registry import NameTakenError, registering_from

    with registering_from(plugin.origin) as added:
        try:
            run()
        except SystemExit as exc:  # the command exited with its code, saying nothing
            where = raised_at(exc, source)
            raise UsageError(
                f"{plugin.origin}: importing it called sys.exit({exc.code!r}){where}"
            ) from None
        except NameTakenError as exc:
            raise UsageError(f"{plugin.origin}: {taken(exc)}") from None
        except Exception as exc:  # anything a plug-in raises at import means "cannot load"
            where = raised_at(exc, source)
            raise UsageError(
                f"{plugin.origin}: importing it raised {one_line(exc)}{where}"
            ) from None
        if not added:
            raise UsageError(
                f"{plugin.origin}: registers no encoder or fusion (expected @register_encoder "
                f"or @register_fusion at import)"
            )
        for registry, entry in added:
            problem = check_entry(registry.kind, entry.name)
            if problem:
                raise UsageError(f"{plugin.origin}: {registry.kind} {entry.name!r} {problem}")
        plugin.entries = [f"{registry.kind} {entry.name}" for registry, entry in added]
    return plugin


def taken(exc: NameTakenError) -> str:
    """A name this plug-in registers that is taken: by an installed plug-in, most likely this
    same one given again by ``--plugin`` (it read as a crash in the plug-in), or by another."""
    from architectures.registry import BUILT_IN

    said = f"its {exc.kind} {exc.name!r} is already registered by {exc.origin}"
    if exc.origin == BUILT_IN:
        said = f"its {exc.kind} {exc.name!r} is a built-in one's name"
    elif exc.origin.startswith("entry point "):
        return f"{said}, an installed package; drop --plugin if this is that package's file"
    return f"{said}; give yours another name"


def raised_at(exc: BaseException, source: str | None) -> str:
    """`` (file.py:12)``: the last line of the plug-in's own file the exception passed through."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == source]
    return f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""


def module_hash(found: Any) -> str:
    """SHA-256 of a module's code: its file, or every ``.py`` file of a package (by path)."""
    digest = hashlib.sha256()
    if found.submodule_search_locations:
        for root in found.submodule_search_locations:
            for path in sorted(Path(root).rglob("*.py")):
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    elif found.origin and Path(found.origin).is_file():
        digest.update(Path(found.origin).read_bytes())
    return digest.hexdigest()


# ------------------------------------------------------------------------------ run records


def used_by(pairs: Iterable[tuple[str, str]]) -> list[dict[str, Any]] | None:
    """The records of the plug-ins the (arch, fusion) ``pairs`` come from; None when all are
    built-in (or from code registered without a loader)."""
    wanted = {name for arch, fusion in pairs for name in (f"encoder {arch}", f"fusion {fusion}")}
    seen: list[Plugin] = []
    for plugin in _loaded.values():
        if wanted & set(plugin.entries) and plugin not in seen:
            seen.append(plugin)
    return [p.record() for p in seen] or None


def load_recorded(values: dict[str, Any], where: str | Path = "config") -> None:
    """Import again the plug-ins a run's config records (``values["plugins"]``), before its
    names are looked up. One that cannot be found, and whose entries no plug-in loaded
    otherwise (``--plugin`` at its new place) provides, is a one-line ``UsageError``; one whose
    code changed since is a one-line warning on stderr, and the command goes on."""
    recorded = values.get("plugins") if isinstance(values, dict) else None
    if recorded is None:
        return
    if not isinstance(recorded, list) or not all(valid_record(r) for r in recorded):
        raise DamagedFileError(
            f"{where}: plugins must be a list of {{plugin, sha256, entries}} records"
        )
    load_entry_points()
    for record in recorded:
        plugin = find_recorded(record, where)
        if plugin.sha256 != record["sha256"] and (plugin.spec, record["sha256"]) not in _warned:
            _warned.add((plugin.spec, record["sha256"]))
            what = f"plug-in {record['plugin']} has changed since {where} was written"
            if plugin.spec != record["plugin"]:  # found at another place: --plugin named it
                what = (
                    f"plug-in {plugin.spec}, given for {record['plugin']}, is not the code "
                    f"{where} was written with"
                )
            sys.stderr.write(
                f"warning: {what} (sha256 {record['sha256'][:12]} then, {plugin.sha256[:12]} "
                f"now); going on with the current code\n"
            )


def changed_since(values: dict[str, Any], where: str | Path) -> list[str]:
    """The plug-ins a run's config records (``load_recorded`` loaded them) whose code is not
    the code the run was trained with, by the names the run recorded."""
    recorded = values.get("plugins") or []
    return [r["plugin"] for r in recorded if find_recorded(r, where).sha256 != r["sha256"]]


def valid_record(record: Any) -> bool:
    return (
        isinstance(record, dict)
        and all(isinstance(record.get(k), str) for k in ("plugin", "sha256"))
        and isinstance(record.get("entries", []), list)
    )


def find_recorded(record: dict[str, Any], where: str | Path) -> Plugin:
    """The loaded plug-in a record names: loaded now if need be, else one that provides all its
    entries (given at another place); a missing one is a ``UsageError`` saying what to do."""
    spec = record["plugin"]
    if record.get("entry_point"):
        plugin = _loaded.get(f"entry point {record['entry_point']}")
        reason = f"entry point {record['entry_point']} of {record.get('distribution')} is not"
        reason += (
            " loaded (it failed: see the warning above)"
            if record["entry_point"] in _broken
            else " installed"
        )
    else:
        try:
            return load(spec)
        except PluginMissing:
            plugin, reason = None, "cannot be found"
    if plugin is None:
        entries = set(record.get("entries", []))
        plugin = next((p for p in _loaded.values() if entries and entries <= set(p.entries)), None)
    if plugin is None:
        raise UsageError(
            f"{where}: the run's plug-in {spec} {reason}; give it again with --plugin "
            f"MODULE_OR_FILE (it provides {', '.join(record.get('entries', [])) or 'its model'})"
        )
    return plugin
