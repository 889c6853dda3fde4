"""The package's public names: each imports from the top level and is documented."""

from __future__ import annotations

import inspect

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
