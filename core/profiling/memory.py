"""Peak memory of a stretch of work, on the device that does it, and out-of-memory recognised as such.

On GPU the figure is torch's peak allocation on the device. On CPU it is the process's peak
resident set (VmHWM), which Linux lets a process reset through /proc/self/clear_refs, so each
measured stretch gets its own peak rather than the process's lifetime maximum.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import re
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_RESET_PEAK_RSS = "5"
_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if ctypes.util.find_library("c") else None
_OOM_TEXTS = ("out of memory", "can't allocate memory", "cannot allocate memory", "outofmemoryerror", "running low on memory")


def reset_peak(device: torch.device) -> None:
    """Start a new measured stretch from what the process really holds now."""
    release(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        _CLEAR_REFS.write_text(_RESET_PEAK_RSS)


def peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    return _status_kib("VmHWM") * 1024


def current_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    return _status_kib("VmRSS") * 1024


def available_bytes(device: torch.device) -> int:
    """What the device could still give: free GPU memory, or the host's MemAvailable."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    meminfo = Path("/proc/meminfo").read_text()
    return int(re.search(r"MemAvailable:\s+(\d+) kB", meminfo).group(1)) * 1024


def is_out_of_memory(error: BaseException | str) -> bool:
    """torch's CUDA OOM, the CPU allocator's failure, or Ray's memory monitor killing a worker."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    text = str(error) if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return any(marker in text.lower() for marker in _OOM_TEXTS)


def release(device: torch.device) -> None:
    """Hand back freed memory that allocators keep cached, so that it stops counting as held.

    glibc keeps freed heap memory in the process (resident) until malloc_trim; without this a
    large step would inflate the measured peak of every smaller one after it.
    """
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif _LIBC is not None:
        _LIBC.malloc_trim(0)


def _status_kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+) kB", _STATUS.read_text()).group(1))
