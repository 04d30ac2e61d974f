"""The wire protocol is its own module: adapters and worker both use it, and neither imports the other."""

from __future__ import annotations

import ast
from pathlib import Path

import framefarm

SRC = Path(framefarm.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function (lazy imports count)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def test_no_adapter_imports_the_worker():
    # GIVEN every module of the adapters package
    for path in sorted((SRC / "adapters").glob("*.py")):
        # WHEN we read what it imports
        worker = {name for name in imported_modules(path) if name.split(".")[:2] == ["framefarm", "worker"]}
        # THEN none of it is the worker
        assert not worker, f"{path.name} imports {sorted(worker)}"


def test_the_protocol_imports_neither_the_worker_nor_an_adapter_implementation():
    # GIVEN the protocol module WHEN we read what it imports
    imported = imported_modules(SRC / "protocol.py")
    # THEN it reaches the adapters only for their contract (adapters.base), and never the worker
    framefarm_parts = {tuple(name.split(".")[:3]) for name in imported if name.startswith("framefarm.")}
    assert not {parts for parts in framefarm_parts if parts[1:2] == ("worker",)}
    assert {parts for parts in framefarm_parts if parts[1:2] == ("adapters",)} <= {("framefarm", "adapters", "base")}


def test_remote_adapters_and_the_worker_share_one_protocol():
    # GIVEN the modules on both ends of the wire
    users = {name: imported_modules(SRC / name) for name in
             ("adapters/aws_lambda.py", "adapters/cloud_run.py", "worker/runtime.py", "worker/cloud_run_server.py")}
    # THEN each of them imports framefarm.protocol
    assert all("framefarm.protocol" in modules for modules in users.values()), users
