"""Every import is declared, and CI installs exactly what the README says.

The README promises that ``pip install -e ".[test]"`` on a fresh machine is all
the tests need. A package installed by hand (or pulled in by something CI
installs first) would hide a missing declaration, so this test does not ask
whether an import *works*: it reads every import statement (package, tests,
benchmarks, tutorial notebooks), finds the distribution that provides it, and
checks that distribution is in the requirement closure that ``pyproject.toml``
declares, following each requirement's own metadata. CI then runs the README's
commands in a virtual environment of its own, where nothing else is installed.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "jupyter-tfserve"


def requirement_closure(name: str, extras: frozenset[str] = frozenset()) -> set[str]:
    """Canonical names of ``name[extras]`` and of everything it requires, transitively."""
    seen: set[tuple[str, frozenset[str]]] = set()
    closure: set[str] = set()
    pending = [(canonicalize_name(name), extras)]
    while pending:
        dist_name, dist_extras = pending.pop()
        if (dist_name, dist_extras) in seen:
            continue
        seen.add((dist_name, dist_extras))
        closure.add(dist_name)
        try:
            requires = metadata.requires(dist_name) or []
        except metadata.PackageNotFoundError:
            continue  # a requirement not installed here: its own requirements are unknown
        for line in requires:
            requirement = Requirement(line)
            environments = [{"extra": extra} for extra in dist_extras] or [{"extra": ""}]
            if requirement.marker is None or any(
                requirement.marker.evaluate(env) for env in environments
            ):
                pending.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return closure


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """True for an import inside ``try: ... except ImportError``: an optional dependency."""
    child, parent = node, parents.get(node)
    while parent is not None:
        if isinstance(parent, ast.Try) and child in parent.body:
            for handler in parent.handlers:
                names = ast.unparse(handler.type) if handler.type is not None else "BaseException"
                if re.search(
                    r"\b(ImportError|ModuleNotFoundError|Exception|BaseException)\b", names
                ):
                    return True
        child, parent = parent, parents.get(parent)
    return False


def top_level_imports(source: str) -> set[str]:
    """Absolute top-level module names a piece of code imports, optional imports left out."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found = [node.module]
        else:
            continue
        if not _guarded(node, parents):
            names.update(name.split(".")[0] for name in found)
    return names


def notebook_source(path: Path) -> str:
    """A notebook's code cells as Python, magics and shell escapes turned into calls."""
    from IPython.core.inputtransformer2 import TransformerManager

    transform = TransformerManager().transform_cell
    cells = json.loads(path.read_text())["cells"]
    return "\n".join(transform("".join(c["source"])) for c in cells if c["cell_type"] == "code")


def local_modules() -> set[str]:
    """Modules that come from this checkout, not from a distribution."""
    names = {"jupyter_tfserve"}
    for folder in ("tests", "benchmarks"):
        names.update(p.stem for p in (ROOT / folder).glob("*.py"))
        names.update(p.name for p in (ROOT / folder).iterdir() if (p / "__init__.py").exists())
    return names


def undeclared(sources: dict[str, str], declared: set[str]) -> dict[str, list[str]]:
    """Imported module -> files, for every import no declared distribution provides."""
    providers = metadata.packages_distributions()
    skip = set(sys.stdlib_module_names) | local_modules() | {"__future__"}
    missing: dict[str, list[str]] = {}
    for where, source in sources.items():
        for module in top_level_imports(source) - skip:
            dists = {canonicalize_name(d) for d in providers.get(module, [])}
            if not dists & declared:
                missing.setdefault(module, []).append(where)
    return missing


def _sources(*patterns: str) -> dict[str, str]:
    files = sorted({p for pattern in patterns for p in ROOT.glob(pattern)})
    return {
        str(p.relative_to(ROOT)): notebook_source(p) if p.suffix == ".ipynb" else p.read_text()
        for p in files
    }


@pytest.fixture(scope="module")
def installed_project() -> None:
    try:
        metadata.requires(PROJECT)
    except metadata.PackageNotFoundError:
        pytest.fail(
            f'{PROJECT} is not installed: run `pip install -e ".[test]"` (the README\'s first step)'
        )


def test_the_package_imports_only_its_declared_dependencies(installed_project):
    missing = undeclared(_sources("jupyter_tfserve/**/*.py"), requirement_closure(PROJECT))
    assert not missing, f"imported by the package but not in [project.dependencies]: {missing}"


def test_the_suite_imports_only_what_the_test_extra_declares(installed_project):
    sources = _sources("conftest.py", "tests/**/*.py", "benchmarks/**/*.py", "notebooks/*.ipynb")
    missing = undeclared(sources, requirement_closure(PROJECT, frozenset({"test"})))
    assert not missing, (
        f"imported by tests, benchmarks or tutorials but not in the [test] extra: {missing}"
    )


def test_the_panel_comes_with_the_lab_extra(installed_project):
    """The README's `pip install jupyter-tfserve[lab]` brings JupyterLab, which the panel needs."""
    assert "jupyterlab" in requirement_closure(PROJECT, frozenset({"lab"}))
    assert "jupyterlab" in requirement_closure(PROJECT, frozenset({"test"}))


def test_the_checker_sees_a_missing_declaration():
    """The closure and the import scan catch an import nothing declares (the checker itself can fail)."""
    closure = requirement_closure(PROJECT)
    assert "tensorflow" in closure and "jupyterlab" not in closure
    sources = {
        "x.py": "import jupyterlab\ntry:\n    import uvloop\nexcept ImportError:\n    pass\n"
    }
    assert undeclared(sources, closure) == {"jupyterlab": ["x.py"]}


def readme_commands() -> list[str]:
    """The README's set-up commands: the first line of each code block under "Set-up"."""
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return [block.strip().splitlines()[0] for block in re.findall(r"```\n(.*?)```", setup, re.S)]


def test_ci_runs_the_readme_commands_in_a_virtual_environment_of_its_own():
    install_and_demo, _curl, test = readme_commands()
    assert install_and_demo == 'pip install -e ".[test]" && tfserve demo'
    script = (ROOT / ".ci" / "run").read_text()
    lines = [line.strip() for line in script.splitlines()]
    venv = lines.index("python3 -m venv .venv-ci")
    assert lines.index("source .venv-ci/bin/activate") > venv
    install, demo = install_and_demo.split(" && ")
    assert lines.index(install) > venv
    assert any(line.startswith(demo + " ") for line in lines[lines.index(install) :])
    assert lines[-1] == test
