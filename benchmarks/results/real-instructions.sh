#!/bin/bash
# As run on 2026-12-06 (the session's scratch paths: /tmp/realgen holds the harness's generated
# projects, /tmp/realgen/before a byte-compiled `git archive a627d6c django_alembic_ops`).
# Instructions (callgrind) of each tool's full upgrade / --sql, on fresh databases.
. /work/main/.pgenv
PY=/work/main/.venv/bin/python
P="psql -q -h $OPS_TEST_PG_HOST -p $OPS_TEST_PG_PORT -U postgres"
export BENCH_PG_HOST=$OPS_TEST_PG_HOST BENCH_PG_PORT=$OPS_TEST_PG_PORT BENCH_PG_USER=postgres
V() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | grep -E "Collected" | awk '{print $4}'; }
fresh() { if [ "$1" = sqlite ]; then rm -f /tmp/realgen/ic.sqlite3; else $P -c "drop database if exists ic_db" -c "create database ic_db" 2>/dev/null; fi; }
for backend in postgresql sqlite; do
  if [ $backend = sqlite ]; then export BENCH_DB_BACKEND=sqlite BENCH_DB_NAME=/tmp/realgen/ic.sqlite3 BENCH_ALEMBIC_URL=sqlite:////tmp/realgen/ic.sqlite3;
  else export BENCH_DB_BACKEND=postgresql BENCH_DB_NAME=ic_db BENCH_ALEMBIC_URL=postgresql+psycopg://postgres@$OPS_TEST_PG_HOST:$OPS_TEST_PG_PORT/ic_db; fi
  cd /tmp/realgen/real-300/ops
  fresh $backend; echo "real $backend ops-after $(PYTHONPATH=/work/main V $PY manage.py opsmigrate)"
  fresh $backend; echo "real $backend ops-before $(PYTHONPATH=/tmp/realgen/before V $PY manage.py opsmigrate)"
  cd ../alembic; fresh $backend; echo "real $backend alembic $(PYTHONPATH=/work/main V $PY -m alembic -c alembic.ini upgrade heads)"
  cd ../django; fresh $backend; echo "real $backend django $(PYTHONPATH=/work/main V $PY manage.py migrate realdj)"
done
cd /tmp/realgen/history-1000/ops; export BENCH_DB_BACKEND=postgresql BENCH_DB_NAME=ic_db
echo "sql pg ops-after $(PYTHONPATH=/work/main V $PY manage.py opsmigrate --sql)"
echo "sql pg ops-before $(PYTHONPATH=/tmp/realgen/before V $PY manage.py opsmigrate --sql)"
cd ../alembic; echo "sql pg alembic $(PYTHONPATH=/work/main V $PY -m alembic -c alembic.ini upgrade heads --sql)"
cd /tmp/realgen/real-300/ops
echo "startup ops $(PYTHONPATH=/work/main DJANGO_SETTINGS_MODULE=benchsettings V $PY -c 'import os,sys; sys.path.insert(0, os.getcwd()); import django; django.setup(); import django_alembic_ops.management.commands.opsmigrate, django_alembic_ops.api, alembic.operations, alembic.runtime.environment')"
echo "startup alembic $(PYTHONPATH=/work/main V $PY -c 'import alembic.config, alembic.command, alembic.operations, alembic.runtime.environment')"
$P -c "drop database if exists ic_db"
echo done
