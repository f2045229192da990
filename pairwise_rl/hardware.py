"""What machine this is: the cores a process may use and the CPU type, read from what the system reports.

The pool this project runs on mixes CPU types (an AVX-512 machine with native bf16 dot products next to an
AVX2-only one): float rounding differs between them, and so do speeds by about 2x. Every benchmark, artifact and
result records `machine()`, so a number is never compared across types by accident, and every choice that depends
on the hardware (precision, threads, how many setups run at once) is made here from what the CPU reports.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path
from typing import Dict, List

# The flags that change what a CPU computes fast (and how it rounds): vector width and native bf16 / AMX units.
FLAGS_THAT_MATTER = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container or `taskset` narrows), not the
    machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@lru_cache(maxsize=None)
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _first(field: str) -> str:
    for line in _cpuinfo().splitlines():
        if line.split(":", 1)[0].strip() == field:
            return line.split(":", 1)[1].strip()
    return ""


@lru_cache(maxsize=None)
def cpu_flags() -> frozenset:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo does not exist)."""
    return frozenset(_first("flags").split())


def cpu_type(flags: frozenset, model_name: str, family: str, model: str) -> str:
    """A short label for the CPU type: 'AMD EPYC (family 25 model 17; avx512_bf16)'. Pure, for the tests."""
    vector = next((f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f in flags), "no avx2")
    where = f"family {family} model {model}" if family and model else platform.machine()
    return f"{model_name or platform.processor() or platform.machine()} ({where}; {vector})"


@lru_cache(maxsize=None)
def machine() -> Dict[str, object]:
    """The record kept beside every measured number: the CPU's name, family / model, the flags that matter, the
    kernels torch dispatches to, and the cores this process may use."""
    import torch

    flags = cpu_flags()
    record: Dict[str, object] = {
        "cpu": cpu_type(flags, _first("model name"), _first("cpu family"), _first("model")),
        "model_name": _first("model name"), "family": _first("cpu family"), "model": _first("model"),
        "flags": {flag: flag in flags for flag in FLAGS_THAT_MATTER},
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "usable_cores": usable_cores(),
    }
    if torch.cuda.is_available():
        record["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return record


def differing_types(records: List[Dict[str, object]]) -> List[str]:
    """The distinct CPU labels among machine records (records without one are skipped): more than one means
    the numbers were measured on different CPU types."""
    return sorted({str(r["cpu"]) for r in records if r and r.get("cpu")})


def threads_per_job(jobs: int) -> int:
    """Torch threads for each of `jobs` jobs running side by side, so that jobs x threads <= the usable cores
    (joblib's convention: -1 means one job per core, -2 all cores but one, ...)."""
    cores = usable_cores()
    jobs = int(jobs)
    if jobs < 0:
        jobs = max(1, cores + 1 + jobs)
    if jobs == 0:
        raise ValueError("hydra.launcher.n_jobs: must not be 0 (-1 = one job per core)")
    return max(1, cores // jobs)
