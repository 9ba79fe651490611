"""The generic experiment runner: train + evaluate one config variant, resumably, and collect one
row per variant (accuracy, parameters, GFLOPs, throughput, wall time), then the reports.

A ``Variant`` is a name (its folder), config overrides and optionally its own config file.
Override order for a variant: base config file < command-line ``--opts`` < the variant's ``opts``
< ``OUTPUT`` (always ``<output>/<variant name>``).

Each variant runs in ``<output>/<name>``. Its state lives in ``<output>/<name>/experiment.json``
(written atomically): a variant whose evaluation results exist is skipped on the next run, and an
interrupted one resumes from its own latest checkpoint (``TRAIN.AUTO_RESUME``). A finished
variant is reused only when its config is the one requested now (a fingerprint of the values
that change the result).

Used by ``tools/ablate.py`` (ablation files, ``tools/workflows/ablation.py``), the published
protocols (``tools/workflows/protocols.py``) and the demo (``tools/demo.py``).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import yaml

from common.fileio import atomic_write_bytes, atomic_write_text
from engine.config import ConfigError, load_cfg

logger = logging.getLogger(__name__)

__all__ = ["Variant", "VariantRunError", "ROW_COLUMNS", "variant_cfg", "variant_cli_opts",
           "variant_source", "opts_to_cli", "flatten_opts", "run_tool_with_torchrun",
           "run_variant", "run_experiments", "write_reports", "rows_markdown", "rows_csv"]

ROW_COLUMNS = ("variant", "top1", "top5", "params_m", "gflops", "train_clips_per_s", "wall_s")
STATE_FILE = "experiment.json"
EVAL_FILE = "eval_results.json"
REPO_ROOT = Path(__file__).resolve().parents[2]  # the checkout: tools/train.py for torchrun
# Keys that change how a run is executed or logged but not its result; a finished variant
# stays valid when only these differ.
_NON_RESULT_KEYS = ("OUTPUT", "PRINT_FREQ", "DATA.NUM_WORKERS", "DATA.PIN_MEMORY", "TAG",
                    "TRAIN.AUTO_RESUME", "MODEL.RESUME", "LOCAL_RANK", "SAVE_FREQ")


class VariantRunError(RuntimeError):
    """A variant's training or testing did not finish (a failed launch, a missing output)."""


# ---------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------
@dataclass
class Variant:
    """One run: a name (its folder), config overrides, and optionally its own config file."""
    name: str
    opts: dict = field(default_factory=dict)  # dotted key -> value
    cfg: str | None = None  # config file for this variant (None: the base config)

    def opts_list(self) -> list:
        out: list = []
        for key, value in self.opts.items():
            out += [key, value]
        return out


def flatten_opts(mapping: dict, prefix: str = "") -> dict:
    flat: dict = {}
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise TypeError(f"config keys are strings, got {key!r}")
        full = prefix + key
        if isinstance(value, dict):
            flat.update(flatten_opts(value, full + "."))
        else:
            flat[full] = value
    return flat


def variant_cli_opts(variant: Variant, base_opts: Sequence, output_dir: str) -> list[str]:
    """The command-line overrides of one variant: base opts < variant opts < OUTPUT.

    String values of `base_opts` are taken as typed on a command line (parsed by merge_opts);
    the variant's values are typed YAML values and are quoted where needed to stay what they are.
    """
    base = [value if isinstance(value, str) else opts_to_cli([key, value])[1]
            for key, value in zip(base_opts[0::2], base_opts[1::2])]
    out: list[str] = []
    for key, value in zip(base_opts[0::2], base):
        out += [str(key), value]
    return out + opts_to_cli(variant.opts_list() + ["OUTPUT", os.path.join(output_dir, variant.name)])


def variant_cfg(variant: Variant, base_cfg: str | None, base_opts: Sequence, output_dir: str):
    """The frozen config of one variant (the same values in-process and under torchrun)."""
    overridden = set(base_opts[0::2]) & set(variant.opts)
    if overridden:
        logger.info("variant %s overrides command-line key(s) %s", variant.name, sorted(overridden))
    opts = variant_cli_opts(variant, base_opts, output_dir)
    # the variant's own keys are a layer of their own, so that an error names the variant
    return load_cfg(variant.cfg or base_cfg, opts[:len(base_opts)],
                    layers=[(variant_source(variant), opts[len(base_opts):])])


def variant_source(variant: Variant) -> str:
    """How config errors name a value that a variant's `opts` set."""
    return f"variant {variant.name}"


def _parsed_like_merge_opts(text: str):
    """What engine.config.merge_opts makes of a command-line value (YAML, then Python literal)."""
    import ast
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
    return value


