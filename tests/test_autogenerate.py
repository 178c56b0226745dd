"""opsmakemigration's autogenerate: round trips, scope, command options."""

from __future__ import annotations

import sys

import pytest
from django.apps import apps

from .conftest import Project

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def reinstall(project: Project, label: str) -> None:
    """Import app ``label``'s edited models afresh."""
    for name in list(sys.modules):
        if name == label or name.startswith(f"{label}."):
            del sys.modules[name]
    apps.all_models.pop(label, None)
    apps.clear_cache()
    project._install()
