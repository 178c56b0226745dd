"""Sphinx configuration for the django-alembic-ops documentation.

Build: ``sphinx-build -n -W --keep-going -b html docs docs/_build/html``
(``scripts/test.sh`` does; warnings, broken references included, are errors).
"""

import os
import sys
from pathlib import Path

import django

# autodoc imports django_alembic_ops.api, which needs configured Django
# settings: use the example project's.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "example_project")]
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
django.setup()

from django_alembic_ops import __version__  # noqa: E402

project = "django-alembic-ops"
author = "django-alembic-ops contributors"
copyright = "django-alembic-ops contributors"
release = __version__
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc"]
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = f"django-alembic-ops {release}"

autodoc_member_order = "bysource"
autodoc_typehints_format = "short"

# No intersphinx (the docs build offline), so references to Django, Alembic,
# SQLAlchemy and the standard library, in signatures and in the package's
# docstrings, cannot resolve; nitpicky mode would report each one. Ignore
# exactly those; a broken reference to this project's own objects still fails.
nitpick_ignore_regex = [
    (r"py:(class|func|mod|meth|data|exc|obj|attr)", r"(alembic|django|sqlalchemy)(\..*)?"),
    (r"py:(class|data|obj)", r"(typing|collections\.abc|datetime|io|pathlib)\..*"),
    # An internal module named by the docstring of django_alembic_ops.errors.
    (r"py:mod", r"django_alembic_ops\.management\.base"),
]
