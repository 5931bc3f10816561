"""Memory of a process tree (a server and the children it starts), read from /proc."""

from __future__ import annotations

from pathlib import Path


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return found


def tree_memory_mb(pid: int) -> tuple[float, float]:
    """Sum of RSS and sum of anonymous RSS over the process tree, in MB."""
    rss = anon = 0
    for member in tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue  # gone between the listing and the read
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("RssAnon:"):
                anon += int(line.split()[1])
    return rss / 1024, anon / 1024
