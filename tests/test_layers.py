"""The bot's structure, read from its source with ``ast`` and checked in fresh interpreters: the tree is the map
of the layers. Discord lives in one package (``bot.face``); the job core (``bot.jobs``) and the work queues
(``bot.work``) load neither discord nor torch; imports point one way (no cycles, not even under
``TYPE_CHECKING``); and classes and modules stay small."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

BOT = REPO / "bot"
MAX_CLASS_LINES = 200
MAX_MODULE_LINES = 400
MAX_TOP_LEVEL_MODULES = 6  # bot/'s own modules beside its packages: the process shell
FACE = "bot.face"
# What the job core may import from the rest of the bot: nothing of the Discord face.
CORE_MAY_IMPORT = ("bot.jobs", "bot.work.queue", "bot.work.protocol", "bot.config", "bot.errors", "bot.ops.terminal")
# The engine-side half of the work queues: it imports torch, and runs only in engine and worker processes.
ENGINE_SIDE = "bot.work.runner"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> set[str]:
    """Every module name ``path`` imports (absolute, and relative ones resolved), wherever the statement is."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def bot_imports(path: Path) -> set[str]:
    """Every bot module ``path`` imports, wherever the import statement is."""
    modules = {module_name(p) for p in BOT.rglob("*.py")}
    return {name for name in imported_names(path) if name in modules and name != module_name(path)}


def graph() -> dict[str, set[str]]:
    return {module_name(path): bot_imports(path) for path in BOT.rglob("*.py")}


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_no_import_cycles() -> None:
    edges, state, cycles = graph(), {}, []

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                cycles.append(trail[trail.index(target):] + [target] if target in trail else [module, target])
            elif target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, f"import cycles: {cycles}"


def test_the_job_core_imports_nothing_of_the_face() -> None:
    edges = graph()
    for module, targets in edges.items():
        if in_package(module, "bot.jobs"):
            outside = sorted(t for t in targets
                             if not t.startswith(CORE_MAY_IMPORT) and t not in ("bot", "bot.work", "bot.ops"))
            assert outside == [], f"{module} imports {outside}"


def test_discord_is_imported_only_by_the_face() -> None:
    outside = sorted(module_name(path) for path in BOT.rglob("*.py")
                     if not in_package(module_name(path), FACE)
                     and any(in_package(name, "discord") for name in imported_names(path)))
    assert outside == [], f"modules outside {FACE} import discord: {outside}"


def test_nothing_outside_the_face_imports_the_face() -> None:
    edges = graph()
    climbing = sorted(f"{module} -> {target}" for module, targets in edges.items() if not in_package(module, FACE)
                      and module not in ("bot.cli", "bot.__main__") for target in targets if in_package(target, FACE))
    assert climbing == [], f"imports into the Discord face from below it: {climbing}"


def test_the_core_and_the_work_queues_import_neither_discord_nor_torch() -> None:
    """By the source (no statement names them, except the engine-side runner's torch) and by running it:
    importing every module, one after another in a fresh interpreter, loads neither."""
    sources = {module_name(path): path for path in BOT.rglob("*.py")
               if in_package(module_name(path), "bot.jobs") or in_package(module_name(path), "bot.work")}
    modules = sorted(sources)
    assert ENGINE_SIDE in modules and "bot.work.worker" in modules
    for module in modules:
        names = imported_names(sources[module])
        assert not any(in_package(name, "discord") for name in names), f"{module} imports discord"
        if module != ENGINE_SIDE:
            assert not any(in_package(name, "torch") for name in names), f"{module} imports torch"
    code = ("import importlib, json, sys\n"
            "loaded = {}\n"
            f"for name in {[m for m in modules if m != ENGINE_SIDE]!r}:\n"
            "    before = set(sys.modules)\n"
            "    importlib.import_module(name)\n"
            "    loaded[name] = sorted(m for m in set(sys.modules) - before if m.split('.')[0] in ('torch', 'discord'))\n"
            "print(json.dumps(loaded))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    heavy = {module: found[:3] for module, found in json.loads(result.stdout).items() if found}
    assert heavy == {}, f"importing these loads discord or torch: {heavy}"


def test_the_top_level_holds_only_the_process_shell() -> None:
    modules = sorted(path.name for path in BOT.glob("*.py"))
    packages = sorted(path.name for path in BOT.iterdir() if (path / "__init__.py").exists())
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, f"bot/ holds {len(modules)} modules: {modules}"
    assert packages == ["face", "intake", "jobs", "ops", "work"], packages


def test_classes_and_modules_stay_small() -> None:
    for path in BOT.rglob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.relative_to(REPO)} is over {MAX_MODULE_LINES} lines"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                length = node.end_lineno - node.lineno + 1
                assert length <= MAX_CLASS_LINES, f"{node.name} in {path.name} has {length} lines"