def opts_to_cli(opts: Sequence) -> list[str]:
    """KEY VALUE pairs as command-line strings that `merge_opts` parses back to the same values."""
    out: list[str] = []
    for key, value in zip(opts[0::2], opts[1::2]):
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, str):
            text = value if _parsed_like_merge_opts(value) == value else json.dumps(value)
        else:
            text = json.dumps(value)
        out += [str(key), text]
    return out


# ---------------------------------------------------------------------------------------------
# One variant
# ---------------------------------------------------------------------------------------------
def _cfg_fingerprint(cfg) -> str:
    flat = flatten_opts(yaml.safe_load(cfg.dump()))
    for key in _NON_RESULT_KEYS:
        flat.pop(key, None)
    if cfg.DATA.DATASET == "synthetic":  # a new generator makes other data from the same config
        from datasets.synthetic import GENERATOR_VERSION
        flat["synthetic_generator_version"] = GENERATOR_VERSION
    return hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: unreadable ({err}); delete it to re-run this step") from err


def _accuracy(results: dict, key: str, path: Path) -> float:
    for name in (key, key.replace("top", "acc"), f"acc{key[3:]}"):
        if name in results:
            return float(results[name])
    raise ConfigError(f"{path}: no {key!r} in the evaluation results (keys: {sorted(results)})")


def _model_cost(cfg) -> tuple[float, float]:
    """(parameters in millions, GFLOPs of one view) with the project's counter (engine.flops)."""
    from engine.flops import config_cost

    cost = config_cost(cfg)
    return cost["params"] / 1e6, float(cost["gflops"])


def _train_in_process(cfg) -> None:
    from engine.trainer import train
    train(cfg)


def _test_in_process(cfg, checkpoint: str) -> None:
    from engine.evaluation import test
    test(cfg, checkpoint)


def _train_throughput(run_dir: Path) -> tuple[float, float]:
    """(clips, seconds) of every finished training epoch logged in OUTPUT/metrics.jsonl."""
    clips = seconds = 0.0
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return clips, seconds
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            if record.get("type") == "train_epoch":
                clips += float(record["clips_per_s"]) * float(record["time_s"])
                seconds += float(record["time_s"])
    return clips, seconds


