"""Run fleet targets on this machine: in this process, or in a pool of worker processes.

``jobs == 1`` migrates in this process, one target after the other, reusing
its connections. ``jobs > 1`` starts that many worker processes
(:class:`concurrent.futures.ProcessPoolExecutor`), each of which migrates
many targets over its own connections.

Workers are *spawned*, not forked: a forked worker inherits the parent's
memory (everything Django, Alembic and the scan loaded) and django-tenants'
forked pool grows with each tenant until it runs out of memory (django-tenants
#1228). A spawned worker starts small, collects its garbage every few targets
(:mod:`.apply`), so its memory stays flat however large the fleet, and from
Python 3.11 on is replaced after about :data:`TASKS_PER_WORKER` targets
(:func:`tasks_per_worker`). It gets
the parent's ``INSTALLED_APPS``, ``DATABASES`` and ``ALEMBIC_OPS`` as they
are at run time (Django's test runner renames ``NAME`` in place), and exits
when the parent process dies, leaving its current migration to the database
to roll back.

At most ``jobs`` targets are in flight, so that no new target starts once
the caller says to stop (``--max-failures``).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..errors import FleetError
from .apply import FAILED, TargetResult, migrate_target
from .targets import FleetJob, FleetTarget

#: Targets a worker process migrates before a fresh one replaces it (Python 3.11+):
#: a safety net against memory that user migrations hold on to. The package's own
#: memory stays flat (see :func:`.apply._collect_now_and_then`); a new worker
#: costs about a second of CPU (Django set up, the scripts loaded).
TASKS_PER_WORKER = 500
_PARENT_POLL_SECONDS = 0.5


class LocalExecutor:
    """Migrates targets here (``jobs == 1``) or in ``jobs`` worker processes."""

    def __init__(self, jobs: int = 1, targets: int = 0) -> None:
        """``targets``: how many the run has in all (it sets when workers are replaced)."""
        self.jobs = jobs
        self.targets = targets
        self._pool: ProcessPoolExecutor | None = None
        self._broken = False

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def run(
        self,
        targets: Sequence[FleetTarget],
        job: FleetJob,
        *,
        keep_going: Callable[[], bool],
        on_result: Callable[[TargetResult], None],
    ) -> None:
        """Migrate ``targets`` in order, starting each only while ``keep_going()``.

        ``on_result`` gets each result as it arrives; targets never started get none.
        """
        if self.jobs == 1 or (len(targets) <= 1 and self._pool is None):
            for target in targets:
                if not keep_going():
                    return
                on_result(migrate_target(target, job))
            return
        pending = list(reversed(targets))
        running: dict[Future[TargetResult], FleetTarget] = {}
        while pending or running:
            while pending and len(running) < self.jobs and keep_going() and not self._broken:
                target = pending.pop()
                running[self._worker_pool().submit(migrate_target, target, job)] = target
            if not running:
                return
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                target = running.pop(future)
                on_result(self._result(future, target))

    def _result(self, future: Future[TargetResult], target: FleetTarget) -> TargetResult:
        try:
            return future.result()
        except BrokenProcessPool:
            # A worker died (killed, out of memory): its target's transaction
            # was rolled back by the database; start nothing more.
            self._broken = True
            return TargetResult(
                target, FAILED, error="a worker process died while migrating it; run again"
            )

    def _worker_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            settings_module = os.environ.get("DJANGO_SETTINGS_MODULE")
            if not settings_module:
                raise FleetError(
                    "Worker processes (jobs > 1) need the DJANGO_SETTINGS_MODULE environment "
                    "variable to load the project's settings; set it, or use one job."
                )
            options: dict[str, Any] = {}
            if sys.version_info >= (3, 11):
                options["max_tasks_per_child"] = tasks_per_worker(self.targets, self.jobs)
            self._pool = ProcessPoolExecutor(
                max_workers=self.jobs,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(_runtime_settings(), os.getpid()),
                **options,
            )
        return self._pool


def tasks_per_worker(targets: int, jobs: int) -> int:
    """After how many targets a worker is replaced: :data:`TASKS_PER_WORKER`, or a little more.

    ``ProcessPoolExecutor`` starts a replacement for a worker that reached its
    bound even when no target is left for it: a worker's start-up (about a
    second of CPU) at the very end of the run, whenever a worker's share is a
    multiple of the bound (1,000 targets, 2 jobs and a bound of 500: up to
    two of them). So a share that fits in :data:`TASKS_PER_WORKER` gets that
    bound and a twentieth (no replacement at all); a larger one is cut into
    equal pieces of at most :data:`TASKS_PER_WORKER`, and the bound is a piece
    and a twentieth: a share within 1 % of the expected one then ends between
    two multiples of the bound, for shares of up to ten pieces (5,000 targets
    a worker).
    """
    share = -(-max(targets, 1) // jobs)
    if share <= TASKS_PER_WORKER:
        # One piece: no worker is to be replaced, even with a share a little
        # larger than expected (a small fleet's shares are rarely even).
        return TASKS_PER_WORKER + TASKS_PER_WORKER // 20
    piece = -(-share // -(-share // TASKS_PER_WORKER))
    return piece + piece // 20


def _runtime_settings() -> dict[str, Any]:
    """The settings a worker must share with the parent, as they are now."""
    from django.conf import settings

    ops = dict(getattr(settings, "ALEMBIC_OPS", None) or {})
    ops.pop("TENANTS", None)  # workers never list tenants (and a callable may not pickle)
    return {
        "INSTALLED_APPS": list(settings.INSTALLED_APPS),
        "DATABASES": {alias: dict(value) for alias, value in settings.DATABASES.items()},
        "ALEMBIC_OPS": ops,
    }


def _start_worker(runtime_settings: dict[str, Any], parent_pid: int) -> None:
    """Set up Django in a new worker process (``ProcessPoolExecutor``'s initializer)."""
    import django
    from django.conf import settings

    for name, value in runtime_settings.items():
        setattr(settings, name, value)
    django.setup()
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    # A pool's workers outlive a parent killed with SIGKILL, waiting for work
    # forever; a worker re-parented elsewhere has lost its parent.
    while os.getppid() == parent_pid:
        time.sleep(_PARENT_POLL_SECONDS)
    os._exit(1)
