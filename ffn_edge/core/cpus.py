"""How many CPUs this process may use: the default for thread pools and data-loader workers."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The CPUs this process may run on (honours ``taskset`` / cgroup cpusets), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)
