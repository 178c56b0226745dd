"""``opsmigrate --executor celery``: fleet targets as Celery tasks on real workers.

Real processes: a Redis server (``scripts/start-redis.sh`` writes
``OPS_TEST_REDIS_URL``), ``celery -A celeryapp worker`` processes of a small
project (tests/test_fleet.py's :class:`FleetDeploy`) and that project's own
PostgreSQL database with tenant schemas. Without Celery or Redis the tests
skip, saying why; under ``OPS_REQUIRE_CELERY`` (CI) that is a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.test.utils import override_settings

from .conftest import Project
from .test_fleet import REPO, Fleet, FleetDeploy, lines, run_fleet, shop_and_billing

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def _require(reason: str) -> None:
    if os.environ.get("OPS_REQUIRE_CELERY"):
        pytest.fail(f"{reason}; OPS_REQUIRE_CELERY is set, so this is an error.")
    pytest.skip(reason)


def require_celery() -> None:
    """Skip (fail under ``OPS_REQUIRE_CELERY``) without Celery and the Redis client."""
    if importlib.util.find_spec("celery") is None or importlib.util.find_spec("redis") is None:
        _require("Celery is not installed (pip install -e '.[test]')")


@pytest.fixture
def redis_url() -> str:
    """A Redis database of this test process's own, emptied.

    Each pytest-xdist worker gets its own database number, so that workers,
    queues and remote-control replies of tests running at once never mix.
    """
    require_celery()
    base = os.environ.get("OPS_TEST_REDIS_URL")
    if not base:
        _require(
            "Redis not configured (set OPS_TEST_REDIS_URL, or run 'bash scripts/start-redis.sh', "
            "or 'bash scripts/test.sh', which starts a private server)"
        )
    import redis

    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    url = urlunsplit(urlsplit(base)._replace(path=f"/{1 + int(worker[2:])}"))
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        _require(f"Redis at {base} does not answer ({exc})")
    finally:
        client.close()
    return url


CELERY_APP = """
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

app = Celery("fleet")
app.conf.update(
    broker_url=os.environ["OPS_REDIS_URL"],
    result_backend=os.environ["OPS_REDIS_URL"],
    broker_connection_retry_on_startup=True,
    # A worker takes a task only when it has a free slot (the docs' advice).
    worker_prefetch_multiplier=1,
    worker_disable_prefetch=True,
)
if os.environ.get("OPS_AUTODISCOVER", "1") == "1":
    app.autodiscover_tasks()
"""

#: billing.0002: records which worker ran it (libpq's application_name is the
#: worker's PGAPPNAME), then takes its time.
WORKER_STEP = """
import time
from alembic import op
import sqlalchemy as sa

revision = "b0002"
down_revision = "b0001"

def upgrade():
    op.create_table(
        "billing_two", sa.Column("worker", sa.String(50)), sa.Column("backend", sa.Integer)
    )
    op.execute("INSERT INTO billing_runs (rev) VALUES ('b0002')")
    op.execute(
        "INSERT INTO billing_two (worker, backend) "
        "VALUES (current_setting('application_name'), pg_backend_pid())"
    )
    time.sleep({sleep})

def downgrade():
    op.drop_table("billing_two")
"""


FAILS_IN_FLEET_1 = """
from alembic import op
import sqlalchemy as sa

revision = "b0003"
down_revision = "b0002"

def upgrade():
    op.execute("INSERT INTO billing_runs (rev) VALUES ('b0003')")
    if op.get_bind().execute(sa.text("SELECT current_schema()")).scalar() == "fleet_1":
        raise RuntimeError("bad data in fleet_1")

def downgrade():
    pass
