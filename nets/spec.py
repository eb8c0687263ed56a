"""Modules that remember how they were built, so a checkpoint can rebuild them.

A checkpoint holds weights, not code. To load an agent whose policy is a user's own class,
the checkpoint also records the policy's class path and the arguments of its constructor;
:func:`module_spec` reads them and :func:`build_module` calls the constructor again, but only for
the library's own classes and those the user allowed (:func:`trusted_classes`): a checkpoint is
data, and loading one must not import or call whatever it names.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
from typing import Any, Iterator, Sequence

from torch import nn


class RecordsInit:
    """Mixin for ``nn.Module`` classes: every instance records its constructor's arguments.

    Subclasses need do nothing: ``__init_subclass__`` wraps each ``__init__`` so that, once
    the outermost constructor returns, ``self._init_args`` holds ``(args, kwargs)`` of that
    call. Arguments must be plain data (numbers, strings, lists, tuples, dicts, tensors): checkpoints
    are loaded with ``torch.load(weights_only=True)``, which reads nothing else.
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


def class_path_of(cls: type) -> str:
    """``"pkg.mod:Name"``: where :func:`build_module` imports the class ``cls`` from."""
    return f"{cls.__module__}:{cls.__qualname__}"


def class_path(module: nn.Module) -> str:
    """``"pkg.mod:Name"``: where :func:`build_module` imports ``module``'s class from."""
    return class_path_of(type(module))


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


#: The packages whose classes a checkpoint may name without the user's say-so.
LIBRARY_PACKAGES = ("policyopt",)
# Checkpoints of release 0.1 name the library's classes by their paths before the policyopt namespace.
LEGACY_PREFIXES = {
    "nets": "policyopt.nets",
    "buffers": "policyopt.buffers",
    "vecenvs": "policyopt.vecenvs",
    "algos.fql": "policyopt.algos.offline.generative.fql",
}


def current_class_path(path: str) -> str:
    """``path`` with a 0.1 module path (``nets.policies:GaussianPolicy``) renamed to today's (``policyopt.nets...``)."""
    module_name, sep, qualname = path.partition(":")
    for old, new in LEGACY_PREFIXES.items():
        if module_name == old or module_name.startswith(old + "."):
            return new + module_name[len(old) :] + sep + qualname
    return path


_trusted: contextvars.ContextVar[tuple[type | str, ...]] = contextvars.ContextVar("trusted_classes", default=())


class UntrustedClassError(ValueError):
    """A checkpoint names a class that loading may not call: outside the library and not allowed by the user."""


@contextlib.contextmanager
def trusted_classes(allowed: Sequence[type | str] = ()) -> Iterator[None]:
    """Within the block, :func:`build_module` may also rebuild the classes in ``allowed``: a class object
    (``MyPolicy``), or a module prefix (``"mylab.policies"``) whose classes the user trusts."""
    for item in allowed:
        if not (isinstance(item, str) and item) and not isinstance(item, type):
            raise TypeError(f"trusted_classes takes classes or module-prefix strings, got {item!r}")
    token = _trusted.set(_trusted.get() + tuple(allowed))
    try:
        yield
    finally:
        _trusted.reset(token)


def _in_package(module_name: str, prefix: str) -> bool:
    return module_name == prefix or module_name.startswith(prefix + ".")


def _untrusted(path: str, why: str) -> UntrustedClassError:
    return UntrustedClassError(
        f"the checkpoint asks to rebuild its module from {path!r}, {why}; loading a checkpoint calls no code that was "
        f"not allowed. If you trust this file, allow the class in one of three ways: load(path, trusted_classes=[TheClass]), "
        f"load(path, trusted_classes=[\"{path.partition(':')[0] or 'its.module'}\"]) (a module prefix), or build the module "
        "yourself and pass it: load(path, policy=module)"
    )


def build_module(spec: dict[str, Any]) -> nn.Module:
    """Call the class named in ``spec`` with the recorded arguments, if loading may call it.

    A checkpoint is data, so its class path is checked before anything is imported: only classes of
    the library's own packages (:data:`LIBRARY_PACKAGES`) and those the user allowed with
    :func:`trusted_classes` are imported at all, and the class must be an ``nn.Module`` that records its
    constructor (:class:`RecordsInit`, or an ``init_kwargs()`` method). Anything else raises
    :class:`UntrustedClassError` naming the class path, before any import or call.
    """
    if not (
        isinstance(spec, dict)
        and isinstance(spec.get("class"), str)
        and isinstance(spec.get("args", []), (list, tuple))
        and isinstance(spec.get("kwargs", {}), dict)
    ):
        raise ValueError(f"a module spec is {{'class': 'pkg.mod:Name', 'args': [...], 'kwargs': {{...}}}}, got {spec!r}")
    path = current_class_path(spec["class"])
    module_name, _, qualname = path.partition(":")
    parts = qualname.split(".")
    if not module_name or not qualname or any(not p.isidentifier() or p.startswith("_") for p in parts):
        raise _untrusted(path, "which is not a 'pkg.module:ClassName' path")
    trusted = _trusted.get()
    obj: Any = next((c for c in trusted if isinstance(c, type) and class_path_of(c) == path), None)
    if obj is None:
        prefixes = LIBRARY_PACKAGES + tuple(t for t in trusted if isinstance(t, str))
        if not any(_in_package(module_name, p) for p in prefixes):
            raise _untrusted(path, f"which is not in policyopt's own packages ({', '.join(LIBRARY_PACKAGES)})")
        try:
            obj = importlib.import_module(module_name)
            for part in parts:
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as e:
            raise ImportError(
                f"cannot rebuild the checkpoint's module {path}: {e}; make that class importable, "
                "or pass the module yourself (policy=...)"
            ) from e
    if not (
        isinstance(obj, type)
        and issubclass(obj, nn.Module)
        and (issubclass(obj, RecordsInit) or callable(getattr(obj, "init_kwargs", None)))
    ):
        raise _untrusted(path, "which is not an nn.Module class that records its constructor (nets.RecordsInit)")
    return obj(*spec.get("args", ()), **spec.get("kwargs", {}))
