"""Garbage-collector settings for the CPU-heavy parts of a run."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def long_lived_objects_frozen() -> Iterator[None]:
    """Keep the cyclic GC from rescanning what is already loaded, for a while.

    A run allocates many short-lived cyclic objects (SQLAlchemy tables,
    columns and their metadata, per operation), so the collector runs often,
    and each full collection walks every object of Django, SQLAlchemy, Alembic
    and all loaded scripts: about a tenth of the CPU of a long upgrade.
    ``gc.freeze()`` sets those aside (nothing is leaked: garbage is still
    collected, and ``gc.unfreeze()`` hands them back to the collector).
    """
    if gc.get_freeze_count():  # someone else froze the heap: leave it to them
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