"""


class CeleryDeploy(FleetDeploy):
    """:class:`FleetDeploy` with a Celery app (``celeryapp.app``) and its workers."""

    def __init__(self, root: Path, database: dict[str, Any], redis_url: str) -> None:
        super().__init__(root, database, [f"fleet_{i}" for i in range(1, 7)])
        self.redis_url = redis_url
        with (root / "settings.py").open("a") as settings:
            settings.write('\nALEMBIC_OPS["CELERY_APP"] = "celeryapp.app"\n')
        (root / "celeryapp.py").write_text(textwrap.dedent(CELERY_APP))
        self.workers: dict[str, subprocess.Popen[bytes]] = {}

    def worker(self, name: str, *args: str, autodiscover: bool = True) -> subprocess.Popen[bytes]:
        """``celery -A celeryapp worker`` (solo pool: the task runs in this process)."""
        env = {
            "OPS_AUTODISCOVER": "1" if autodiscover else "0",
            **os.environ,
            "PYTHONPATH": f"{REPO}{os.pathsep}{self.root}",
            "DJANGO_SETTINGS_MODULE": "settings",
            "OPS_DB": json.dumps(self.database),
            "OPS_TENANTS": ",".join(self.tenants),
            "OPS_REDIS_URL": self.redis_url,
            "PGAPPNAME": name,
        }
        log = (self.root / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celeryapp", "worker"]
            + ["--pool", "solo", "--concurrency", "1", "-n", f"{name}@%h"]
            + ["--without-gossip", "--without-mingle", "--loglevel", "INFO", *args],
            cwd=self.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.workers[name] = process
        return process

    def wait_for_workers(self, count: int, timeout: float = 60) -> None:
        """Until ``count`` workers answer a ping."""
        from celery import Celery

        app = Celery(broker=self.redis_url)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if len(app.control.ping(timeout=0.5)) >= count:
                    return
                for name, process in self.workers.items():
                    assert process.poll() is None, self.log(name)
            raise AssertionError("workers did not answer:\n" + self.log(*self.workers))
        finally:
            app.close()

    def log(self, *names: str) -> str:
        return "\n".join((self.root / f"{name}.log").read_text() for name in names)

    def running_on(self, name: str) -> bool:
        """Is a task running on worker ``name``? (its heartbeat in the result backend)"""
        import redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            for key in client.scan_iter("celery-task-meta-*"):
                meta = json.loads(client.get(key) or "{}")
                info = meta.get("result")
                if (
                    meta.get("status") == "STARTED"
                    and isinstance(info, dict)
                    and str(info.get("hostname", "")).startswith(f"{name}@")
                ):
                    return True
            return False
        finally:
            client.close()

    def stop_workers(self) -> None:
        for process in self.workers.values():
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)

    def workers_of(self, schemas: list[str]) -> set[str]:
        return {self.query(f"SELECT worker FROM {schema}.billing_two")[0][0] for schema in schemas}


@pytest.fixture
def celery_deploy(
    tmp_path: Path, pg_alias: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CeleryDeploy]:
    """A fleet project on its own database, with a Celery app; its workers always stopped."""
    import uuid

    from .conftest import drop_server_databases, pg_execute, server_database

    # opsmigrate itself (FleetDeploy.start) needs the broker's address too.
    monkeypatch.setenv("OPS_REDIS_URL", redis_url)
    name = f"ops_celery_{uuid.uuid4().hex[:8]}"
    pg_execute(f"CREATE DATABASE {name}")
    deploy = CeleryDeploy(tmp_path, server_database(pg_alias, name), redis_url)
    try:
        yield deploy
    finally:
        deploy.stop_workers()
        drop_server_databases(pg_alias, name)


def summary_counts(out: str) -> dict[str, int]:
    """The numbers of the ``Fleet: ...`` summary line."""
    last = out.strip().splitlines()[-1]
    assert last.startswith("Fleet: "), out
    found = re.findall(r"(\d+) (at head|migrated|failed|not started)", last)
    return {status: int(count) for count, status in found}


def test_celery_workers_migrate_every_tenant_schema(celery_deploy: CeleryDeploy) -> None:
    deploy = celery_deploy
    deploy.script("billing", "0002_worker", WORKER_STEP.format(sleep=0.3))
    deploy.worker("w1")
    deploy.worker("w2")
    deploy.wait_for_workers(2)

    done = deploy.run("--executor", "celery")

    assert done.returncode == 0, done.stdout + done.stderr
    output = lines(done.stdout)
    # Results are printed as they arrive: the shared target first (it runs
    # before the tenants), then the tenants in the order they finished.
    assert output[0] == "  default: applied 1 (T)"
    assert sorted(output[1:-1]) == [f"  {schema}: applied 2 (T)" for schema in deploy.tenants]
    assert output[-1] == "Fleet: 7 targets: 0 at head, 7 migrated, 0 failed, 0 not started (T)"
    assert deploy.runs("public", "shop") == ["s0001"]
    assert deploy.heads("public") == ["s0001"]
    for schema in deploy.tenants:
        assert deploy.heads(schema) == ["b0002"]
        assert deploy.runs(schema) == ["b0001", "b0002"]
        assert deploy.has_table(schema, "billing_two")
    # Both workers took tenants, each on one connection for all of them (Celery's
    # Django fixup closes connections around every task; the fleet's task keeps its own).
    assert deploy.workers_of(deploy.tenants) == {"w1", "w2"}
    backends = {
        deploy.query(f"SELECT worker, backend FROM {schema}.billing_two")[0]
        for schema in deploy.tenants
    }
    assert len(backends) == 2, backends

    again = deploy.run("--executor", "celery")
    assert again.returncode == 0, again.stdout + again.stderr
    assert lines(again.stdout) == [
        "Fleet: 7 targets: 7 at head, 0 migrated, 0 failed, 0 not started (T)"
    ]

    # --canary: the canary fails on its worker, and no other target is sent.
    deploy.script("billing", "0003_fails_in_fleet_1", FAILS_IN_FLEET_1)
    canary = deploy.run("--executor", "celery", "--canary", "1")
    assert canary.returncode == 1
    output = lines(canary.stdout)
    assert re.fullmatch(
        r"  fleet_1: FAILED billing\.0003_fails_in_fleet_1: .*bad data in fleet_1.*", output[0]
    ), output
    assert output[1:] == ["Fleet: 7 targets: 1 at head, 0 migrated, 1 failed, 5 not started (T)"]
    for schema in deploy.tenants:
        assert deploy.heads(schema) == ["b0002"]


def test_a_worker_killed_mid_fleet_and_a_rerun_finishes_each_target_once(
    celery_deploy: CeleryDeploy,
) -> None:
    deploy = celery_deploy
    first = deploy.run()  # b0001 everywhere, on the local executor
    assert first.returncode == 0, first.stdout + first.stderr
    deploy.script("billing", "0002_worker", WORKER_STEP.format(sleep=3))
    killed = deploy.worker("w1")
    deploy.worker("w2")
    deploy.wait_for_workers(2)

    process = deploy.start("--executor", "celery")
    deadline = time.monotonic() + 60
    while not deploy.running_on("w1"):
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    out, err = process.communicate(timeout=180)

    assert process.returncode == 1, out + err
    failed = [line for line in out.splitlines() if ": FAILED" in line]
    assert len(failed) == 1, out
    assert re.fullmatch(
        r"  (fleet_\d): FAILED: the Celery worker w1@\S+ stopped while migrating it "
        r"\(no heartbeat for 10s\); run again",
        failed[0],
    ), failed
    lost = failed[0].split(":")[0].strip()
    counts = summary_counts(out)
    assert counts["at head"] == 1  # the shared target
    assert counts["failed"] == 1
    assert counts["migrated"] + counts["not started"] == 5
    assert "The fleet is not done: 1 failed" in err
    # No half-applied migration: each tenant at its old head or its new one.
    behind = []
    for schema in deploy.tenants:
        heads = deploy.heads(schema)
        assert heads in (["b0001"], ["b0002"]), (schema, heads)
        new = heads == ["b0002"]
        assert deploy.has_table(schema, "billing_two") is new
        assert deploy.runs(schema) == (["b0001", "b0002"] if new else ["b0001"])
        if not new:
            behind.append(schema)
    assert lost in behind  # its transaction died with its worker

    deploy.script("billing", "0002_worker", WORKER_STEP.format(sleep=0))
    rerun = deploy.run("--executor", "celery")  # w2 is left
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert sorted(lines(rerun.stdout)[:-1]) == [f"  {schema}: applied 1 (T)" for schema in behind]
    for schema in deploy.tenants:
        assert deploy.heads(schema) == ["b0002"]
        # Each migration applied once per tenant, whichever run and worker did it.
        assert deploy.runs(schema) == ["b0001", "b0002"]
    assert deploy.workers_of(behind) == {"w2"}


def test_workers_without_the_task_or_its_queue_are_a_one_line_error(
    celery_deploy: CeleryDeploy,
) -> None:
    celery_deploy.worker("w1", autodiscover=False)
    celery_deploy.wait_for_workers(1)

    done = celery_deploy.run("--executor", "celery")

    assert done.returncode == 1
    assert re.fullmatch(
        r"CommandError: No Celery worker \(w1@\S+\) has the task "
        r"'django_alembic_ops\.tasks\.migrate_target': the Celery app must call "
        r"app\.autodiscover_tasks\(\) \(or import django_alembic_ops\.tasks\); restart the "
        r"workers\.\n",
        done.stderr,
    ), done.stderr
    assert not celery_deploy.query("SELECT to_regclass('public.shop_runs')")[0][0]

    # A worker with the task, reading another queue than the task's.
    celery_deploy.worker("w2", "--queues", "elsewhere")
    celery_deploy.wait_for_workers(2)
    done = celery_deploy.run("--executor", "celery")
    assert done.returncode == 1
    assert re.fullmatch(
        r"CommandError: No Celery worker \(w1@\S+, w2@\S+\) reads the queue 'celery' that the "
        r"task 'django_alembic_ops\.tasks\.migrate_target' is routed to: start workers with "
        r"'-Q celery'\.\n",
        done.stderr,
    ), done.stderr
    assert not celery_deploy.query("SELECT to_regclass('public.shop_runs')")[0][0]


# -- one-line errors, in process ----------------------------------------------------------

NOT_AN_APP = object()


def _app(broker: str) -> Any:
    from celery import Celery

    return Celery("tests", broker=broker, backend=broker)


@pytest.fixture
def celery_app_setting(request: pytest.FixtureRequest) -> Iterator[Any]:
    """``ALEMBIC_OPS["CELERY_APP"]`` of the test (parametrized indirectly): a
    dotted path, or ``"no workers"`` / ``"unreachable"`` for an app on a Redis
    without workers / on a port where nothing listens."""
    value = request.param
    if value not in ("no workers", "no backend", "unreachable"):
        yield value
        return
    require_celery()
    if value == "no workers":
        app = _app(request.getfixturevalue("redis_url"))
    elif value == "no backend":
        from celery import Celery

        app = Celery("tests", broker=request.getfixturevalue("redis_url"))
    else:
        app = _app("redis://:secret@127.0.0.1:1/0")
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def celery_settings(celery_app_setting: Any) -> Iterator[None]:
    """A fleet's ``ALEMBIC_OPS`` with the test's ``CELERY_APP``, entered before
    ``project`` and left after it (see tests/test_fleet.py's ``fleet_settings``)."""
    settings = {
        "TENANTS": "tests.test_fleet.tenant_list",
        "TENANT_APPS": ["billing"],
        "CELERY_APP": celery_app_setting,
    }
    with override_settings(ALEMBIC_OPS=settings):
        yield


@pytest.fixture
def behind(celery_settings: None, project: Project, pg_alias: str) -> Iterator[Fleet]:
    """A PostgreSQL fleet with one tenant behind head."""
    from .test_fleet import TENANTS

    fleet = Fleet(pg_alias, project)
    shop_and_billing(project)
    fleet.tenants("fleet_one")
    try:
        yield fleet
    finally:
        TENANTS.clear()
        fleet.drop_schemas()


def test_without_celery_installed_the_celery_executor_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "celery", None)  # as if it were not installed
    out, error = run_fleet("--all-databases", "--executor", "celery")
    assert error == (
        "--executor celery needs Celery: pip install 'django-alembic-ops[celery]' "
        "(or use --executor local)."
    )


