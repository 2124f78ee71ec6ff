"""The plugin API module and the import rule around it.

* Built-in plugins take PlantGuard's names only from ``plantguard.plugin``, as a
  third-party plugin must: if a built-in needs something, it goes into the API.
* ``plantguard.plugin`` exports exactly its ``__all__``, and everything the hook
  signatures name.
* The core imports no plugin: built-ins are reached through hooks only.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import plantguard.plugin
from plantguard import hookspecs

ROOT = Path(__file__).resolve().parents[1]
API = "plantguard.plugin"

#: Modules held to the rule: every module of the built-in plugin packages, and the
#: OPC UA server's plugin module (the rest of plantguard_opcua is the server itself).
PLUGIN_MODULES = sorted(
    [*ROOT.glob("plugins/plantguard_*/**/*.py"), ROOT / "opcua_server/plantguard_opcua/plugin.py"]
)

#: (module path relative to the repository, imported core module) pairs allowed to
#: break the rule, each with its reason.  Empty: nothing needs an exception.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def _core_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of a ``plantguard`` module in ``path``,
    including those under ``TYPE_CHECKING`` and inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        found += [
            (node.lineno, m) for m in modules if m == "plantguard" or m.startswith("plantguard.")
        ]
    return found


def test_the_rule_covers_every_built_in_plugin() -> None:
    packages = {p.relative_to(ROOT).parts[1] for p in PLUGIN_MODULES}
    assert packages == {
        "plantguard_maintenance",
        "plantguard_modbus",
        "plantguard_mqtt",
        "plantguard_mqtt_publish",
        "plantguard_opcua",
        "plantguard_risk",
        "plantguard_rules",
        "plantguard_sim",
    }


@pytest.mark.parametrize("path", PLUGIN_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_built_in_plugins_import_the_core_only_through_the_plugin_api(path: Path) -> None:
    where = str(path.relative_to(ROOT))
    wrong = [
        f"{where}:{line}: imports {module}"
        for line, module in _core_imports(path)
        if module != API and (where, module) not in EXCEPTIONS
    ]
    assert not wrong, "import these from plantguard.plugin (add them there if missing):\n" + (
        "\n".join(wrong)
    )


def test_exceptions_are_still_needed() -> None:
    used = {(str(p.relative_to(ROOT)), m) for p in PLUGIN_MODULES for _, m in _core_imports(p)}
    assert set(EXCEPTIONS) <= used, "remove exceptions that no module needs any more"


def test_the_api_exports_exactly_its_all() -> None:
    public = {
        name
        for name in vars(plantguard.plugin)
        # not from __future__, nor pytest's assertion rewriting (which rewrites every
        # module of the distribution that provides the plantguard.testing plugin)
        if not name.startswith(("_", "@")) and name != "annotations"
    }
    assert public == set(plantguard.plugin.__all__)
    assert plantguard.plugin.__doc__ is not None
    for name in plantguard.plugin.__all__:
        assert name in plantguard.plugin.__doc__, f"the module docstring does not show {name}"


def test_everything_a_hook_signature_names_is_in_the_api() -> None:
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if not name.startswith("plantguard_"):
            continue
        signature = inspect.signature(function)
        annotations = [p.annotation for p in signature.parameters.values()]
        annotations.append(signature.return_annotation)
        for annotation in annotations:
            for word in re.findall(r"[A-Za-z_]\w*", str(annotation)):
                if word != "None":
                    assert word in plantguard.plugin.__all__, f"{name}: {word} is not in the API"


def test_the_core_imports_no_plugin() -> None:
    wrong = []
    for path in sorted((ROOT / "plantguard").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            wrong += [
                f"{path.relative_to(ROOT)}:{node.lineno}: {m}"
                for m in modules
                if m.startswith("plantguard_")
            ]
    assert not wrong, "the core reaches plugins through hooks only:\n" + "\n".join(wrong)


def test_every_name_of_the_api_is_in_the_plugin_guide() -> None:
    """docs/plugins.md lists the contract; a name exported but not listed there is one a
    plugin author cannot find."""
    guide = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    missing = [name for name in plantguard.plugin.__all__ if f"`{name}`" not in guide]
    assert not missing, f"exported by plantguard.plugin but not in docs/plugins.md: {missing}"
