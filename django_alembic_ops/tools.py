"""External command-line tools (ruff, black, squawk): where they are installed."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def executable(tool: str) -> str | None:
    """The path of ``tool``'s executable, or ``None`` when it is not installed.

    First the one installed with the running interpreter, next to it: a
    virtualenv's ``bin/`` is often not on ``PATH`` (``.venv/bin/python
    manage.py ...``, CI in a bare environment); then ``PATH``.
    """
    if sys.executable:  # empty when Python is embedded
        beside = Path(sys.executable).parent / (tool + (".exe" if os.name == "nt" else ""))
        if beside.is_file() and os.access(beside, os.X_OK):
            return str(beside)
    return shutil.which(tool)
