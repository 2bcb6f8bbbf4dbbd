"""The bot's structure, read from its source with ``ast``: imports point one way (no cycles, not even under
``TYPE_CHECKING``), the job core never reaches the Discord face, and classes and modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

BOT = REPO / "bot"
MAX_CLASS_LINES = 200
MAX_MODULE_LINES = 400
# What the job core may import from the rest of the bot: nothing of the Discord face.
CORE_MAY_IMPORT = ("bot.jobs", "bot.work.queue", "bot.work.protocol", "bot.config", "bot.errors", "bot.terminal")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def bot_imports(path: Path) -> set[str]:
    """Every bot module ``path`` imports, wherever the import statement is."""
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
    modules = {module_name(p) for p in BOT.rglob("*.py")}
    return {name for name in found if name in modules and name != module_name(path)}


def graph() -> dict[str, set[str]]:
    return {module_name(path): bot_imports(path) for path in BOT.rglob("*.py")}


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
        if module.startswith("bot.jobs"):
            outside = sorted(t for t in targets if not t.startswith(CORE_MAY_IMPORT) and t not in ("bot", "bot.work"))
            assert outside == [], f"{module} imports {outside}"


def test_classes_and_modules_stay_small() -> None:
    for path in BOT.rglob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.relative_to(REPO)} is over {MAX_MODULE_LINES} lines"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                length = node.end_lineno - node.lineno + 1
                assert length <= MAX_CLASS_LINES, f"{node.name} in {path.name} has {length} lines"