def test_executor_without_a_fleet_is_refused() -> None:
    out, error = run_fleet("--executor", "celery")
    assert error == "--executor runs a fleet: add --tenants, --tenant NAME or --all-databases."


def celery_error(fleet: Fleet) -> str | None:
    require_celery()
    out, error = run_fleet("--tenants", "--database", fleet.alias, "--executor", "celery")
    assert fleet.tables("billing_invoice") == set()  # nothing ran
    return error


@pytest.mark.parametrize("celery_app_setting", ["tests.nowhere.app"], indirect=True)
def test_a_celery_app_that_cannot_be_imported(behind: Fleet) -> None:
    assert celery_error(behind) == (
        "ALEMBIC_OPS['CELERY_APP'] cannot be imported: No module named 'tests.nowhere'."
    )


@pytest.mark.parametrize(
    "celery_app_setting", ["tests.test_fleet_celery.NOT_AN_APP"], indirect=True
)
def test_a_celery_app_that_is_not_one(behind: Fleet) -> None:
    assert celery_error(behind) == (
        "ALEMBIC_OPS['CELERY_APP'] is 'tests.test_fleet_celery.NOT_AN_APP', not a Celery app; "
        "name the app, e.g. 'myproject.celery.app'."
    )


@pytest.mark.parametrize("celery_app_setting", ["no workers"], indirect=True)
def test_no_worker_answering_is_a_one_line_error(behind: Fleet, redis_url: str) -> None:
    started = time.monotonic()
    assert celery_error(behind) == (
        f"No Celery worker answered within 2s on the broker {redis_url}: start workers "
        "('celery -A <your app> worker') and run the same command again."
    )
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("celery_app_setting", ["no backend"], indirect=True)
def test_an_app_without_a_result_backend_is_a_one_line_error(behind: Fleet) -> None:
    assert celery_error(behind) == (
        "--executor celery reads each target's result from the Celery result backend, and the "
        "Celery app has none: set CELERY_RESULT_BACKEND (e.g. the broker's Redis URL)."
    )


