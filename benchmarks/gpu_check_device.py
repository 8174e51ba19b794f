"""Device helpers of ``benchmarks/gpu_check.py``: peak memory, synchronisation, the bf16 matmul peak, device info."""

from __future__ import annotations

import contextlib
import gc
import os
import re
import statistics
import subprocess
import time
from pathlib import Path

from gpu_check_flops import matmul_flops

GIB = 1024 ** 3


# ----------------------------------------------------------------- device helpers
class DeviceMemory:
    """Peak memory of a stretch of work: CUDA allocator statistics, or on CPU the process's
    resident high-water mark (``/proc/self/clear_refs`` reset; Linux) above its size at the start."""

    def __init__(self, device: str):
        self.device = device
        self.start_bytes = 0

    def start(self) -> None:
        import torch

        gc.collect()
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self.start_bytes = torch.cuda.memory_allocated()
        else:
            with contextlib.suppress(OSError):
                Path("/proc/self/clear_refs").write_text("5")
            self.start_bytes = _proc_status("VmRSS")

    def read(self) -> dict:
        """``peak_gib`` (allocated / resident peak), ``reserved_gib`` (CUDA) and ``start_gib``."""
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            return {"peak_gib": torch.cuda.max_memory_allocated() / GIB,
                    "reserved_gib": torch.cuda.max_memory_reserved() / GIB, "start_gib": self.start_bytes / GIB}
        peak = _proc_status("VmHWM")
        return {"peak_gib": peak / GIB, "reserved_gib": None, "start_gib": self.start_bytes / GIB,
                "peak_above_start_gib": (peak - self.start_bytes) / GIB}


def _proc_status(key: str) -> int:
    try:
        text = Path("/proc/self/status").read_text()
        return int(re.search(rf"{key}:\s+(\d+)", text).group(1)) * 1024
    except (OSError, AttributeError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def synchronize(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def matmul_peak(device: str, n: int, iters: int) -> dict:
    """Best bf16 ``[n, n] @ [n, n]`` throughput in FLOP/s over ``iters`` timed products."""
    import torch

    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(iters):
        synchronize(device)
        started = time.perf_counter()
        a @ b
        synchronize(device)
        times.append(time.perf_counter() - started)
    best = min(times)
    return {"n": n, "iters": iters, "best_s": best, "median_s": statistics.median(times),
            "flops_per_s": matmul_flops(n) / best, "median_flops_per_s": matmul_flops(n) / statistics.median(times)}


def device_info(device: str) -> dict:
    import torch

    from machine import base_machine_info

    info = {**base_machine_info(), "device": device}
    for name in ("transformers", "deepspeed"):
        try:
            info[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 (a missing or broken package is reported, not fatal here)
            info[name] = None
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(name=props.name, memory_gib=props.total_memory / GIB, cuda=torch.version.cuda,
                    capability=f"{props.major}.{props.minor}", multiprocessors=props.multi_processor_count,
                    driver=_driver_version())
    else:
        info.update(name=f"cpu ({info['cpu']}, {info['cores']} cores)",
                    memory_gib=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB, cuda=None, driver=None)
    return info


def _driver_version() -> str | None:
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30)
        return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None
