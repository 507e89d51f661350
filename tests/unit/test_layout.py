"""The layout shows the pipeline: the core imports no stage, stages import only the core, the command-line
application (and the benchmarks) sit on top, and `infra/` (local Kafka and PostgreSQL for development)
is used by the application, the benchmarks and the tests only.

Every import counts: top-level, inside functions, under `TYPE_CHECKING`, and modules named to
`importlib.import_module`; reaching into `sys.modules` to hide one is refused outright.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CORE = "kcloud"
STAGES = {"collectors", "gateway", "streams", "dashboards", "reports"}
APPLICATION = {"console", "bench"}
INFRA = "infra"
PACKAGES = {CORE, *STAGES, *APPLICATION, INFRA}

#: what each top-level package may import (besides itself and third-party code)
ALLOWED: dict[str, set[str]] = {
    CORE: set(),
    **{stage: {CORE} for stage in STAGES},
    INFRA: {CORE},
    "console": {CORE, *STAGES, INFRA},
    "bench": {CORE, *STAGES, INFRA, "console"},
}


def _modules(package: str) -> Iterator[Path]:
    for path in sorted((ROOT / package).rglob("*.py")):
        if not any(part in {"target", "__pycache__"} for part in path.parts):
            yield path


def _imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, top-level package) of every import in `tree`, wherever it is."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value.split(".")[0]


def _sys_modules_tricks(tree: ast.AST) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "modules"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
    ]


def _violations(package: str) -> list[str]:
    out: list[str] = []
    for path in _modules(package):
        tree = ast.parse(path.read_text(), filename=str(path))
        where = path.relative_to(ROOT)
        for line, target in _imports(tree):
            if target in PACKAGES and target != package and target not in ALLOWED[package]:
                out.append(f"{where}:{line} imports {target}")
        out.extend(f"{where}:{line} reaches into sys.modules" for line in _sys_modules_tricks(tree))
    return out


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_what_its_layer_may(package: str) -> None:
    assert (ROOT / package).is_dir(), f"{package}/ is missing"
    assert _violations(package) == []


def test_every_top_level_package_has_a_layer() -> None:
    found = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert found - {"tests"} == PACKAGES


def test_each_package_says_what_it_may_import() -> None:
    for package in sorted(PACKAGES):
        doc = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text())) or ""
        assert "import" in doc.lower(), f"{package}/__init__.py does not say what it may import"


def test_the_checker_sees_imports_inside_functions_and_import_module() -> None:
    tree = ast.parse("def f():\n    import streams.app\n    importlib.import_module('reports.http')\n")
    assert sorted(t for _, t in _imports(tree)) == ["reports", "streams"]
