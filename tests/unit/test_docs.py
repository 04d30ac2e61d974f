"""The project's own docs stay true: every path and module docs/architecture.md names exists, and
nothing in the repository points at a design document that is not in it.

Checked in the doc: every ``src/framefarm/...`` path (anywhere, code blocks included); every
backticked path (a token with a ``/`` or ending ``.py``, found from the repository root, ``src/`` or
``src/framefarm/``); every backticked ``framefarm.x.y`` module, optionally followed by one name the
module defines.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
#: Where the repository's own text lives (its sources, tests, benchmarks, infrastructure and docs).
SCANNED = ("src", "tests", "bench", "infra", "lambda_handlers", "docs", "examples",
           "README.md", "Makefile", "pyproject.toml", "cdk.json")
OUTSIDE_DOC = re.compile("DESIGN" + r"\.md", re.IGNORECASE)  # spelt in two parts so this file does not match

SRC_PATH = re.compile(r"src/framefarm/[\w./-]*\w")
BACKTICKED = re.compile(r"`([^`\s]+)`")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
MODULE = re.compile(r"framefarm(\.\w+)+")


def named_paths(text: str) -> set[str]:
    """Repository paths the doc names: ``src/framefarm/...`` anywhere, and backticked paths outside code blocks."""
    paths = set(SRC_PATH.findall(text))
    for token in BACKTICKED.findall(FENCE.sub("", text)):
        if ("/" in token or token.endswith(".py")) and not re.search(r"[<>*:]", token):
            paths.add(token.rstrip("/"))
    return paths


def named_modules(text: str) -> set[str]:
    """Backticked dotted names under ``framefarm`` (outside code blocks)."""
    return {token for token in BACKTICKED.findall(FENCE.sub("", text)) if MODULE.fullmatch(token)}


def path_exists(path: str, root: Path) -> bool:
    return any((base / path).exists() for base in (root, root / "src", root / "src" / "framefarm"))


def module_file(dotted: str, root: Path) -> Path | None:
    base = root / "src" / Path(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def defined_names(path: Path) -> set[str]:
    """Names a module binds at its top level (definitions, assignments, imports)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


def module_exists(dotted: str, root: Path) -> bool:
    """``dotted`` is a module, or a module followed by one name it defines."""
    if module_file(dotted, root) is not None:
        return True
    parent, _, name = dotted.rpartition(".")
    found = module_file(parent, root)
    return found is not None and name in defined_names(found)


def missing_names(text: str, root: Path) -> list[str]:
    """What the doc names that the repository does not have (the landing renames excepted)."""
    missing = [path for path in named_paths(text) if not path_exists(path, root)]
    missing += [name for name in named_modules(text) if not module_exists(name, root)]
    return sorted(missing)


def outside_doc_mentions(root: Path) -> list[str]:
    """Files under SCANNED that point at a design document the repository does not hold."""
    files: list[Path] = []
    for name in SCANNED:
        top = root / name
        files += [top] if top.is_file() else sorted(path for path in top.rglob("*") if path.is_file())
    return sorted(str(path.relative_to(root)) for path in files
                  if "__pycache__" not in path.parts and OUTSIDE_DOC.search(path.read_bytes().decode("utf-8", "ignore")))


# -- the real repository ------------------------------------------------------------------------------

def test_every_path_and_module_the_architecture_doc_names_exists() -> None:
    # GIVEN docs/architecture.md  WHEN every path and framefarm module it names is looked up
    text = DOC.read_text(encoding="utf-8")
    # THEN each exists (the renames that are landing aside), and the doc does name some of each
    assert len(named_paths(text)) > 20 and len(named_modules(text)) > 3
    assert missing_names(text, ROOT) == []


def test_nothing_in_the_repository_points_at_an_outside_design_document() -> None:
    # GIVEN the repository's sources, tests, benchmarks, infrastructure, docs, README and Makefile
    # WHEN they are searched for a design document kept outside the repository  THEN none mentions one
    assert outside_doc_mentions(ROOT) == []


# -- the checks on a fake repository: each fails when broken --------------------------------------------

@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    package = tmp_path / "src" / "framefarm"
    (package / "storage").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "storage" / "__init__.py").write_text("")
    (package / "storage" / "keys.py").write_text("from os import path\n\ndef chunk_key() -> None: ...\nLIMIT = 3\n")
    (tmp_path / "infra").mkdir()
    return tmp_path


def test_a_path_or_module_that_is_gone_is_named(fake_repo: Path) -> None:
    # GIVEN a doc naming things that exist, and paths and names that do not
    text = ("See src/framefarm/storage/keys.py, `storage/keys.py`, `infra/`, `framefarm.storage.keys`,\n"
            "`framefarm.storage.keys.chunk_key`, `framefarm.storage.keys.LIMIT`, `jobs/<job>/spec.json`,\n"
            "src/framefarm/gone.py and `framefarm.storage.keys.old_name`.\n"
            "```\nsrc/framefarm/storage/missing.py in a code block\n```\n")
    # WHEN the doc is checked  THEN exactly the three that are gone are named
    assert missing_names(text, fake_repo) == ["framefarm.storage.keys.old_name", "src/framefarm/gone.py",
                                              "src/framefarm/storage/missing.py"]


def test_a_file_pointing_at_an_outside_design_document_is_found(fake_repo: Path) -> None:
    # GIVEN a source file and the README that mention a design document, and a clean one
    (fake_repo / "src" / "framefarm" / "storage" / "keys.py").write_text('"""See ../shared/' + "DESIGN" + '.md"""\n')
    (fake_repo / "README.md").write_text("the " + "design" + ".md says so\n")
    (fake_repo / "infra" / "app.py").write_text('"""The CDK app."""\n')
    # WHEN the repository is searched  THEN both mentions are named, the clean file is not
    assert outside_doc_mentions(fake_repo) == ["README.md", "src/framefarm/storage/keys.py"]
