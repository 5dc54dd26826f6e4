"""Imports go one way: web -> services -> crypto, storage, models, db, config (STYLE.md, Layers).

Every module under whistle/ is parsed with ast, imports inside functions
included, so a layer cannot be crossed by a late import either.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "whistle"
WEB_FRAMEWORK = ("flask", "flask_wtf", "flask_limiter", "werkzeug", "wtforms")
#: The modules that may use Flask: the app factory, the command line and the web layer.
FLASK_ALLOWED = ("__init__.py", "cli.py", "web/")


@dataclass(frozen=True)
class Import:
    module: str  # relative to whistle/, e.g. "services/reports.py"
    line: int
    name: str  # the absolute dotted name imported, e.g. "whistle.web.runtime"

    def __str__(self) -> str:
        return f"whistle/{self.module}:{self.line} imports {self.name}"


def _module_name(relative: str) -> str:
    parts = ["whistle", *Path(relative).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, relative: str) -> Iterator[Import]:
    """Every name imported by a module's source, with relative imports made absolute."""
    module = _module_name(relative)
    package = module if relative.endswith("__init__.py") else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(relative, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from whistle import web` imports whistle.web: record the submodule too.
            for alias in node.names:
                yield Import(relative, node.lineno, f"{base}.{alias.name}")


def _modules() -> list[str]:
    return sorted(str(path.relative_to(PACKAGE).as_posix()) for path in PACKAGE.rglob("*.py"))


def _all_imports() -> list[Import]:
    found: list[Import] = []
    for relative in _modules():
        found.extend(imports_of((PACKAGE / relative).read_text(), relative))
    return found


def _is(name: str, *packages: str) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def _violations(where: Callable[[str], bool], forbidden: tuple[str, ...]) -> list[str]:
    return [str(i) for i in _all_imports() if where(i.module) and _is(i.name, *forbidden)]


# --- the rules -------------------------------------------------------------------------


def test_crypto_imports_nothing_of_ours_nor_flask_nor_sqlalchemy() -> None:
    assert _violations(lambda m: m == "crypto.py", ("whistle", "flask", "sqlalchemy", *WEB_FRAMEWORK)) == []


def _below_the_web_layer(module: str) -> bool:
    return not module.startswith(FLASK_ALLOWED)


def test_only_the_web_layer_app_factory_and_cli_import_flask_or_werkzeug() -> None:
    assert _violations(_below_the_web_layer, WEB_FRAMEWORK) == []


def test_services_never_import_the_web_layer() -> None:
    assert _violations(lambda m: m.startswith("services/"), ("whistle.web",)) == []


@pytest.mark.parametrize("module", ["models.py", "db.py", "storage.py", "config.py"])
def test_the_lower_layers_never_import_services_or_web(module: str) -> None:
    assert _violations(lambda m: m == module, ("whistle.services", "whistle.web")) == []


def test_nothing_below_the_web_layer_imports_it() -> None:
    assert _violations(_below_the_web_layer, ("whistle.web",)) == []


# --- the checker itself ------------------------------------------------------------------


def test_every_module_is_walked() -> None:
    modules = _modules()
    for expected in ("crypto.py", "config.py", "services/reports.py", "web/reporter.py", "cli.py"):
        assert expected in modules
    # The rules would see a crossing: the web layer's own Flask imports are found.
    web_flask = [i for i in _all_imports() if i.module.startswith("web/") and _is(i.name, "flask")]
    assert web_flask


def test_the_checker_sees_every_kind_of_import() -> None:
    source = (
        "import flask\n"
        "import werkzeug.utils as wu\n"
        "from sqlalchemy import select\n"
        "from . import crypto\n"
        "from ..web import runtime\n"
        "from .context import Policy\n"
        "def late():\n"
        "    from whistle.web.sessions import x\n"
    )
    names = [(i.line, i.name) for i in imports_of(source, "services/reports.py")]
    assert names == [
        (1, "flask"),
        (2, "werkzeug.utils"),
        (3, "sqlalchemy.select"),
        (4, "whistle.services.crypto"),
        (5, "whistle.web.runtime"),
        (6, "whistle.services.context.Policy"),
        (8, "whistle.web.sessions.x"),
    ]
    assert [i.name for i in imports_of("from . import crypto\n", "services/__init__.py")] == [
        "whistle.services.crypto"
    ]
    assert [i.name for i in imports_of("from .db import Base\n", "models.py")] == ["whistle.db.Base"]
    assert str(Import("services/x.py", 3, "flask")) == "whistle/services/x.py:3 imports flask"
