"""Slot builders: frozen attrs objects built at the cost of a plain class's ``__init__``.

The native reader builds some thirty records per patient and the explaining evaluator some
fifty result objects; both build them through ``slot_builder``.
"""

from __future__ import annotations

import attrs


def slot_builder(cls, fields: tuple[str, ...]):
    """A function that builds a ``cls`` from every one of its ``fields``, given positionally in that
    order: the very object ``cls(*values)`` gives, three to five times as fast.

    An ``attrs.frozen`` class's ``__init__`` sets each slot through ``object.__setattr__`` by
    name (the class's own ``__setattr__`` refuses), a slow call per field. The builder makes
    an object of a plain class with the same slots (no ``__init__``: the fastest call that
    makes an object), stores each field (one fast store each) and then makes it a ``cls`` by
    assigning its ``__class__``, which Python allows between classes of the same layout. The
    object is then a ``cls`` like any other (frozen, equal, hashed, printed alike). This needs
    ``cls`` to be frozen and slotted, without a ``__weakref__`` slot (``weakref_slot=False``:
    with it Python refuses the assignment), and its fields to have no converter or validator
    and all be set by ``__init__``: checked here, at import, by building one.
    ``tests/test_records_build.py`` and ``tests/test_results_build.py`` compare built objects
    with ``cls(...)``'s.
    """
    declared = attrs.fields(cls)
    if tuple(f.name for f in declared) != fields or cls.__dict__.get("__slots__") != fields or any(
            not f.init or f.converter is not None or f.validator is not None for f in declared):  # pragma: no cover
        raise ImportError(f"{cls.__module__}: {cls.__name__}'s fields changed; update its builder")
    blank = type(f"_{cls.__name__}Slots", (), {"__slots__": fields, "__module__": cls.__module__,
                                               "__qualname__": f"slot_builder.<{cls.__name__}>"})
    args = ", ".join(fields)
    body = "".join(f"    new.{name} = {name}\n" for name in fields)
    namespace = {"cls": cls, "blank": blank}
    exec(f"def new_{cls.__name__.lower()}({args}):\n    new = blank()\n{body}"  # noqa: S102
         f"    new.__class__ = cls\n    return new\n", namespace)
    build = namespace[f"new_{cls.__name__.lower()}"]
    build.__module__, build.__qualname__ = cls.__module__, f"slot_builder.<{cls.__name__}>"
    probe = build(*(None,) * len(fields))  # raises TypeError here, at import, if the layouts differ
    if probe.__class__ is not cls:  # pragma: no cover
        raise ImportError(f"{cls.__module__}: cannot build {cls.__name__} objects quickly")
    return build
