"""The package's public names: each imports from the top level and is documented.

Documented means Google style, as STYLE.md asks: a summary, every parameter of a class's
constructor or of a function (or method) under ``Args:`` (or named in the text), and a
``Raises:`` section wherever the code raises (a ``raise`` statement, or an attrs validator).
"""

from __future__ import annotations

import ast
import enum
import inspect
import re
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest

import refcount_starter


@pytest.mark.parametrize("name", sorted(refcount_starter.__all__))
def test_public_name_imports_and_is_documented(name: str) -> None:
    """Every name in ``__all__`` resolves and carries a docstring."""
    value = getattr(refcount_starter, name)
    if name == "__version__":
        assert isinstance(value, str)
        return
    assert inspect.getdoc(value), f"refcount_starter.{name} has no docstring"


def test_all_is_sorted_and_unique() -> None:
    """``__all__`` lists each name once."""
    assert len(set(refcount_starter.__all__)) == len(refcount_starter.__all__)


# -- the stricter check: arguments and raised errors ------------------------------------------

_SKIPPED_PARAMETERS = {"self", "cls"}

# Classes that users receive but never construct: their constructor is the runtime's.
_NOT_CONSTRUCTED_BY_USERS = {"Process"}


def _own_doc(obj: Any) -> str:
    # The object's own docstring, not one inherited from a base class.
    return inspect.cleandoc(getattr(obj, "__doc__", None) or "")


def _documents(doc: str, parameter: str) -> bool:
    """Whether ``doc`` names ``parameter`` (under Args: or in its text)."""
    return re.search(rf"(?<![\w.]){re.escape(parameter)}(?!\w)", doc) is not None


def _parameters(fn: Callable[..., Any]) -> list[str]:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return [
        name
        for name, parameter in signature.parameters.items()
        if name not in _SKIPPED_PARAMETERS
        and not name.startswith("_")
        and parameter.kind not in (parameter.VAR_KEYWORD,)
    ]


