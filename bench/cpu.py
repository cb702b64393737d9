"""CPU time of processes and their trees, read from /proc (Linux only).

A benchmark samples `processes()` before and after its window and subtracts: a tree's
figure includes the children that ended meanwhile (their time moves to the parent that
reaped them), so a process that gunicorn or Celery replaces mid-window is not lost.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICK = 1 / os.sysconf("SC_CLK_TCK")  # seconds per clock tick, the unit of /proc's times


@dataclass(frozen=True)
class Process:
    """One line of /proc/<pid>/stat: `own` is its user + system CPU seconds (all its
    threads, ended ones included), `reaped` that of its children it has waited for."""

    pid: int
    ppid: int
    name: str
    own: float
    reaped: float


def processes() -> dict[int, Process]:
    """Every process visible now, by pid."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # a process that ended meanwhile
            continue
        # The name is in parentheses and may hold spaces or parentheses itself.
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
        pid = int(stat.parent.name)
        table[pid] = Process(
            pid, int(fields[1]), name, (utime + stime) * TICK, (cutime + cstime) * TICK
        )
    return table


def tree_seconds(table: dict[int, Process], root: int) -> float:
    """CPU seconds spent so far by `root` and every descendant, reaped ones included;
    0 when `root` is not in `table`."""
    children: dict[int, list[int]] = {}
    for process in table.values():
        children.setdefault(process.ppid, []).append(process.pid)
    total, pending = 0.0, [root] if root in table else []
    while pending:
        process = table[pending.pop()]
        total += process.own + process.reaped
        pending.extend(children.get(process.pid, []))
    return total


def roots_named(table: dict[int, Process], name: str) -> list[int]:
    """The processes called `name` whose parent is not: the PostgreSQL postmaster, say,
    whose backends and helpers are then its tree."""
    return [
        p.pid
        for p in table.values()
        if p.name == name and (p.ppid not in table or table[p.ppid].name != name)
    ]


def machine_busy_seconds() -> float:
    """CPU seconds every core of this machine has spent busy since boot (/proc/stat):
    whatever else runs beside a benchmark shows as the difference from its parts."""
    user, nice, system, _idle, _iowait, irq, softirq = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]
    )
    return (user + nice + system + irq + softirq) * TICK
