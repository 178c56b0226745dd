"""Alembic's ``op`` and ``context``, one per thread.

``from alembic import op`` is a module of functions that forward to one
:class:`~alembic.operations.Operations` object, which Alembic installs
process-wide: ``ModuleClsProxy._install_proxy`` stores it (and the plain
attributes such as ``context.config``) in the module's namespace, and
``_remove_proxy`` deletes them again. Two threads migrating at once overwrite
each other's: one thread's ``op.create_table`` lands on the other's connection
(on SQLite the interpreter was seen to crash), and the second ``_remove_proxy``
fails with ``KeyError('config')``. Django's connections are per thread;
Alembic's proxies must be too.

So the module functions of ``alembic.op`` and ``alembic.context`` are replaced
by dispatchers that forward to the object this thread installed through
:class:`Proxy`, and otherwise to Alembic's own function (which reads whatever
plain Alembic installed process-wide, so a plain ``env.py`` in the same process
works as before). Plain attributes (``context.config``) are answered by a
module ``__getattr__``, consulted only when plain Alembic has installed none;
while it has none, the module's ``_proxy`` that Alembic's own functions read
also answers per thread (for a script that imported one of those functions
by name).
:class:`ThreadLocalEnvironmentContext` is Alembic's ``EnvironmentContext``
installing both of its proxies this way.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import alembic.context
import alembic.op
from alembic.operations import Operations
from alembic.runtime.environment import EnvironmentContext

_MARK = "__ops_thread_local__"


class Proxy:
    """The module of one Alembic proxy class, answering per thread."""

    def __init__(self, module: ModuleType, cls: type) -> None:
        self.module = module
        self.cls = cls
        self._local = threading.local()
        self._lock = threading.Lock()

    def current(self) -> Any | None:
        """What this thread installed last, or ``None``."""
        stack: list[Any] | None = getattr(self._local, "stack", None)
        return stack[-1] if stack else None

    @contextmanager
    def installed(self, obj: Any) -> Iterator[Any]:
        """``obj`` answers this module's functions in this thread, for the block."""
        self.push(obj)
        try:
            yield obj
        finally:
            self.pop(obj)

    def push(self, obj: Any) -> None:
        self._install_dispatchers()
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        stack.append(obj)

    def pop(self, obj: Any) -> None:
        stack: list[Any] = self._local.stack
        assert stack and stack[-1] is obj, "Alembic proxies popped out of order"
        stack.pop()

    def _install_dispatchers(self) -> None:
        """Put a dispatcher in front of every function Alembic generated.

        Done at every install, not once: a plugin imported later (say in an
        app's ``migrations_ops/__init__.py``) registers new operations, and
        Alembic then adds functions for them to ``alembic.op``.
        """
        namespace = vars(self.module)
        with self._lock:
            for name in dir(self.cls):
                if name.startswith("_"):
                    continue
                function = namespace.get(name)
                if callable(function) and not getattr(function, _MARK, False):
                    namespace[name] = self._dispatcher(name, function)
            if not getattr(namespace.get("__getattr__"), _MARK, False):
                namespace["__getattr__"] = self._attribute_getter()
            if namespace.get("_proxy") is None:
                # Alembic's own functions read the module's ``_proxy``: a
                # script that did ``from alembic.op import execute`` holds one.
                namespace["_proxy"] = _StandIn(self)

    def _dispatcher(self, name: str, alembic_function: Callable[..., Any]) -> Callable[..., Any]:
        current = self.current

        def dispatch(*args: Any, **kwargs: Any) -> Any:
            obj = current()
            if obj is None:
                return alembic_function(*args, **kwargs)
            return getattr(obj, name)(*args, **kwargs)

        functools.update_wrapper(dispatch, alembic_function)
        setattr(dispatch, _MARK, True)
        return dispatch

    def _attribute_getter(self) -> Callable[[str], Any]:
        current = self.current
        module_name = self.module.__name__
        attributes, _ = self.cls._setups[self.cls]  # type: ignore[attr-defined]

        def __getattr__(name: str) -> Any:  # noqa: N807 (PEP 562's module __getattr__)
            obj = current()
            if obj is not None and name in attributes:
                return getattr(obj, name)
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

        setattr(__getattr__, _MARK, True)
        return __getattr__


class _StandIn:
    """Alembic's process-wide ``_proxy`` while plain Alembic has none installed.

    Forwards to what this thread installed; without one it fails as Alembic
    does once its proxy is removed.
    """

    def __init__(self, proxy: Proxy) -> None:
        self._ops_proxy = proxy

    def __getattr__(self, name: str) -> Any:
        obj = self._ops_proxy.current()
        if obj is None:
            raise AttributeError(
                f"No Alembic {self._ops_proxy.cls.__name__} is active in this thread "
                f"for '{name}'; call it from a migration's upgrade() or downgrade()."
            )
        return getattr(obj, name)


#: ``from alembic import op``
OP = Proxy(alembic.op, Operations)
#: ``from alembic import context``
CONTEXT = Proxy(alembic.context, EnvironmentContext)


class ThreadLocalEnvironmentContext(EnvironmentContext):
    """Alembic's ``EnvironmentContext``, with ``context`` and ``op`` per thread.

    Entering it makes ``alembic.context`` this object in this thread only;
    :meth:`run_migrations` does the same for ``alembic.op`` (Alembic's own
    uses ``Operations.context()``, which installs process-wide).
    """

    def _install_proxy(self) -> None:
        CONTEXT.push(self)

    def _remove_proxy(self) -> None:
        CONTEXT.pop(self)

    def run_migrations(self, **kw: Any) -> None:
        context = self.get_context()
        with OP.installed(Operations(context)):
            context.run_migrations(**kw)