@pytest.mark.parametrize("celery_app_setting", ["unreachable"], indirect=True)
def test_an_unreachable_broker_is_a_one_line_error(behind: Fleet) -> None:
    error = celery_error(behind)
    assert error is not None
    assert error.startswith("Cannot reach the Celery broker redis://:**@127.0.0.1:1/0: "), error
    assert "secret" not in error and "\n" not in error


def test_the_package_does_not_import_celery_unless_the_celery_executor_runs() -> None:
    code = textwrap.dedent(
        """
        import sys
        import django
        django.setup()
        import django_alembic_ops.api, django_alembic_ops.fleet, django_alembic_ops.management.fleet
        from django_alembic_ops.management.commands.opsmigrate import Command
        Command().create_parser("manage.py", "opsmigrate").parse_args(
            ["--tenants", "--executor", "celery"]
        )
        assert "celery" not in sys.modules, "celery was imported"
        """
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_sender_wakes_as_soon_as_a_task_in_flight_stores_a_state(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Redis result backend publishes each state it stores: the sender looks at the
    results then, not only at its next poll (a worker would otherwise idle meanwhile)."""
    import threading

    from celery import states

    from django_alembic_ops.fleet import celery as fleet_celery

    monkeypatch.setattr(fleet_celery, "_POLL_SECONDS", 5.0)
    app = _app(redis_url)
    wakeup = fleet_celery._Wakeup(app)
    try:
        wakeup.watch("task-1")
        timer = threading.Timer(
            0.2, app.backend.store_result, ("task-1", {"beat": 0}, states.STARTED)
        )
        started = time.monotonic()
        timer.start()
        wakeup.wait()
        woke_after = time.monotonic() - started
        timer.join()
        assert 0.15 < woke_after < 2.5, woke_after  # the publish, not the 5 s poll

        wakeup.forget("task-1")
        app.backend.store_result("task-1", {"beat": 1}, states.STARTED)
        started = time.monotonic()
        monkeypatch.setattr(fleet_celery, "_POLL_SECONDS", 0.5)
        wakeup.wait()  # no longer watched: the poll's whole interval
        assert time.monotonic() - started >= 0.45
    finally:
        wakeup.close()
        app.close()
