"""Layers point one way: each rule below reads every module under src/framefarm with ``ast``.

Module-level and function-level imports both count (``import x`` and ``from x import y``, relative
imports resolved); a rule's failure lists its offenders as "module -> imported". The checker itself
is tested on a tiny fake package, so each rule is known to fail when broken.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "framefarm"

#: What ``storage`` (keys and bytes) may never reach for: the job model and everything above it.
ABOVE_STORAGE = ("spec", "status", "repositories", "manager", "executor", "adapters", "worker", "cli")
#: The low layers, lowest first: each may import only framefarm modules that come before it here.
LOW_LAYERS = ("errors", "failures", "validation", "paths", "cancel", "lease", "redaction", "config", "tails", "billing",
              "backoff")


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    lazy: bool  # inside a function: runs only when called

    def __str__(self) -> str:
        return f"{self.importer} -> {self.imported}"


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def scan(root: Path, package: str = PACKAGE) -> list[Import]:
    """Every import in every module of ``root/package``."""
    files = sorted((root / package).rglob("*.py"))
    modules = {module_name(path, root) for path in files}
    found: list[Import] = []
    for path in files:
        importer = module_name(path, root)
        here = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
        found += _imports(ast.parse(path.read_text(encoding="utf-8")), importer, here, modules, lazy=False)
    return found


def _imports(node: ast.AST, importer: str, here: str, modules: set[str], *, lazy: bool) -> list[Import]:
    found: list[Import] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import):
            found += [Import(importer, alias.name, lazy) for alias in child.names]
        elif isinstance(child, ast.ImportFrom):
            base = child.module or ""
            if child.level:  # relative: from the importer's package, one level up per extra dot
                anchor = here.split(".")[: len(here.split(".")) - child.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.append(Import(importer, base, lazy))
            # `from pkg import submodule` imports the submodule
            found += [Import(importer, f"{base}.{alias.name}", lazy) for alias in child.names
                      if f"{base}.{alias.name}" in modules]
        else:
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            found += _imports(child, importer, here, modules, lazy=inner)
    return found


def within(name: str, *prefixes: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def layer(*names: str) -> tuple[str, ...]:
    return tuple(f"{PACKAGE}.{name}" for name in names)


def offenders(imports: Iterable[Import], keep: Callable[[Import], bool]) -> list[str]:
    return sorted({str(edge) for edge in imports if keep(edge)})


# -- the rules: each returns its offenders --------------------------------------------------------

def storage_knows_bytes_not_jobs(imports: list[Import]) -> list[str]:
    return offenders(imports, lambda e: within(e.importer, *layer("storage"))
                     and within(e.imported, *layer(*ABOVE_STORAGE)))


def adapters_never_import_the_worker(imports: list[Import]) -> list[str]:
    return offenders(imports, lambda e: within(e.importer, *layer("adapters")) and within(e.imported, *layer("worker")))


def library_never_imports_the_cli(imports: list[Import]) -> list[str]:
    """The monitor is a face of the CLI (a web one) and sits beside it."""
    return offenders(imports, lambda e: within(e.imported, *layer("cli"))
                     and not within(e.importer, *layer("cli", "monitor", "__main__")))


def only_the_cli_imports_the_monitor(imports: list[Import]) -> list[str]:
    return offenders(imports, lambda e: within(e.imported, *layer("monitor"))
                     and not within(e.importer, *layer("cli", "monitor")))


def devcloud_stays_out_of_the_product(imports: list[Import]) -> list[str]:
    """Only devcloud and the CLI import devcloud or moto, and the CLI only inside a function."""
    def breaks(edge: Import) -> bool:
        if not within(edge.imported, *layer("devcloud"), "moto") or within(edge.importer, *layer("devcloud")):
            return False
        return not (within(edge.importer, *layer("cli")) and edge.lazy)
    return offenders(imports, breaks)


def low_layers_look_down(imports: list[Import]) -> list[str]:
    def breaks(edge: Import) -> bool:
        for rank, name in enumerate(LOW_LAYERS):
            if within(edge.importer, *layer(name)):
                # the package itself is loaded before any of its modules: `from . import x` names x
                return edge.imported.startswith(PACKAGE + ".") and not within(edge.imported, *layer(*LOW_LAYERS[:rank]))
        return False
    return offenders(imports, breaks)


RULES = [storage_knows_bytes_not_jobs, adapters_never_import_the_worker, library_never_imports_the_cli,
         only_the_cli_imports_the_monitor, devcloud_stays_out_of_the_product, low_layers_look_down]


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return scan(SRC)


def check(rule: Callable[[list[Import]], list[str]], imports: list[Import]) -> None:
    found = rule(imports)
    assert not found, f"{rule.__name__}: " + "; ".join(found)


# -- the rules on the real package ------------------------------------------------------------------

def test_storage_imports_nothing_about_jobs(imports: list[Import]) -> None:
    # GIVEN every import under src/framefarm  WHEN storage's are checked  THEN none reaches the job model or above
    check(storage_knows_bytes_not_jobs, imports)


def test_adapters_never_import_the_worker(imports: list[Import]) -> None:
    # GIVEN every import  WHEN the adapters' are checked  THEN none reaches the worker runtime
    check(adapters_never_import_the_worker, imports)


def test_library_never_imports_the_cli(imports: list[Import]) -> None:
    # GIVEN every import  WHEN imports of the CLI are checked  THEN only the CLI and __main__ make them
    check(library_never_imports_the_cli, imports)


def test_only_the_cli_imports_the_monitor(imports: list[Import]) -> None:
    # GIVEN every import  WHEN imports of the monitor are checked  THEN only the CLI (and the monitor) make them
    check(only_the_cli_imports_the_monitor, imports)


def test_devcloud_and_moto_stay_out_of_the_product(imports: list[Import]) -> None:
    # GIVEN every import  WHEN imports of devcloud or moto are checked  THEN only devcloud makes them, or the CLI lazily
    check(devcloud_stays_out_of_the_product, imports)


def test_low_layers_import_only_lower_ones(imports: list[Import]) -> None:
    # GIVEN every import  WHEN the low layers' are checked  THEN each imports only framefarm modules below it
    check(low_layers_look_down, imports)


def test_every_low_layer_exists() -> None:
    # GIVEN the low layers the rule names  THEN each is a module of the package (a rename would hide it)
    missing = [name for name in LOW_LAYERS if not (SRC / PACKAGE / f"{name}.py").is_file()]
    assert not missing, f"low layers that are no module: {missing}"


def extras_loaded_by(statement: str) -> subprocess.CompletedProcess[str]:
    """Run ``statement`` in a fresh interpreter; it fails listing any moto, boto3, flask or devcloud module loaded."""
    code = (f"{statement}; import sys; loaded = sorted(m for m in sys.modules "
            "if m.startswith(('moto', 'boto3', 'flask', 'framefarm.devcloud'))); print(loaded); assert not loaded")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(SRC)})


def test_importing_framefarm_loads_no_devcloud_or_cloud_sdk() -> None:
    # GIVEN a fresh interpreter  WHEN it imports framefarm  THEN no moto, boto3, flask or devcloud module is loaded
    done = extras_loaded_by("import framefarm")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_import_check_sees_devcloud_when_it_is_loaded() -> None:
    # GIVEN a fresh interpreter  WHEN it imports devcloud  THEN the same check fails and names it
    done = extras_loaded_by("import framefarm.devcloud")
    assert done.returncode != 0 and "framefarm.devcloud" in done.stdout, done.stdout + done.stderr


# -- the checker on a fake package: every rule fails when broken -----------------------------------

def write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / PACKAGE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for directory in {(root / PACKAGE / name).parent for name in files} | {root / PACKAGE}:
        (directory / "__init__.py").touch()


BROKEN = {
    storage_knows_bytes_not_jobs: ({"storage/base.py": "from ..spec import JobSpec\n", "spec.py": ""},
                                   ["framefarm.storage.base -> framefarm.spec"]),
    adapters_never_import_the_worker: ({"adapters/lam.py": "def f():\n    import framefarm.worker.runtime\n",
                                        "worker/runtime.py": ""},
                                       ["framefarm.adapters.lam -> framefarm.worker.runtime"]),
    library_never_imports_the_cli: ({"manager.py": "from framefarm import cli\n", "cli/jobs.py": "",
                                     "__main__.py": "from framefarm.cli import main\n"},
                                    ["framefarm.manager -> framefarm.cli"]),
    only_the_cli_imports_the_monitor: ({"manager.py": "from framefarm.monitor import app\n", "monitor/app.py": "",
                                        "cli/monitor.py": "def f():\n    from framefarm.monitor.app import x\n"},
                                       ["framefarm.manager -> framefarm.monitor",
                                        "framefarm.manager -> framefarm.monitor.app"]),
    devcloud_stays_out_of_the_product: ({"cli/aws.py": "from framefarm.devcloud import server\n",
                                         "aws/handlers.py": "def f():\n    from moto import mock_aws\n",
                                         "devcloud/server.py": "import moto\n"},
                                        ["framefarm.aws.handlers -> moto", "framefarm.cli.aws -> framefarm.devcloud",
                                         "framefarm.cli.aws -> framefarm.devcloud.server"]),
    low_layers_look_down: ({"config.py": "from . import errors\n", "errors.py": "from .config import X\n",
                            "redaction.py": "from framefarm.adapters.base import WorkerResult\n"},
                           ["framefarm.errors -> framefarm.config",
                            "framefarm.redaction -> framefarm.adapters.base"]),
}


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.__name__)
def test_each_rule_names_its_offenders(rule: Callable[[list[Import]], list[str]], tmp_path: Path) -> None:
    # GIVEN a fake framefarm package that breaks the rule (and keeps the ones it allows)
    files, expected = BROKEN[rule]
    write_package(tmp_path, files)
    # WHEN the rule reads it  THEN it names exactly the breaking imports, as "module -> imported"
    assert rule(scan(tmp_path)) == expected
    with pytest.raises(AssertionError, match=expected[0]):
        check(rule, scan(tmp_path))


def test_the_cli_may_import_devcloud_inside_a_function(tmp_path: Path) -> None:
    # GIVEN a CLI module that imports devcloud only when its command runs
    write_package(tmp_path, {"cli/aws.py": "def cmd():\n    from framefarm.devcloud import LocalAwsStack\n",
                             "devcloud/__init__.py": ""})
    # WHEN the devcloud rule reads it  THEN nothing is wrong
    assert devcloud_stays_out_of_the_product(scan(tmp_path)) == []
