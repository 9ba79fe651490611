"""tools/benchmark.py: every result names the CPU's instruction sets and the level PyTorch
dispatched to; --isa forces a level in a child process; --baseline REV compares this checkout's
models with another revision's, interleaved, in two worker processes."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from tests.helpers.checkout import is_git_checkout
from tools.workflows import benchmark
from tools.workflows.benchmark import cli, machine

TINY = ["--model", "video_focalnet_tiny", "--num-frames", "2", "--img-size", "32",
        "--num-classes", "5", "--batch-sizes", "1", "--repeats", "1", "--threads", "1"]


def test_cpu_info_reads_the_instruction_sets_and_the_dispatch_level():
    info = machine.cpu_info()
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    assert info["isa"] == {"avx2": "avx2" in flags, "avx512": "avx512f" in flags,
                           "avx512_bf16": "avx512_bf16" in flags, "amx": "amx_tile" in flags}
    assert info["torch_dispatch"] == torch.backends.cpu.get_cpu_capability()
    assert info["nproc"] >= 1 and info["cpu_model"] and len(info["load_average"]) == 3


def test_isa_environment_caps_every_kernel_library(monkeypatch):
    monkeypatch.setattr(machine, "_cpuinfo", lambda: ("test CPU", {"avx2", "avx512f"}))
    env = machine.isa_environment("avx2", {"PATH": "/bin", "MKL_ENABLE_INSTRUCTIONS": "AVX512",
                                           "TORCHINDUCTOR_CACHE_DIR": "/cache"})
    # its own inductor cache: code compiled for the CPU's own vector width must not be loaded
    assert env == {"PATH": "/bin", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                   "MKL_ENABLE_INSTRUCTIONS": "AVX2", "TORCHINDUCTOR_CACHE_DIR": "/cache/isa-avx2"}
    # default: a forced parent's variables do not leak into the child
    assert machine.isa_environment("default", {**env, "TORCHINDUCTOR_CACHE_DIR": "/cache"}) == {
        "PATH": "/bin", "TORCHINDUCTOR_CACHE_DIR": "/cache"}
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    assert machine.isa_environment("avx2", {})["TORCHINDUCTOR_CACHE_DIR"] == os.path.join(
        default_cache_dir(), "isa-avx2")
    monkeypatch.setattr(machine, "_cpuinfo", lambda: ("AVX2-only CPU", {"avx2"}))
    with pytest.raises(ValueError, match="this CPU has no AVX512"):
        machine.isa_environment("avx512", {})
    with pytest.raises(ValueError, match="use one of"):
        machine.isa_environment("sse2", {})


def test_isa_option_is_removed_from_the_childs_command_line():
    assert cli._without_isa(["--model", "m", "--isa", "avx2", "default", "--json"]) == [
        "--model", "m", "--json"]
    assert cli._without_isa(["--isa=avx2", "--roofline"]) == ["--roofline"]


def test_model_rows_record_the_machine_and_a_forced_isa_runs_in_a_child(capsys):
    if not machine.cpu_info()["isa"]["avx2"]:
        pytest.skip("forcing AVX2 needs an AVX2 CPU")
    args = TINY + ["--warmup", "0", "--dtypes", "float32", "--modes", "infer", "--json"]
    assert benchmark.main(args) == 0
    here = json.loads(capsys.readouterr().out)
    assert here["machine"]["torch_dispatch"] == torch.backends.cpu.get_cpu_capability()
    assert [r["isa"] for r in here["runs"]] == [here["machine"]["torch_dispatch"]]
    assert benchmark.main(args + ["--isa", "avx2"]) == 0
    child = json.loads(capsys.readouterr().out)["isa_runs"]["avx2"]
    assert child["machine"]["torch_dispatch"] == "AVX2"
    assert child["machine"]["forced"]["MKL_ENABLE_INSTRUCTIONS"] == "AVX2"
    assert [r["isa"] for r in child["runs"]] == ["AVX2"]


@pytest.mark.skipif(not is_git_checkout(), reason="--baseline needs a git checkout")
def test_baseline_guard_interleaves_two_revisions_and_compares_outputs(capsys):
    assert benchmark.main(TINY + ["--baseline", "HEAD", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["baseline"] == "HEAD" and result["machine"]["isa"]
    [compared] = result["models"]
    assert compared["model"] == "video_focalnet_tiny"
    assert compared["max_abs_logit_diff"] == 0.0  # same seed, same code at HEAD's packages
    assert set(compared["modes"]) == {"infer", "train"}
    for row in compared["modes"].values():
        for side in ("baseline", "current"):
            assert row[side]["median_ms"] >= row[side]["ms"] > 0 and row[side]["cpu_ms"] > 0
        assert row["speedup_ms"] == round(row["baseline"]["ms"] / row["current"]["ms"], 3)
    assert compared["peak_mb"]["baseline"] > 0 and compared["peak_mb"]["current"] > 0
    assert benchmark.main(TINY + ["--baseline", "no-such-revision-xyz"]) == 2
    assert "git archive failed" in capsys.readouterr().err
    assert benchmark.main(TINY + ["--baseline", "HEAD", "--compare-reference"]) == 2
