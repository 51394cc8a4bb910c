"""The package's layers (docs/architecture.md): every folder of edn/ is one layer, and no
module imports from a layer above its own, at module level or inside a function."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from helpers import ROOT

#: The layers, lowest first: the pipeline's order, over the core every stage uses, under the CLI.
LAYERS = ("core", "ingest", "pose", "normalize", "labels", "background", "exemplars", "models", "training",
          "transfer", "evaluation", "fake_detector", "cli")
PACKAGE = ROOT / "edn"


def _imported_layers(path: Path) -> list[tuple[int, str, str]]:
    """(line, module, layer) of every ``edn.<layer>`` import in the file, relative ones resolved."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(filter(None, [base, node.module]))
            modules = [module] if node.module else [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if parts[0] == "edn" and len(parts) > 1 and (PACKAGE / parts[1]).is_dir():
                found.append((node.lineno, module, parts[1]))
    return sorted(found)


def test_every_folder_of_the_package_is_a_layer():
    folders = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    assert folders == set(LAYERS), ("a new folder of edn/ needs its place in LAYERS (tests/test_layers.py) and in "
                                    "docs/architecture.md", folders ^ set(LAYERS))


def _upward_imports() -> list[str]:
    upward = []
    for path in sorted(PACKAGE.glob("*/**/*.py")):
        layer = path.relative_to(PACKAGE).parts[0]
        for line, module, other in _imported_layers(path):
            if LAYERS.index(other) > LAYERS.index(layer):
                upward.append(f"{path.relative_to(ROOT)}:{line} ({layer}) imports {module} ({other})")
    return upward


def test_no_module_imports_from_a_layer_above_its_own():
    upward = _upward_imports()
    assert not upward, "\n".join(upward)


def test_the_check_sees_relative_imports_and_imports_inside_functions(tmp_path, monkeypatch):
    """A negative control: an upward import written either way is found, a downward one is not."""
    fake = tmp_path / "edn"
    for layer in ("core", "training"):
        (fake / layer).mkdir(parents=True)
        (fake / layer / "__init__.py").write_text("")
    (fake / "core" / "bad.py").write_text("def late():\n    from edn.training import loop\n"
                                          "from ..training import data\n")
    (fake / "training" / "fine.py").write_text("from edn.core import bad\nfrom ..core.bad import late\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert _upward_imports() == ["edn/core/bad.py:2 (core) imports edn.training (training)",
                                 "edn/core/bad.py:3 (core) imports edn.training (training)"]