def run_tool_with_torchrun(script: str, cfg_file: str | None, opts: Sequence[str], nproc: int,
                           extra: Sequence[str] = (),
                           log: Callable[[str], None] = print) -> None:
    """tools/<script> under torchrun with ``nproc`` processes; VariantRunError if it fails."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           str(nproc), str(REPO_ROOT / "tools" / script), *extra]
    if cfg_file:
        cmd += ["--cfg", cfg_file]
    cmd += ["--opts", *opts]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    log("launching: " + " ".join(cmd))
    result = subprocess.run(cmd, env=env)
    if result.returncode != 0:
        raise VariantRunError(f"{script} exited with status {result.returncode}: {' '.join(cmd)}")


def _save_state(path: Path, state: dict) -> None:
    atomic_write_text(path, json.dumps(state, indent=2) + "\n")


def run_variant(variant: Variant, base_cfg: str | None, output_dir: str, base_opts: Sequence = (),
                nproc: int = 1, log: Callable[[str], None] = print) -> dict:
    """Train + evaluate one variant unless its results exist; returns its row (ROW_COLUMNS).

    Training resumes from the variant's own latest checkpoint (TRAIN.AUTO_RESUME); the final
    checkpoint (latest.pth) is evaluated with TEST.NUM_CLIP x TEST.NUM_CROP views on the test
    split into OUTPUT/eval_results.json.
    """
    cfg = variant_cfg(variant, base_cfg, base_opts, output_dir)
    run_dir = Path(cfg.OUTPUT)
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / STATE_FILE
    state = _read_json(state_path) or {}
    fingerprint = _cfg_fingerprint(cfg)
    if state.get("fingerprint") not in (None, fingerprint):
        raise ConfigError(
            f"{run_dir}: holds a run of variant {variant.name!r} made with a different config "
            f"than the one requested now. Delete {run_dir} to re-run it, or use another --output.")
    state.update(variant=variant.name, fingerprint=fingerprint)
    eval_path = run_dir / EVAL_FILE
    if state.get("finished") and eval_path.is_file() and "row" in state:
        log(f"[{variant.name}] finished earlier, skipped (results: {eval_path})")
        return state["row"]

    run_opts = variant_cli_opts(variant, base_opts, output_dir)
    cfg_file = variant.cfg or base_cfg
    if not eval_path.is_file() or not state.get("evaluated"):
        resuming = (run_dir / "latest.pth").is_file()
        log(f"[{variant.name}] {'resuming training' if resuming else 'training'} "
            f"({cfg.TRAIN.EPOCHS} epochs) -> {run_dir}")
        _save_state(state_path, state)
        t0 = time.perf_counter()
        if nproc > 1:
            run_tool_with_torchrun("train.py", cfg_file, run_opts, nproc, log=log)
        else:
            _train_in_process(cfg)
        state["train_wall_s"] = state.get("train_wall_s", 0.0) + time.perf_counter() - t0
        _save_state(state_path, state)
        checkpoint = run_dir / "latest.pth"
        if not checkpoint.is_file():
            raise VariantRunError(f"[{variant.name}] training left no {checkpoint}")
        log(f"[{variant.name}] testing {checkpoint.name} ({cfg.TEST.NUM_CLIP} clips x "
            f"{cfg.TEST.NUM_CROP} crops per video)")
        t0 = time.perf_counter()
        if nproc > 1:
            run_tool_with_torchrun("test.py", cfg_file, run_opts, nproc,
                                   ["--checkpoint", str(checkpoint)], log=log)
        else:
            _test_in_process(cfg, str(checkpoint))
        state["eval_wall_s"] = time.perf_counter() - t0
        state["evaluated"] = True
        _save_state(state_path, state)
    results = _read_json(eval_path)
    if results is None:
        raise VariantRunError(f"[{variant.name}] evaluation wrote no {eval_path}")
    params_m, gflops = _model_cost(cfg)
    clips, seconds = _train_throughput(run_dir)
    row = {
        "variant": variant.name,
        "top1": _accuracy(results, "top1", eval_path),
        "top5": _accuracy(results, "top5", eval_path),
        "params_m": params_m,
        "gflops": gflops,
        "train_clips_per_s": clips / seconds if seconds > 0 else float("nan"),
        "wall_s": state.get("train_wall_s", 0.0) + state.get("eval_wall_s", 0.0),
        "train_s": state.get("train_wall_s", 0.0),  # extra (not a CSV column): training only
    }
    state.update(row=row, finished=True)
    _save_state(state_path, state)
    log(f"[{variant.name}] top-1 {row['top1']:.2f}  top-5 {row['top5']:.2f}  "
        f"params {params_m:.3f} M  {gflops:.3f} GFLOPs/view  {row['wall_s']:.0f} s")
    return row


# ---------------------------------------------------------------------------------------------
# Many variants and their reports
# ---------------------------------------------------------------------------------------------
def run_experiments(variants: Iterable[Variant], base_cfg: str | None, output_dir: str,
                    base_opts: Sequence = (), nproc: int = 1,
                    log: Callable[[str], None] = print, title: str = "Ablation") -> list[dict]:
    """Run every variant in order (resumable) and write the reports; returns the rows."""
    variants = list(variants)
    rows = []
    for index, variant in enumerate(variants):
        log(f"=== variant {index + 1}/{len(variants)}: {variant.name} ===")
        rows.append(run_variant(variant, base_cfg, output_dir, base_opts, nproc, log))
    write_reports(rows, output_dir, title=title)
    return rows


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def rows_markdown(rows: list[dict], title: str = "Ablation") -> str:
    lines = [f"# {title}", "",
             "| variant | top-1 (%) | top-5 (%) | params (M) | GFLOPs/view | train clips/s | wall (s) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {_fmt(r['top1'], 2)} | {_fmt(r['top5'], 2)} | "
                     f"{_fmt(r['params_m'], 3)} | {_fmt(r['gflops'], 3)} | "
                     f"{_fmt(r['train_clips_per_s'], 1)} | {_fmt(r['wall_s'], 1)} |")
    return "\n".join(lines) + "\n"


def rows_csv(rows: list[dict], columns: Sequence[str] = ROW_COLUMNS) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([r[c] if isinstance(r[c], str) else f"{r[c]:.6g}" for c in columns])
    return buf.getvalue()


def rows_plot_png(rows: list[dict], title: str = "Ablation") -> bytes:
    import matplotlib
    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for r in rows:
        ax.scatter([r["gflops"]], [r["top1"]], s=36)
        ax.annotate(r["variant"], (r["gflops"], r["top1"]), textcoords="offset points",
                    xytext=(5, 5), fontsize=9)
    ax.set_xlabel("GFLOPs per view")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_reports(rows: list[dict], output_dir: str, title: str = "Ablation",
                  stem: str = "ablation") -> dict:
    """DIR/<stem>.md, .csv and .png, each written atomically; returns their paths."""
    out = Path(output_dir)
    paths = {"md": out / f"{stem}.md", "csv": out / f"{stem}.csv", "png": out / f"{stem}.png"}
    atomic_write_text(paths["md"], rows_markdown(rows, title))
    atomic_write_text(paths["csv"], rows_csv(rows))
    atomic_write_bytes(paths["png"], rows_plot_png(rows, title))
    return paths
