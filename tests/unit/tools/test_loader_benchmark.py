"""The loader harness (tools/workflows/benchmark/loader.py): one run gives every variant's
medians, and the ratios it reports are computed from those same medians; --baseline and
--profile run alongside."""
from __future__ import annotations

import json

import pytest
import torch

import tools.workflows.benchmark.loader as harness
from tests.helpers.checkout import is_git_checkout
from tools.workflows import benchmark

TINY = dict(videos=["96x64"], seconds=2.0, repeats=3)


def _args(**kw):
    import argparse
    return argparse.Namespace(**{**TINY, **kw})


def test_one_run_gives_medians_and_the_ratios_of_those_medians(tmp_path, capsys):
    threads = torch.get_num_threads()
    out = tmp_path / "loader.json"
    result = harness.run_loader_benchmark(_args(output=str(out)))
    assert torch.get_num_threads() == threads  # the one-thread setting is undone
    assert json.loads(out.read_text()) == result
    machine = result["machine"]
    assert machine["nproc"] >= 1 and machine["cpu_model"] and machine["torch"] == torch.__version__
    assert len(machine["load_average"]) == 3 and len(machine["load_average_after"]) == 3
    assert set(machine["isa"]) == {"avx2", "avx512", "avx512_bf16", "amx"}
    assert result["num_iters"] == 3 and result["baseline"] == ""
    assert set(result["cells"]) == {"96x64/segment", "96x64/dense"}
    for cell in result["cells"].values():
        ms = cell["ms"]
        assert set(ms) == {"decode_decord", "decode_pyav", "augment"}
        assert all(v["wall"] > 0 and v["cpu"] > 0 for v in ms.values())
        for clock in ("wall", "cpu"):
            m = {name: v[clock] for name, v in ms.items()}
            r = cell[clock]
            assert r["augment_over_pyav_decode"] == round(m["augment"] / m["decode_pyav"], 3)
            assert r["decord_over_pyav_decode"] == round(m["decode_decord"] / m["decode_pyav"], 3)
            assert r["decord_over_pyav_pipeline"] == round(
                (m["decode_decord"] + m["augment"]) / (m["decode_pyav"] + m["augment"]), 3)
            assert r["pyav_clips_per_s"] == round(1e3 / (m["decode_pyav"] + m["augment"]), 3)
            assert r["decord_clips_per_s"] == round(1e3 / (m["decode_decord"] + m["augment"]), 3)
    printed = capsys.readouterr().out
    assert printed.startswith("machine: nproc") and "96x64 dense:" in printed


def test_one_decoder_only_and_unknown_names():
    result = harness.run_loader_benchmark(_args(decoders=["pyav"], samplings=["dense"]))
    cell = result["cells"]["96x64/dense"]
    assert set(cell["ms"]) == {"decode_pyav", "augment"}
    assert set(cell["cpu"]) == {"pyav_clips_per_s", "augment_over_pyav_decode"}
    with pytest.raises(ValueError, match="unknown video"):
        harness.run_loader_benchmark(_args(videos=["big"]))
    with pytest.raises(SystemExit):
        benchmark.main(["--loader", "--samplings", "sparse"])
    assert benchmark.main(["--loader", "--videos", "big"]) == 2


@pytest.mark.skipif(not is_git_checkout(), reason="--baseline needs a git checkout")
def test_baseline_revision_runs_in_the_same_interleaved_run():
    result = harness.run_loader_benchmark(_args(baseline="HEAD", samplings=["dense"]))
    cell = result["cells"]["96x64/dense"]
    assert set(cell["ms"]) == {"decode_decord", "decode_pyav", "augment", "decode_pyav_baseline",
                               "augment_baseline"}
    m = {name: v["cpu"] for name, v in cell["ms"].items()}
    r = cell["cpu"]
    assert r["augment_speedup_vs_baseline"] == round(m["augment_baseline"] / m["augment"], 3)
    assert r["pyav_decode_speedup_vs_baseline"] == round(
        m["decode_pyav_baseline"] / m["decode_pyav"], 3)
    assert r["baseline_augment_over_pyav_decode"] == round(
        m["augment_baseline"] / m["decode_pyav_baseline"], 3)
    with pytest.raises(ValueError, match="git archive failed"):
        harness.run_loader_benchmark(_args(baseline="no-such-revision-xyz"))


def test_ops_profile_per_operator(capsys):
    result = harness.run_loader_benchmark(_args(profile=5, repeats=2))
    assert "cells" not in result
    ops = result["ops"]["augment"]
    assert ops["total_ms"] > 0 and 0 < len(ops["ops"]) <= 5
    assert all(row["op"] and row["self_ms"] >= 0 and row["calls"] > 0 for row in ops["ops"])
    assert "self CPU per clip" in capsys.readouterr().out
