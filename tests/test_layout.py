"""The house rules of the tree, checked so that they stay true.

- The core packages (domain, store, azure, chain) never import an adapter
  (cli, api), the dev stack, the emulator or the workers.
- Only orchestrator/azure/ imports the Azure SDKs.
- orchestrator/ keeps at most 10 modules at its top level, and no module
  outside tests/ exceeds 600 lines.
- No tracked file names this checkout's absolute path or the shared folder beside it
  (by path or relative): the project must work on a stranger's laptop.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORE = ("domain", "store", "azure", "chain", "inputs")
FORBIDDEN_FOR_CORE = (
    "orchestrator.cli",
    "orchestrator.api",
    "orchestrator.devstack",
    "emulator",
    "workers",
)
MAX_MODULE_LINES = 600


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _is_under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _tracked(pattern: str) -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--", pattern], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return [REPO / name for name in listed if (REPO / name).is_file()]


def _core_modules() -> list[Path]:
    files = [f for package in CORE for f in (REPO / "orchestrator" / package).rglob("*.py")]
    assert len(files) >= 20, "the core packages were not found"
    return files


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_core_never_imports_an_adapter(path: Path) -> None:
    bad = {m for m in _imports(path) for f in FORBIDDEN_FOR_CORE if _is_under(m, f)}
    assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_only_the_azure_package_imports_the_azure_sdks() -> None:
    sdk_users = {
        str(path.relative_to(REPO))
        for folder in ("orchestrator", "workers")
        for path in (REPO / folder).rglob("*.py")
        if any(_is_under(m, "azure") for m in _imports(path))
    }
    assert sdk_users, "no module imports the SDKs: the check lost its target"
    assert {p for p in sdk_users if not p.startswith("orchestrator/azure/")} == set()


def test_orchestrator_top_level_is_small() -> None:
    modules = sorted(p.name for p in (REPO / "orchestrator").glob("*.py"))
    assert 3 <= len(modules) <= 10, modules


def test_no_module_outside_tests_is_too_long() -> None:
    sources = [p for p in _tracked("*.py") if "tests" not in p.relative_to(REPO).parts]
    assert len(sources) > 50
    long = {
        str(p.relative_to(REPO)): n
        for p in sources
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_file_names_a_path_outside_the_repository() -> None:
    # The checkout's own absolute path, and the shared folder beside it (by path
    # or relative), are this machine's: on a stranger's laptop they are not there.
    # ("shared" is spelled apart so that this file does not name it itself.)
    outside = (str(REPO) + "/", str(REPO.parent / "shared"), "../" + "shared")
    hits = []
    for path in _tracked("*"):
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue  # binary files
        hits += [f"{path.relative_to(REPO)}: {needle}" for needle in outside if needle in text]
    assert hits == []
