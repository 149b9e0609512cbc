"""A helper of the builder tests: an object made by a slot builder is the one its constructor makes."""

from __future__ import annotations

import pickle

import attrs
import pytest


def assert_built_as_constructed(build, cls, values) -> None:
    """``build(*values)`` equals ``cls(*values)`` in every way a caller can see, and stays immutable."""
    built, made = build(*values), cls(*values)
    assert type(built) is cls
    assert built == made and hash(built) == hash(made) and repr(built) == repr(made)
    assert attrs.astuple(built, recurse=False) == values
    assert pickle.loads(pickle.dumps(built)) == made
    first = attrs.fields(cls)[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(built, first, None)  # immutable, however it was built
    assert attrs.evolve(built) == made
