"""The machine a figure was measured on, named the same way by benchmarks and training records."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (``unknown`` where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_summary() -> str:
    """``<cpu model>, <n> CPUs``: enough to tell the hosts of two figures apart."""
    return f"{cpu_name()}, {os.cpu_count()} CPUs"


def cpu_vendor() -> str:
    """``amd``, ``intel`` or empty: results of one day from both kinds of host keep apart."""
    name = cpu_name()
    return next((v.lower() for v in ("AMD", "Intel") if v in name), "")


def result_name(kind: str) -> str:
    """``<date>[-<vendor>]-<kind>``: the stem of a benchmark's result files."""
    vendor = cpu_vendor()
    return f"{time.strftime('%Y-%m-%d')}{'-' + vendor if vendor else ''}-{kind}"
