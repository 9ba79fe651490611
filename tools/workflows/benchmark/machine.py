"""The machine a benchmark ran on, and what it can reach: instruction sets, the kernels PyTorch
dispatched to, forced instruction sets, the GEMM roofline, matrix work and per-op profiles.

Instruction sets. x86 CPUs differ in the vector units PyTorch's libraries use: AVX2 (256-bit),
AVX-512 (512-bit), AVX512-BF16 and AMX (bf16 matrix tiles). ``cpu_info()`` reads them from
``/proc/cpuinfo`` and records the level ATen dispatched to (``torch.backends.cpu
.get_cpu_capability()``), so every result says where it was measured.

Forcing an instruction set. Three libraries pick their kernels at load time, each from its own
environment variable: ATen's element-wise and reduction kernels (``ATEN_CPU_CAPABILITY``), oneDNN's
convolutions and bf16 matrix products (``ONEDNN_MAX_CPU_ISA``) and MKL's float32 GEMM, which
serves ``nn.Linear`` and ``matmul`` (``MKL_ENABLE_INSTRUCTIONS``). Capping all three (``ISA_ENV``)
makes an AVX-512 machine run the kernels an AVX2-only one runs; the variables must be set before
torch loads, so a forced row runs in a child process (``isa_environment``).
"""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

__all__ = ["ISA_ENV", "ISA_CHOICES", "cpu_info", "isa_environment", "roofline", "step_gflop",
           "profile_step", "sync"]

# --isa NAME -> the variables that cap every kernel library at that level. "default" caps
# nothing: each library uses the best the CPU has (AMX for bf16 where present).
ISA_ENV: dict[str, dict[str, str]] = {
    "default": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
               "MKL_ENABLE_INSTRUCTIONS": "AVX512"},
}
ISA_CHOICES = tuple(ISA_ENV)
# the instruction set a forced level needs (a CPU without it cannot be forced up to it)
_ISA_NEEDS = {"avx2": "avx2", "avx512": "avx512"}
_FLAGS = {"avx2": "avx2", "avx512": "avx512f", "avx512_bf16": "avx512_bf16", "amx": "amx_tile"}


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:  # not Linux: the model name from platform, no flags
        pass
    return model, flags


def cpu_info() -> dict[str, Any]:
    """The CPU (model name, CPUs usable, instruction sets present), the level ATen dispatches to
    in this process, the forcing variables set, and the load average."""
    model, flags = _cpuinfo()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"cpu_model": model, "nproc": usable,
            "isa": {name: flag in flags for name, flag in _FLAGS.items()},
            "torch_dispatch": torch.backends.cpu.get_cpu_capability(),
            "forced": {k: os.environ[k] for k in sorted(ISA_ENV["avx2"]) if k in os.environ},
            "load_average": [round(v, 2) for v in os.getloadavg()],
            "torch": torch.__version__}


def isa_environment(isa: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process' environment) with the variables of ``--isa isa``;
    ValueError where the CPU lacks that instruction set."""
    if isa not in ISA_ENV:
        raise ValueError(f"--isa {isa!r}: use one of {', '.join(ISA_CHOICES)}")
    needed = _ISA_NEEDS.get(isa)
    if needed is not None and not cpu_info()["isa"][needed]:
        raise ValueError(f"--isa {isa}: this CPU has no {needed.upper()}; it can only be run "
                         f"at a lower level")
    env = dict(os.environ if base is None else base)
    for key in ISA_ENV["avx2"]:
        env.pop(key, None)  # a forced parent must not leak its level into a default child
    env.update(ISA_ENV[isa])
    if isa != "default":
        # Inductor's cache is not keyed on the vector width it generated code for: a step
        # compiled at the CPU's own level and loaded again under a forced AVX2 level aborts
        # ("index out of bounds" in a 16-lane kernel). Each forced level gets its own cache.
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
        root = env.get("TORCHINDUCTOR_CACHE_DIR") or default_cache_dir()
        env["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(root, f"isa-{isa}")
    return env


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def roofline(device: str, dtype: str, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s this machine reaches, at the current thread count, for a large matrix product
    (2048^3) and a dense 3x3 convolution (128 -> 128 channels, 56x56, batch 8, channels last)
    in ``dtype``: the best of ``repeats`` after one warm-up. ``gemm_cpu_gflops_per_s`` is the
    GEMM's rate over its process CPU time per thread (on CPU), which a shared machine's other
    jobs disturb far less than the wall clock."""
    kind = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(2048, 2048, generator=gen).to(device, kind) for _ in range(2))
    x = torch.randn(8, 128, 56, 56, generator=gen).to(device, kind).contiguous(
        memory_format=torch.channels_last)
    w = torch.randn(128, 128, 3, 3, generator=gen).to(device, kind).contiguous(
        memory_format=torch.channels_last)
    work = {"gemm_gflops_per_s": (lambda: a @ b, 2 * 2048 ** 3),
            "conv_gflops_per_s": (lambda: F.conv2d(x, w, padding=1),
                                  2 * 8 * 56 * 56 * 128 * 128 * 9)}
    rates = {}
    threads = torch.get_num_threads()
    with torch.inference_mode():
        for name, (fn, flops) in work.items():
            fn()
            sync(device)
            best, best_cpu = float("inf"), float("inf")
            for _ in range(repeats):
                start, start_cpu = time.perf_counter(), time.process_time()
                fn()
                sync(device)
                best = min(best, time.perf_counter() - start)
                best_cpu = min(best_cpu, time.process_time() - start_cpu)
            rates[name] = round(flops / best / 1e9, 1)
            if name.startswith("gemm") and device == "cpu":
                rates["gemm_cpu_gflops_per_s"] = round(flops / (best_cpu / threads) / 1e9, 1)
    return rates


def _conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation,
                        transposed, _output_padding, _groups, output_mask, out_shape=None,
                        **kwargs) -> int:
    # Each gradient of a convolution (input, weight) costs exactly the multiply-adds of its
    # forward. torch's own formula treats the weight gradient of a grouped convolution as dense,
    # counting a depthwise convolution's C times over.
    from torch.utils.flop_counter import conv_flop_count
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def step_gflop(step: Callable) -> float:
    """Matrix-op GFLOP of one call of ``step``: matrix products, convolutions and attention,
    forward and backward, 2 FLOPs per multiply-add (torch.utils.flop_counter)."""
    from torch.utils.flop_counter import FlopCounterMode
    fixed = {torch.ops.aten.convolution_backward: _conv_backward_flop}
    with FlopCounterMode(display=False, custom_mapping=fixed) as counter:
        step()
    return counter.get_total_flops() / 1e9


def profile_step(step: Callable, top: int) -> list[dict[str, Any]]:
    """The ``top`` ops by self CPU time in one call of ``step`` (torch.profiler, CPU activity)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return [{"op": e.key, "self_ms": round(e.self_cpu_time_total / 1e3, 2), "calls": e.count,
             "percent": round(100.0 * e.self_cpu_time_total / total, 1)} for e in events[:top]]
