"""How a fleet run looks: one line per target, and the summary.

Only text: the commands print it (``opsmigrate --tenants``,
``opsshowmigrations --tenants``), the Python API returns the results it is
made from.
"""

from __future__ import annotations

from collections.abc import Sequence

from .apply import AT_HEAD, FAILED, MIGRATED, NOT_STARTED, TargetResult


def target_line(result: TargetResult, verbosity: int = 1) -> str | None:
    """``  tenant_0042: applied 2 (0.31s)``; ``None`` when the target is not shown.

    Changed and failed targets are shown at verbosity 1; targets at head (and
    the reason a target was not started) from verbosity 2.
    """
    name = result.target.label
    if result.status == FAILED:
        where = f" {result.failed_migration}" if result.failed_migration else ""
        return f"  {name}: FAILED{where}: {result.error}"
    if result.status == MIGRATED:
        verb = "faked" if result.fake else "applied" if result.forward else "unapplied"
        return f"  {name}: {verb} {len(result.done)} ({result.elapsed:.2f}s)"
    if verbosity >= 2 and result.status == AT_HEAD:
        return f"  {name}: at head"
    return None


def summary(results: Sequence[TargetResult], elapsed: float) -> str:
    """``Fleet: 1000 targets: 998 at head, 1 migrated, 1 failed, 0 not started (12.3s)``."""
    counts = {status: 0 for status in (AT_HEAD, MIGRATED, FAILED, NOT_STARTED)}
    for result in results:
        counts[result.status] += 1
    parts = ", ".join(f"{count} {status}" for status, count in counts.items())
    return f"Fleet: {_targets(len(results))}: {parts} ({elapsed:.1f}s)"


def pending_line(label: str, pending: Sequence[str]) -> str:
    """``  tenant_0042: 2 pending: billing.0003_x, billing.0004_y`` (``opsshowmigrations``)."""
    return f"  {label}: {len(pending)} pending: {', '.join(pending)}"


def show_summary(total: int, behind: int, elapsed: float) -> str:
    """``Fleet: 1000 targets: 998 at head, 2 behind (0.4s)``."""
    return f"Fleet: {_targets(total)}: {total - behind} at head, {behind} behind ({elapsed:.1f}s)"


def progress_bar(done: int, total: int, width: int = 30) -> str:
    """``[#########.....................] 300/1000`` for a terminal."""
    filled = width * done // total if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def _targets(count: int) -> str:
    return f"{count} target" + ("" if count == 1 else "s")