def _raises(fn: Callable[..., Any]) -> bool:
    """Whether the function's own body (not a nested function's) has a ``raise X`` statement."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return False
    tree = ast.parse(source)
    body = tree.body[0]

    def walk(node: ast.AST) -> Iterator[ast.AST]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
                continue
            yield child
            yield from walk(child)

    return any(isinstance(node, ast.Raise) and node.exc is not None for node in walk(body))


def _is_project(obj: Any) -> bool:
    return getattr(obj, "__module__", "").startswith("refcount_starter")


def _public_methods(cls: type) -> Iterator[tuple[str, Callable[..., Any]]]:
    for name, member in vars(cls).items():
        if name.startswith("_") or name in ("using",):
            continue
        fn = member.__func__ if isinstance(member, classmethod | staticmethod) else member
        if isinstance(fn, types.FunctionType) and _is_project(fn):
            yield name, fn


def _constructor_parameters(cls: type) -> list[str]:
    if attrs.has(cls):
        names = [field.alias or field.name for field in attrs.fields(cls) if field.init]
        return [name for name in names if not name.startswith("_")]
    init = vars(cls).get("__init__")
    if isinstance(init, types.FunctionType):
        return _parameters(init)
    return []


def _constructor_raises(cls: type) -> bool:
    if attrs.has(cls):
        return any(field.validator is not None or field.converter is not None for field in attrs.fields(cls))
    init = vars(cls).get("__init__")
    return isinstance(init, types.FunctionType) and _raises(init)


def _problems_of_function(qualname: str, fn: Callable[..., Any]) -> list[str]:
    # A method that overrides a documented one may inherit its docstring.
    doc = inspect.getdoc(fn) or ""
    problems = []
    if not doc:
        return [f"{qualname} has no docstring"]
    missing = [p for p in _parameters(fn) if not _documents(doc, p)]
    if missing:
        problems.append(f"{qualname}: parameters not documented: {', '.join(missing)}")
    if _raises(fn) and "Raises:" not in doc:
        problems.append(f"{qualname}: raises, but has no 'Raises:' section")
    return problems


def _problems_of_class(name: str, cls: type) -> list[str]:
    doc = _own_doc(cls)
    problems = []
    if isinstance(cls, enum.EnumMeta) or getattr(cls, "_is_protocol", False):
        constructor_checked = False
    else:
        constructor_checked = name not in _NOT_CONSTRUCTED_BY_USERS
    if constructor_checked:
        problems.extend(_problems_of_constructor(name, cls, doc))
    for method_name, fn in _public_methods(cls):
        problems.extend(_problems_of_function(f"{name}.{method_name}", fn))
    return problems


def _problems_of_constructor(name: str, cls: type, doc: str) -> list[str]:
    problems = []
    missing = [p for p in _constructor_parameters(cls) if not _documents(doc, p)]
    if missing:
        problems.append(f"{name}: constructor parameters not documented: {', '.join(missing)}")
    if _constructor_raises(cls) and "Raises:" not in doc:
        problems.append(f"{name}: its constructor raises, but the class has no 'Raises:' section")
    return problems


def _documentation_problems(name: str) -> list[str]:
    value = getattr(refcount_starter, name)
    if isinstance(value, type) and _is_project(value):
        return _problems_of_class(name, value)
    if isinstance(value, types.FunctionType) and _is_project(value):
        return _problems_of_function(name, value)
    if isinstance(value, types.ModuleType):
        problems = []
        for member_name in getattr(value, "__all__", ()):
            member = getattr(value, member_name)
            if isinstance(member, types.FunctionType) and member.__module__.startswith(value.__name__):
                problems.extend(_problems_of_function(f"{name}.{member_name}", member))
        return problems
    return []


# Public at the top level, but imported on first use (the nats extra), so not in __all__.
_LAZY_PUBLIC = {"NatsTransport"}


@pytest.mark.parametrize("name", sorted((set(refcount_starter.__all__) | _LAZY_PUBLIC) - {"__version__"}))
def test_public_name_documents_its_arguments_and_errors(name: str) -> None:
    """A public class or function documents each parameter, and ``Raises:`` where it raises."""
    problems = _documentation_problems(name)
    assert not problems, "\n".join(problems)


def test_the_strict_check_catches_an_undocumented_function() -> None:
    """The check reports a missing parameter and a missing ``Raises:`` section."""

    def careless(count: int) -> None:
        """Do something."""
        if count < 0:
            raise ValueError(count)

    assert _problems_of_function("careless", careless) == [
        "careless: parameters not documented: count",
        "careless: raises, but has no 'Raises:' section",
    ]


# -- the nats extra is optional ----------------------------------------------------------------

_WITHOUT_NATS = "import sys; sys.modules['msgspec'] = None; sys.modules['nats'] = None; "


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_import_star_works_without_the_nats_extra() -> None:
    """Regression: ``from refcount_starter import *`` failed without msgspec (NatsTransport in ``__all__``)."""
    result = _python(
        _WITHOUT_NATS + "from refcount_starter import *; print(Node.__name__, ChildSpec.__name__)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Node", "ChildSpec"]


def test_nats_transport_without_the_extra_is_an_import_error_naming_it() -> None:
    """Asking for NatsTransport without the extra raises ImportError that says which extra to install."""
    result = _python(_WITHOUT_NATS + "from refcount_starter import NatsTransport")
    assert result.returncode == 1
    assert "ImportError: NatsTransport needs the nats extra" in result.stderr


def test_nats_transport_imports_from_the_top_level_with_the_extra() -> None:
    """With the nats extra installed, ``from refcount_starter import NatsTransport`` works."""
    pytest.importorskip("msgspec")
    pytest.importorskip("nats")
    from refcount_starter import NatsTransport
    from refcount_starter.remote.natstransport import NatsTransport as defined

    assert NatsTransport is defined
    assert "NatsTransport" not in refcount_starter.__all__
