"""Modules that remember how they were built, so a checkpoint can rebuild them.

A checkpoint holds weights, not code. To load an agent whose policy is a user's own class,
the checkpoint also records the policy's class path and the arguments of its constructor;
:func:`module_spec` reads them and :func:`build_module` calls the constructor again.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from torch import nn


class RecordsInit:
    """Mixin for ``nn.Module`` classes: every instance records its constructor's arguments.

    Subclasses need do nothing: ``__init_subclass__`` wraps each ``__init__`` so that, once
    the outermost constructor returns, ``self._init_args`` holds ``(args, kwargs)`` of that
    call. Arguments must be picklable (they are saved with the checkpoint).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_records_init", False):
            return

        @functools.wraps(init)
        def recording_init(self, *args: Any, **kw: Any) -> None:
            init(self, *args, **kw)
            # Written after the call, so the outermost constructor, which returns last, has the final say.
            object.__setattr__(self, "_init_args", (args, dict(kw)))

        recording_init._records_init = True  # type: ignore[attr-defined]
        cls.__init__ = recording_init  # type: ignore[method-assign]


def class_path(module: nn.Module) -> str:
    """``"pkg.mod:Name"``: where :func:`build_module` imports ``module``'s class from."""
    return f"{type(module).__module__}:{type(module).__qualname__}"


def module_spec(module: nn.Module) -> dict[str, Any] | None:
    """``{"class": "pkg.mod:Name", "args": [...], "kwargs": {...}}``, or ``None`` when ``module``
    did not record its constructor (neither a :class:`RecordsInit` subclass nor one with an
    ``init_kwargs()`` method) or its class lives in ``__main__``, which another process cannot import."""
    recorded = getattr(module, "_init_args", None)
    if recorded is None and callable(getattr(module, "init_kwargs", None)):
        recorded = ((), module.init_kwargs())  # a module that says how to rebuild itself
    if recorded is None or type(module).__module__ == "__main__":
        return None
    args, kwargs = recorded
    return {"class": class_path(module), "args": list(args), "kwargs": dict(kwargs)}


def build_module(spec: dict[str, Any]) -> nn.Module:
    """Import the class named in ``spec`` and call it with the recorded arguments."""
    module_name, _, qualname = spec["class"].partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ImportError(
            f"cannot rebuild the checkpoint's module {spec['class']}: {e}; make that class importable, "
            "or pass the module yourself (policy=...)"
        ) from e
    return obj(*spec["args"], **spec["kwargs"])
