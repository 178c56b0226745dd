"""Run fleet targets on Celery workers: ``opsmigrate --executor celery``.

Each target is one task, ``django_alembic_ops.tasks.migrate_target``, sent to
the project's ordinary workers through its broker; the task runs the same
code as a local worker process (:func:`.apply.migrate_target`), under the
same per-target lock, so a target is migrated once whoever runs it, and
returns a small JSON-able dict that this side turns back into a
:class:`.apply.TargetResult`.

Like the local pool, at most as many targets are in flight as there are
worker slots (the workers' total concurrency, or ``jobs``), so that no new
target is sent once the caller says to stop (``--max-failures``).

A worker that dies mid-task (``SIGKILL``, out of memory) leaves no result
behind: the database rolls its transaction back, and Celery (acknowledging
a message when its task starts) will not run it again. So that the run
does not wait forever, the task writes a heartbeat to the result backend
while it runs; a target whose heartbeat stops is reported failed, nothing
more is sent, targets sent but not started are revoked, and a re-run does
the rest (like a broken local pool).

Celery is imported only here and in :mod:`django_alembic_ops.tasks`: only
when this executor is used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from celery import Celery, Task, states
from celery import current_app as celery_current_app
from celery.backends.base import DisabledBackend
from celery.utils import uuid

from .. import conf
from ..errors import FleetError
from .apply import FAILED, TargetResult, migrate_target
from .targets import FleetJob, FleetTarget, setting_object

#: The task's name, as workers register it.
TASK_NAME = "django_alembic_ops.tasks.migrate_target"
#: How long the workers have to answer (``celery inspect``) before a run starts.
WORKER_TIMEOUT = 2.0
#: A running task writes a heartbeat this often ...
HEARTBEAT_SECONDS = 1.0
#: ... and its worker is taken for dead after this long without one.
LOST_AFTER_SECONDS = 10.0
#: How often results are looked for (at the latest: see :class:`_Wakeup`).
_POLL_SECONDS = 0.05
#: A target whose task was revoked gets this long to show that it had started.
_REVOKE_GRACE_SECONDS = 2.0


# -- the worker's side ------------------------------------------------------------------


def run_task(task: Task, target: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """The body of the task: migrate one target, with a heartbeat; the result as a dict."""
    fleet_target = FleetTarget(**target)
    with _heartbeat(task), _kept_connection(fleet_target.alias):
        result = migrate_target(fleet_target, FleetJob(**job))
    fields = dataclasses.asdict(result)
    del fields["target"]  # the sender knows it
    return fields


#: The connections the fleet's tasks keep, per worker thread: alias -> Django's wrapper.
_kept = threading.local()


@contextlib.contextmanager
def _kept_connection(alias: str) -> Iterator[None]:
    """Run the task on a connection to ``alias`` that outlives it, as a ``--jobs`` worker does.

    Celery's Django fixup closes every connection before and after each task
    (unless ``CELERY_DB_REUSE_MAX`` is set), so each tenant would open a new
    one: a new PostgreSQL backend, its catalog caches cold. At 1,000 tenants
    that made the fleet take twice as long as ``--jobs 2`` (the server's CPU
    38 s against 24 s). While the task runs, ``connections[alias]`` is a
    wrapper this worker thread keeps from one fleet task to the next (checked
    with ``is_usable()`` first: a server restart costs one reconnection);
    Django's own wrapper is put back before the fixup closes it, so the
    worker's other tasks are left as they were.
    """
    from django.db import connections

    kept: dict[str, Any] = _kept.__dict__.setdefault("wrappers", {})
    wrapper = kept.get(alias)
    if wrapper is None:
        wrapper = kept[alias] = connections.create_connection(alias)
    elif wrapper.connection is not None and not wrapper.is_usable():
        wrapper.close()
    own = connections[alias]
    connections[alias] = wrapper
    try:
        yield
    finally:
        connections[alias] = own


@contextlib.contextmanager
def _heartbeat(task: Task) -> Iterator[None]:
    """``STARTED`` with a growing ``beat`` in the result backend while the task runs.

    A thread of its own, so that a long migration (or a solo pool, which
    answers no remote control while it runs a task) still beats; the counter,
    not a time, so that the sender's clock need not agree with the worker's.
    """
    task_id = task.request.id
    if task_id is None:  # called directly, not as a task
        yield
        return
    hostname = task.request.hostname
    stop = threading.Event()

    def beat(count: int) -> None:
        # A missed beat (the backend busy a moment) must not fail the migration.
        with contextlib.suppress(Exception):
            task.backend.store_result(
                task_id, {"hostname": hostname, "beat": count}, states.STARTED
            )

    def beat_until_stopped() -> None:
        count = 1
        while not stop.wait(HEARTBEAT_SECONDS):
            beat(count)
            count += 1

    beat(0)
    thread = threading.Thread(target=beat_until_stopped, name="ops-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        # Joined before the task returns: no beat can overwrite its result.
        stop.set()
        thread.join()


# -- the sender's side ------------------------------------------------------------------


def celery_app() -> Celery:
    """The app of ``ALEMBIC_OPS["CELERY_APP"]``, or Celery's current app.

    :raises FleetError: the setting cannot be imported, or is not a Celery app.
    """
    setting = conf.get().CELERY_APP
    if setting is None:
        app: Any = celery_current_app._get_current_object()
    else:
        app = setting_object("CELERY_APP", setting)
    if not isinstance(app, Celery):
        raise FleetError(
            f"ALEMBIC_OPS['CELERY_APP'] is {setting!r}, not a Celery app; name the app, "
            "e.g. 'myproject.celery.app'."
        )
    return app


class _Wakeup:
    """Lets the sender sleep until a task in flight stores a new state.

    A Redis result backend publishes each state it stores on the task's key
    (that is how Celery's own ``AsyncResult.get()`` waits); subscribed to the
    keys of the tasks in flight, the sender looks at the results as soon as
    one changes, instead of up to :data:`_POLL_SECONDS` later: with targets
    of 20 migrations taking about 60 ms, polling alone left each worker idle
    a third of the time. Other backends (or any error of the subscription) are
    polled every :data:`_POLL_SECONDS`; the results are always read the same way.
    """

    def __init__(self, app: Celery) -> None:
        backend = app.backend
        self._key_for: Callable[[str], Any] | None = getattr(backend, "get_key_for_task", None)
        self._pubsub: Any = None
        client = getattr(backend, "client", None) if self._key_for is not None else None
        if client is not None and hasattr(client, "pubsub"):
            with contextlib.suppress(Exception):
                self._pubsub = client.pubsub(ignore_subscribe_messages=True)

    def watch(self, task_id: str) -> None:
        """Wake for ``task_id``'s states (before its task is sent: none is missed)."""
        self._call("subscribe", task_id)

    def forget(self, task_id: str) -> None:
        self._call("unsubscribe", task_id)

    def wait(self) -> None:
        """Until a watched task stores a state, or :data:`_POLL_SECONDS` at most."""
        if self._pubsub is None:
            time.sleep(_POLL_SECONDS)
            return
        deadline = time.monotonic() + _POLL_SECONDS
        try:
            # None: the time is up, or a (un)subscribe confirmation was read and ignored.
            while (remaining := deadline - time.monotonic()) > 0:
                if self._pubsub.get_message(timeout=remaining) is not None:
                    while self._pubsub.get_message(timeout=0) is not None:
                        pass  # every state that arrived meanwhile: one look at the results
                    return
        except Exception:
            self._give_up()
            time.sleep(_POLL_SECONDS)

    def close(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                self._pubsub.close()
            self._pubsub = None

    def _call(self, method: str, task_id: str) -> None:
        if self._pubsub is None or self._key_for is None:
            return
        try:
            getattr(self._pubsub, method)(self._key_for(task_id))
        except Exception:
            self._give_up()

    def _give_up(self) -> None:
        self.close()  # polling alone from now on


@dataclasses.dataclass
class _Sent:
    """A target whose task is in flight."""

    target: FleetTarget
    beat: int = -1
    beat_seen: float = dataclasses.field(default_factory=time.monotonic)
    hostname: str | None = None
    revoked: float | None = None  # when it was revoked (sent, never started)


class CeleryExecutor:
    """Migrates targets on Celery workers; ``jobs``: targets in flight at most
    (default: the total concurrency of the workers that have the task)."""

    def __init__(self, jobs: int | None = None) -> None:
        self.jobs = jobs
        self.app = celery_app()
        self.window = 0
        self._lost = False
        self._unstarted_error: str | None = None  # why revoked targets failed, if they did
        self._progress = time.monotonic()  # the last result or heartbeat

    def __enter__(self) -> CeleryExecutor:
        self.window = self.jobs or self._worker_slots()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        pass

    def _worker_slots(self) -> int:
        """The workers' total concurrency; a clear error when none would run the task."""
        app = self.app
        if isinstance(app.backend, DisabledBackend):
            raise FleetError(
                "--executor celery reads each target's result from the Celery result backend, "
                "and the Celery app has none: set CELERY_RESULT_BACKEND (e.g. the broker's "
                "Redis URL)."
            )
        connection = app.connection_for_write()
        try:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=WORKER_TIMEOUT)
        except Exception as exc:
            hint = (
                ""
                if conf.get().CELERY_APP is not None
                else "; if that is not your app's broker, set ALEMBIC_OPS['CELERY_APP'] "
                "(e.g. 'myproject.celery.app')"
            )
            raise FleetError(
                f"Cannot reach the Celery broker {_broker(connection)}: "
                f"{str(exc).rstrip('.')}{hint}."
            ) from None
        finally:
            connection.release()
        stats = app.control.inspect(timeout=WORKER_TIMEOUT).stats() or {}
        if not stats:
            raise FleetError(
                f"No Celery worker answered within {WORKER_TIMEOUT:g}s on the broker "
                f"{_broker(connection)}: start workers ('celery -A <your app> worker') and run "
                "the same command again."
            )
        hosts = sorted(stats)
        ask = app.control.inspect(destination=hosts, timeout=WORKER_TIMEOUT, limit=len(hosts))
        registered = ask.registered() or {}
        ready = [host for host in hosts if TASK_NAME in registered.get(host, ())]
        if not ready:
            raise FleetError(
                f"No Celery worker ({', '.join(hosts)}) has the task '{TASK_NAME}': the Celery "
                "app must call app.autodiscover_tasks() (or import django_alembic_ops.tasks); "
                "restart the workers."
            )
        # A task routed to a queue no worker reads would wait forever.
        queue = app.amqp.router.route({}, TASK_NAME, (), {})["queue"].name
        consumed = ask.active_queues() or {}
        ready = [
            host
            for host in ready
            if any(found.get("name") == queue for found in consumed.get(host, ()))
        ]
        if not ready:
            raise FleetError(
                f"No Celery worker ({', '.join(hosts)}) reads the queue '{queue}' that the task "
                f"'{TASK_NAME}' is routed to: start workers with '-Q {queue}'."
            )
        return sum(_concurrency(stats[host]) for host in ready)

    def run(
        self,
        targets: Sequence[FleetTarget],
        job: FleetJob,
        *,
        keep_going: Callable[[], bool],
        on_result: Callable[[TargetResult], None],
    ) -> None:
        """Migrate ``targets`` in order, sending each only while ``keep_going()``.

        ``on_result`` gets each result as it arrives; targets never started get none.
        """
        pending = list(reversed(targets))
        running: dict[str, _Sent] = {}
        job_fields = dataclasses.asdict(job)
        wakeup = _Wakeup(self.app)
        try:
            while pending or running:
                while pending and len(running) < self.window and keep_going() and not self._lost:
                    target = pending.pop()
                    task_id = uuid()
                    wakeup.watch(task_id)
                    self.app.send_task(
                        TASK_NAME, args=(dataclasses.asdict(target), job_fields), task_id=task_id
                    )
                    running[task_id] = _Sent(target)
                if not running:
                    return
                wakeup.wait()
                for task_id in list(running):
                    result = self._poll(task_id, running[task_id])
                    if result is not None:
                        wakeup.forget(task_id)
                        del running[task_id]
                        self._progress = time.monotonic()
                        if result.result is not None:
                            on_result(result.result)
                if not self._lost and time.monotonic() - self._progress > LOST_AFTER_SECONDS:
                    self._check_workers(running)
                if self._lost:
                    self._revoke_unstarted(running)
        except FleetError:
            raise
        except Exception as exc:  # the broker or result backend went away
            raise FleetError(
                f"Lost the Celery broker or result backend during the run ({exc}); "
                f"{len(running)} target(s) may still be migrating: run the same command again "
                "when it is back."
            ) from None
        finally:
            wakeup.close()

    def _poll(self, task_id: str, sent: _Sent) -> _Done | None:
        """The task's outcome when it has one (``_Done(None)``: dropped unreported)."""
        meta = self.app.backend.get_task_meta(task_id)
        state = meta["status"]
        target = sent.target
        if state == states.SUCCESS:
            self.app.backend.forget(task_id)
            return _Done(TargetResult(target, **meta["result"]))
        if state == states.REVOKED and sent.revoked is not None:
            self.app.backend.forget(task_id)  # we revoked it, and a worker skipped it
            return self._unstarted(target)
        if state in states.READY_STATES:  # FAILURE, REVOKED: the task itself broke
            self.app.backend.forget(task_id)
            exc = meta["result"]
            error = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else state
            return _Done(TargetResult(target, FAILED, error=f"the Celery task failed: {error}"))
        now = time.monotonic()
        if state == states.STARTED and isinstance(meta["result"], dict):
            info = meta["result"]
            sent.hostname = info.get("hostname") or sent.hostname
            sent.revoked = None  # it started after all: wait for it
            if info.get("beat") != sent.beat:
                sent.beat, sent.beat_seen = info.get("beat", -1), now
                self._progress = now
            elif now - sent.beat_seen > LOST_AFTER_SECONDS:
                self._lost = True
                return _Done(
                    TargetResult(
                        target,
                        FAILED,
                        error=f"the Celery worker {sent.hostname} stopped while migrating it "
                        f"(no heartbeat for {LOST_AFTER_SECONDS:g}s); run again",
                    )
                )
        elif sent.revoked is not None and now - sent.revoked > _REVOKE_GRACE_SECONDS:
            return self._unstarted(target)
        return None

    def _unstarted(self, target: FleetTarget) -> _Done:
        """A target revoked before it started: not started (after a lost worker,
        which is reported), or failed (no worker at all: say so)."""
        if self._unstarted_error is None:
            return _Done(None)
        return _Done(TargetResult(target, FAILED, error=self._unstarted_error))

    def _check_workers(self, running: dict[str, _Sent]) -> None:
        """Nothing moved for a while and no task runs: is any worker left?"""
        self._progress = time.monotonic()
        if any(sent.beat >= 0 for sent in running.values()):
            return  # a running task's heartbeat decides about its worker
        if not self.app.control.ping(timeout=WORKER_TIMEOUT):
            # Every worker is gone: what is queued will not start.
            self._lost = True
            self._unstarted_error = (
                f"no Celery worker answered for {LOST_AFTER_SECONDS:g}s, so its task was "
                "revoked; start workers and run again"
            )

    def _revoke_unstarted(self, running: dict[str, _Sent]) -> None:
        """After a lost worker: targets sent but not started will not start (a worker
        that died may hold them); a re-run does them."""
        unstarted = [
            task_id for task_id, sent in running.items() if sent.beat < 0 and sent.revoked is None
        ]
        if unstarted:
            self.app.control.revoke(unstarted)
            now = time.monotonic()
            for task_id in unstarted:
                running[task_id].revoked = now


@dataclasses.dataclass(frozen=True)
class _Done:
    """A task that is over; ``result`` ``None``: it never started (not reported)."""

    result: TargetResult | None


def _broker(connection: Any) -> str:
    """The broker's URL for messages: its password masked (``**``), and no mask
    where there is none to hide."""
    uri: str = connection.as_uri()
    return uri if connection.password else uri.replace(":**@", "@").replace("//@", "//")


def _concurrency(stats: dict[str, Any]) -> int:
    """A worker's process slots, from ``celery inspect stats`` (1 for a solo pool)."""
    pool = stats.get("pool") or {}
    value = pool.get("max-concurrency") or 1
    return int(value)
