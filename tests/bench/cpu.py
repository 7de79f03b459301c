"""CPU time spent by processes of this machine, read from /proc: what each part of a run costs.

A benchmark on a machine of two cores is bound by the CPU its processes share; the seconds
each spends per article say which part would have to shrink, and by how much, for a rate to
fit in the cores at all.
"""

from __future__ import annotations

import os
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process `pid` so far, all its threads, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces and parentheses; the fields after its last ")" do not.
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def cpu_of(pids: dict[str, int]) -> dict[str, float]:
    """`cpu_seconds` of each named process."""
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def ms_per_item(before: dict[str, float], after: dict[str, float], items: int) -> dict[str, float]:
    """Milliseconds of CPU each process spent per item between two `cpu_of` readings."""
    return {name: round((after[name] - before[name]) / items * 1000, 3) for name in before}
