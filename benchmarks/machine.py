"""The machine a benchmark ran on, for its header: CPU model, cores, the instruction sets that
decide a network's speed on a CPU, and the load average (other work slows every figure).

    from benchmarks.machine import machine_header
    print(machine_header())
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# Flags of /proc/cpuinfo that set the speed of fp32, int8 and bf16 convolutions.
SPEED_FLAGS = ("avx2", "avx512f", "avx_vnni", "avx512_vnni", "avx512_bf16", "avx512_fp16",
               "amx_tile", "amx_bf16", "amx_int8")


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, list[str]]:
    """The CPU's model name (with its family and model numbers, which a virtual machine's
    generic name hides) and which of ``SPEED_FLAGS`` it has (Linux; elsewhere the platform's
    processor string and no flags)."""
    name, flags = platform.processor() or platform.machine(), set()
    if not cpuinfo.is_file():
        return name, []
    fields: dict[str, str] = {}
    for line in cpuinfo.read_text().splitlines():
        if not line.strip():
            break  # the first processor is enough
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    if "model name" in fields:
        name = f"{fields['model name']} (family {fields.get('cpu family', '?')} model " \
               f"{fields.get('model', '?')})"
    flags = set(fields.get("flags", "").split())
    return name, [flag for flag in SPEED_FLAGS if flag in flags]


def machine_header() -> str:
    """One line: CPU model, cores usable by this process, speed flags, 1-minute load."""
    name, flags = cpu_info()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = f", load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    return (f"CPU: {name}, {cores} cores, flags: {' '.join(flags) or 'none of note'}"
            f"{load}")
