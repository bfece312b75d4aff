"""The package's shape: the engine in nnctl/nn/ imports nothing else of nnctl, and nothing
heavier than NumPy, so it can be read (and reused) on its own."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import nnctl

ENGINE = Path(nnctl.__file__).parent / "nn"


def module_name(path: Path) -> str:
    """nnctl/nn/layers/dense.py -> nnctl.nn.layers.dense (a package's __init__ -> the package)."""
    parts = path.relative_to(ENGINE.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """Every module `source` (the text of `module`) imports, at any depth, as an absolute name."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                found.append((node.lineno, ".".join(base + [node.module] if node.module else base)))
            else:
                found.append((node.lineno, node.module))
    return found


def test_the_engine_imports_only_itself_numpy_and_the_standard_library():
    files = sorted(ENGINE.rglob("*.py"))
    assert len(files) >= 10  # layers/, activations, losses, optim, init, schedules, model, ...
    outside = []
    for path in files:
        source, module = path.read_text(), module_name(path)
        for line, name in imported_modules(source, module, path.name == "__init__.py"):
            top = name.split(".")[0]
            inside_engine = name == "nnctl.nn" or name.startswith("nnctl.nn.")
            if top == "nnctl" and not inside_engine:
                outside.append(f"{path.relative_to(ENGINE.parent)}:{line} imports {name}")
            elif top not in ("nnctl", "numpy", "__future__") and top not in sys.stdlib_module_names:
                outside.append(f"{path.relative_to(ENGINE.parent)}:{line} imports {name}")
    assert outside == []


def test_the_walk_resolves_relative_imports():
    """`from ...config import x` inside nnctl/nn/layers/dense.py is nnctl.config: the check
    above must see it."""
    source = "from ..activations import relu\nfrom ...config import Config\nfrom .base import Layer\n"
    names = [name for _, name in imported_modules(source, "nnctl.nn.layers.dense")]
    assert names == ["nnctl.nn.activations", "nnctl.config", "nnctl.nn.layers.base"]
    names = [name for _, name in imported_modules("from .base import Layer\n", "nnctl.nn.layers", True)]
    assert names == ["nnctl.nn.layers.base"]


def test_no_module_shadows_a_name_of_the_api():
    """Importing a submodule binds its name on the package: a module nnctl/train.py would
    replace the function nnctl.train as soon as anything imported it."""
    package = ENGINE.parent
    clashes = [name for name in nnctl.__all__
               if (package / f"{name}.py").exists() or (package / name).is_dir()]
    assert clashes == []
