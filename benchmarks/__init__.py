"""Benchmark harness for django-alembic-ops (see benchmarks/README.md)."""
