"""Zero-shot evaluation: a trained model that scores videos against class names (it has
``encode_text``, e.g. Vita-CLIP) evaluated on classes it was not trained on.

Protocols (the X-CLIP / ViFi-CLIP setting the Vita-CLIP paper reports):
- ``k600``: the three published Kinetics-600 zero-shot splits (``datasets/protocols/
  k600_zero_shot/split{1,2,3}_{classes.csv,val.txt}``): 160 of the classes Kinetics-600 adds to
  Kinetics-400 each, the videos and labels of the split's list, names found anywhere under
  DATA.ROOT (``DATA.FIND_BY_NAME``). Videos missing locally are counted and reported; the results
  say how many were listed and how many were scored. Published numbers use these splits.
- ``k600_seeded``: this repository's own three 160-class splits of the 220 new classes (the
  bundled ``k600_novel_split{1,2,3}.txt``, seed 600); each split evaluates the K600 val videos of
  its 160 classes (the official CSV) with labels re-indexed to the split file's order.
- ``hmdb51`` / ``ucf101``: the three official splits (``DATA.SPLIT`` 1..3), the test videos of each
  split, all 51 / 101 classes.
- ``custom``: the dataset and class-name file (``DATA.LABEL_LIST``) of the config, its test split.

Text side: the classifier of a class list is ``engine.text_classifier.zero_shot_classifier``
(``model.encode_text(names)``, cached on disk, computed once per class list). What the model makes
of unseen names is its own business: Vita-CLIP applies a learned generic context to them, but a
class-specific (CSC) context belongs to the training classes, so such a model uses plain
class-name prompts ("class-only").

Results: top-1/top-5 per split, mean and **population** std (numpy ``ddof=0``) over the splits, in
percent; with ``DATA.FIND_BY_NAME`` also the listed and missing video counts per split; written
atomically to ``OUTPUT/zero_shot_results.json``.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import yaml

import datasets
from common.fileio import atomic_write_text
from engine import distributed as du
from engine.build import amp_dtype, build_model_without_init
from engine.checkpoint import (checkpoint_to_cfg_yaml, extract_state_dict, load_model_weights,
                               safe_load)
from engine.config import ConfigError, merge_opts, validate_cfg
from engine.contract import TextEncoder, TextEncoderDetails
from engine.evaluation import check_before_work, evaluate
from engine.logging import setup_logging
from engine.text_classifier import zero_shot_classifier

logger = logging.getLogger(__name__)

__all__ = ["PROTOCOLS", "SplitSpec", "split_label_map", "k600_split_classes", "protocol_splits",
           "split_cfg", "split_loader", "build_zero_shot_model", "summarize", "format_table",
           "run_zero_shot", "protocol_file", "listed_videos", "RESULTS_FILE"]

PROTOCOLS = ("k600", "k600_seeded", "hmdb51", "ucf101", "custom")
RESULTS_FILE = "zero_shot_results.json"
K600_NUM_SPLITS = 3
K600_SPLIT_SIZE = 160


@dataclass
class SplitSpec:
    """One evaluation split: config overrides, the class names, and (K600) which classes to keep."""
    name: str
    opts: list = field(default_factory=list)  # KEY VALUE overrides on top of the user config
    dataset_split: str = "test"  # train | val | test for datasets.load_annotations
    keep_classes: list | None = None  # dataset classes kept, re-indexed to this list's order
    fixed: tuple = ()  # keys of `opts` that the user's --opts do not override


# ---------------------------------------------------------------------------------------------
# Class lists
# ---------------------------------------------------------------------------------------------
def _class_list_file(name: str, labels_dir: str | os.PathLike | None = None) -> str:
    """A class list shipped with the datasets package, or the file of that name in
    ``labels_dir`` when given (tests, or lists kept elsewhere)."""
    return str(Path(labels_dir) / name) if labels_dir else datasets.bundled_class_file(name)


def protocol_file(relative_path: str, protocols_dir: str | os.PathLike | None = None) -> str:
    """A published protocol file (``k600_zero_shot/split1_val.txt``) shipped with the datasets
    package, or the file at that relative path under ``protocols_dir`` when given."""
    if protocols_dir:
        path = Path(protocols_dir) / relative_path
        if not path.is_file():
            raise ConfigError(f"{path}: protocol file not found (--protocols-dir {protocols_dir})")
        return str(path)
    return datasets.bundled_protocol_file(relative_path)


def _normalise(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def split_label_map(dataset_classes: Sequence[str], split_classes: Sequence[str],
                    source: str = "split file") -> dict[int, int]:
    """Dataset label -> split label for the classes of a split (names matched case- and
    underscore-insensitively). Raises when a split class is missing from the dataset's list."""
    index = {}
    for label, name in enumerate(dataset_classes):
        index.setdefault(_normalise(name), label)
    mapping: dict[int, int] = {}
    missing = []
    for new_label, name in enumerate(split_classes):
        label = index.get(_normalise(name))
        if label is None:
            missing.append(name)
        elif label in mapping:
            raise ConfigError(f"{source}: class {name!r} appears twice")
        else:
            mapping[label] = new_label
    if missing:
        raise ConfigError(f"{source}: {len(missing)} class(es) not in the dataset's class list "
                          f"(DATA.LABEL_LIST), e.g. {missing[:3]}. Use the Kinetics-600 class "
                          f"list.")
    return mapping


def k600_split_classes(split: int, labels_dir: str | os.PathLike | None = None) -> list[str]:
    """The 160 class names of Kinetics-600 novel split `split` (1..3), in label order."""
    if split not in range(1, K600_NUM_SPLITS + 1):
        raise ConfigError(f"Kinetics-600 novel split must be 1..{K600_NUM_SPLITS}, got {split}")
    path = _class_list_file(f"k600_novel_split{split}.txt", labels_dir)
    names = datasets.read_class_names(path)
    if len(names) != K600_SPLIT_SIZE:
        raise ConfigError(f"{path}: expected {K600_SPLIT_SIZE} classes, found {len(names)}")
    novel_path = _class_list_file("k600_novel_classes.txt", labels_dir)
    novel = {_normalise(n) for n in datasets.read_class_names(novel_path)}
    outside = [n for n in names if _normalise(n) not in novel]
    if outside:
        raise ConfigError(f"{path}: classes not among the novel classes of {novel_path}: "
                          f"{outside[:3]}")
    return names


# ---------------------------------------------------------------------------------------------
# Protocols
# ---------------------------------------------------------------------------------------------
def protocol_splits(cfg, protocol: str, labels_dir: str | os.PathLike | None = None,
                    protocols_dir: str | os.PathLike | None = None) -> list[SplitSpec]:
    """The evaluation splits of a protocol, as config overrides + which classes to keep.

    Annotation files of the training config are cleared so the target dataset's own layout
    under DATA.ROOT is read (give DATA.VAL_FILE etc. in --opts to point elsewhere; not for
    ``k600``, whose published lists define the protocol). ``labels_dir``: where the
    ``k600_seeded`` class lists are; ``protocols_dir``: where the published files are (both
    default to the copies bundled with the datasets package).
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown zero-shot protocol {protocol!r}; choose one of "
                          f"{', '.join(PROTOCOLS)}")
    clear_files = ["DATA.TRAIN_FILE", "", "DATA.VAL_FILE", "", "DATA.TEST_FILE", ""]
    if protocol in ("hmdb51", "ucf101"):
        # Class names and their order come from the official layout itself (HMDB51 folder
        # names, UCF101 classInd.txt), so DATA.LABEL_LIST is cleared.
        opts = ["DATA.DATASET", protocol, "DATA.LABEL_LIST", ""] + clear_files
        return [SplitSpec(name=f"split{s}", opts=opts + ["DATA.SPLIT", s], dataset_split="test")
                for s in (1, 2, 3)]
    if protocol == "k600":
        specs = []
        for s in range(1, K600_NUM_SPLITS + 1):
            classes = protocol_file(f"k600_zero_shot/split{s}_classes.csv", protocols_dir)
            listing = protocol_file(f"k600_zero_shot/split{s}_val.txt", protocols_dir)
            opts = ["DATA.DATASET", "kinetics600", "DATA.LABEL_LIST", classes,
                    "DATA.TRAIN_FILE", "", "DATA.VAL_FILE", listing, "DATA.TEST_FILE", listing,
                    "DATA.FIND_BY_NAME", True]
            specs.append(SplitSpec(name=f"split{s}", opts=opts, dataset_split="test",
                                   fixed=("DATA.VAL_FILE", "DATA.TEST_FILE", "DATA.FIND_BY_NAME")))
        return specs
    if protocol == "k600_seeded":
        if cfg.DATA.DATASET == "kinetics600" and cfg.DATA.LABEL_LIST:
            label_file, all_names = cfg.DATA.LABEL_LIST, datasets.class_names(cfg)
        else:
            label_file = _class_list_file("kinetics_600_labels.csv", labels_dir)
            all_names = datasets.read_class_names(label_file)
        specs = []
        for s in range(1, K600_NUM_SPLITS + 1):
            names = k600_split_classes(s, labels_dir)
            split_label_map(all_names, names, f"Kinetics-600 novel split {s}")
            specs.append(SplitSpec(
                name=f"split{s}", dataset_split="val", keep_classes=names,
                opts=["DATA.DATASET", "kinetics600", "DATA.LABEL_LIST", label_file] + clear_files))
        return specs
    if not cfg.DATA.LABEL_LIST:
        raise ConfigError("protocol custom: set DATA.LABEL_LIST to the class-name file of the "
                          "target dataset (one name per line, in label order)")
    return [SplitSpec(name="custom", dataset_split="test")]


def split_cfg(cfg, spec: SplitSpec, user_opts: Sequence = ()):
    """The user config with the split's overrides (typed values, set as they are)."""
    out = cfg.clone()
    out.defrost()
    for key, value in zip(spec.opts[0::2], spec.opts[1::2]):  # typed values: set as they are
        node = out
        *sections, name = key.split(".")
        for section in sections:
            node = node[section]
        node[name] = value
    # the user's --opts win over the protocol's file keys (e.g. DATA.VAL_FILE), never over
    # what defines the protocol: the dataset, its class list and the split
    owned = ({"DATA.DATASET", "DATA.LABEL_LIST", "DATA.SPLIT"} | set(spec.fixed)) & \
        set(spec.opts[0::2])
    user_opts = list(user_opts)
    kept = []
    for key, value in zip(user_opts[0::2], user_opts[1::2]):
        if key not in owned:
            kept += [key, value]
    merge_opts(out, kept)
    validate_cfg(out, source=f"zero-shot {spec.name}")
    out.freeze()
    return out


def listed_videos(cfg, split: str) -> int | None:
    """How many videos the split's list file names, when they are looked up by name
    (DATA.FIND_BY_NAME; some may be missing locally); None otherwise."""
    if not cfg.DATA.FIND_BY_NAME:
        return None
    file = datasets.annotation_file(cfg, split)
    if not file or file.endswith(".json"):  # an official layout, not a list file
        return None
    try:
        return len(datasets.read_list_file(file))
    except datasets.AnnotationError:  # not a list file (e.g. an official Kinetics CSV)
        return None


def split_loader(cfg, spec: SplitSpec):
    """(loader, class names) of one split: the split's videos, labels in class-name order."""
    samples, classes = datasets.load_annotations(cfg, spec.dataset_split)
    if not classes:
        raise ConfigError(f"zero-shot {spec.name}: the dataset gives no class names; set "
                          f"DATA.LABEL_LIST to a file with one name per line, in label order")
    classes = list(classes)
    if spec.keep_classes is not None:
        mapping = split_label_map(classes, spec.keep_classes, f"zero-shot {spec.name}")
        samples = [(path, mapping[label]) for path, label in samples if label in mapping]
        classes = list(spec.keep_classes)
        if not samples:
            raise ConfigError(f"zero-shot {spec.name}: none of the {cfg.DATA.DATASET} "
                              f"{spec.dataset_split} videos belongs to the split's classes")
    dataset = datasets.VideoDataset(samples, cfg, "test", classes)
    return datasets.build_loader(cfg, "test", dataset=dataset), classes


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------
def _training_class_names(cfg, ckpt: dict, protocol: str) -> list[str] | None:
    """The class names the checkpoint was trained on, best available: the config stored in the
    checkpoint, else (protocols other than custom) the training config the user passed."""
    candidates = []
    text = checkpoint_to_cfg_yaml(ckpt)
    stored = ((yaml.safe_load(text) or {}).get("DATA") or {}) if text else {}
    if stored.get("LABEL_LIST") or stored.get("DATASET"):
        trained = cfg.clone()
        trained.defrost()
        trained.DATA.LABEL_LIST = stored.get("LABEL_LIST") or ""
        if stored.get("DATASET") in datasets.layout_names():
            trained.DATA.DATASET = stored["DATASET"]
        candidates.append(trained)
    if protocol != "custom":
        candidates.append(cfg)
    for candidate in candidates:
        try:
            names = datasets.class_names(candidate)
        except (OSError, ValueError):  # a list that is not on this machine: try the next
            continue
        if names:
            return names
    return None


def build_zero_shot_model(cfg, checkpoint: str, protocol: str):
    """The model of `cfg` with every weight from `checkpoint` (ours or the reference's), in
    eval mode. The model must score videos against class names (``encode_text``)."""
    ckpt = safe_load(checkpoint)
    state = extract_state_dict(ckpt)
    names = _training_class_names(cfg, ckpt, protocol)
    # Unknown names: placeholders keep the shapes and never match a real label set, so a
    # learned class-specific context is never applied to classes it was not trained for.
    placeholders = [f"training class {i}" for i in range(max(1, cfg.MODEL.NUM_CLASSES))]
    model = build_model_without_init(cfg, names or placeholders)
    if not isinstance(model, TextEncoder):
        raise ConfigError(f"key MODEL.TYPE: {cfg.MODEL.TYPE} has no text encoder "
                          f"(engine.contract.TextEncoder); zero-shot evaluation needs a model that "
                          f"scores videos against class names, e.g. vita_clip",
                          key="MODEL.TYPE")
    # the checkpoint's class-dependent text tensors decide how many training classes there were
    count = model.num_classes_in(state) if isinstance(model, TextEncoderDetails) else None
    if count is not None and (names is None or count != len(names)):
        if names is not None:
            logger.warning("%s holds text tensors of %d classes but the training class list has "
                           "%d; using placeholder names", checkpoint, count, len(names))
        model = build_model_without_init(cfg, [f"training class {i}" for i in range(count)])
    load_model_weights(model, {"model": state}, strict=True, source=checkpoint)
    return model.eval()


def _split_classifier(model, class_names: list[str], cache_dir: str, is_main: bool):
    """Rank 0 computes (or loads) the cached features first; the others then load the file."""
    features = zero_shot_classifier(model, class_names, cache_dir) if is_main else None
    du.barrier()
    if not is_main:
        features = zero_shot_classifier(model, class_names, cache_dir)
    return features


def default_text_cache_dir(cfg) -> str:
    """Where text features are cached: MODEL.VITA.TEXT_CACHE_DIR when the config sets it,
    else OUTPUT/text_cache."""
    vita = cfg.MODEL.get("VITA")
    return (vita.get("TEXT_CACHE_DIR") if vita is not None else "") or \
        os.path.join(cfg.OUTPUT, "text_cache")


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
def summarize(splits: list[dict]) -> dict:
    """The JSON document: per-split rows plus mean and population std (ddof=0) in percent."""
    if not splits:
        raise ValueError("no splits to summarise")
    top1 = np.array([s["top1"] for s in splits], dtype=np.float64)
    top5 = np.array([s["top5"] for s in splits], dtype=np.float64)
    rows = []
    for s in splits:
        bad = int(s.get("bad_videos", 0))
        row = {"split": s["split"], "num_classes": int(s["num_classes"]),
               "num_videos": int(s["num_videos"]), "bad_videos": bad, "top1": float(s["top1"]),
               "top5": float(s["top5"])}
        if s.get("num_listed") is not None:  # lists read by name: how many were not found
            row.update(num_listed=int(s["num_listed"]),
                       num_missing=int(s["num_listed"]) - int(s["num_videos"]) - bad)
        rows.append(row)
    return {
        "splits": rows,
        "mean_top1": float(top1.mean()), "std_top1": float(top1.std(ddof=0)),
        "mean_top5": float(top5.mean()), "std_top5": float(top5.std(ddof=0)),
        "std": "population (numpy ddof=0) over splits",
    }


def format_table(summary: dict, title: str = "") -> str:
    """The terminal table; `videos` are the videos scored, `missing` (lists read by name) the
    listed videos not found under DATA.ROOT, `unreadable` those found that could not be
    decoded (left out of the accuracies; shown when there are any)."""
    listed = any("num_listed" in s for s in summary["splits"])
    bad = any(s.get("bad_videos") for s in summary["splits"])
    extra = (f" {'missing':>7}" if listed else "") + (f" {'unreadable':>10}" if bad else "")
    lines = [title] if title else []
    lines.append(f"{'split':<10} {'classes':>7} {'videos':>7}{extra} {'top-1':>7} {'top-5':>7}")
    for s in summary["splits"]:
        extra = (f" {s.get('num_missing', 0):>7d}" if listed else "") + \
            (f" {s.get('bad_videos', 0):>10d}" if bad else "")
        lines.append(f"{s['split']:<10} {s['num_classes']:>7d} {s['num_videos']:>7d}{extra} "
                     f"{s['top1']:>7.2f} {s['top5']:>7.2f}")
    extra = (f" {'':>7}" if listed else "") + (f" {'':>10}" if bad else "")
    lines.append(f"{'mean±std':<10} {'':>7} {'':>7}{extra} "
                 f"{summary['mean_top1']:>5.2f}±{summary['std_top1']:.2f} "
                 f"{summary['mean_top5']:>5.2f}±{summary['std_top5']:.2f}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Running a protocol
# ---------------------------------------------------------------------------------------------
def run_zero_shot(cfg, checkpoint: str, protocol: str, user_opts: Sequence = (),
                  labels_dir: str | os.PathLike | None = None, cache_dir: str | None = None,
                  log: Callable[[str], None] = print,
                  protocols_dir: str | os.PathLike | None = None) -> dict:
    """Evaluate every split of `protocol`; writes OUTPUT/zero_shot_results.json (rank 0).

    ``labels_dir``: where the ``k600_seeded`` class lists are, ``protocols_dir``: where the
    published ``k600`` files are (default: the bundled ones); ``cache_dir``: the text-feature
    cache (default ``default_text_cache_dir(cfg)``).
    """
    specs = protocol_splits(cfg, protocol, labels_dir, protocols_dir)
    dist_info = du.init_distributed(cfg)
    check_before_work(cfg, checkpoint)
    setup_logging(cfg.OUTPUT, dist_info.rank)
    model = build_zero_shot_model(cfg, checkpoint, protocol).to(dist_info.device)
    cache_dir = cache_dir or default_text_cache_dir(cfg)
    rows, modes = [], set()
    for spec in specs:
        scfg = split_cfg(cfg, spec, user_opts)
        loader, class_names = split_loader(scfg, spec)
        listed = listed_videos(scfg, spec.dataset_split)
        features = _split_classifier(model, class_names, cache_dir, dist_info.is_main)
        if isinstance(model, TextEncoderDetails):
            modes.add(model.text_prompt_mode(class_names))
        if dist_info.is_main:
            found = "" if listed is None else \
                f" ({listed - len(loader.dataset)} of {listed} listed videos missing locally)"
            log(f"[zero-shot {protocol} {spec.name}] {len(class_names)} classes, "
                f"{len(loader.dataset)} videos{found} x {scfg.TEST.NUM_CLIP} clips x "
                f"{scfg.TEST.NUM_CROP} crops")
        result = evaluate(model, loader, dist_info.device, amp=amp_dtype(scfg),
                          desc=f"Zero-shot {spec.name}", print_freq=scfg.PRINT_FREQ,
                          text_features=features)
        metrics = result["metrics"]
        if metrics.get("bad_videos") and dist_info.is_main:
            log(f"[zero-shot {protocol} {spec.name}] {metrics['bad_videos']} videos could not be "
                f"decoded and are left out of the accuracies (TEST.BAD_VIDEO_POLICY exclude)")
        rows.append({"split": spec.name, "num_classes": len(class_names),
                     "num_videos": metrics["num_samples"], "num_listed": listed,
                     "bad_videos": metrics.get("bad_videos", 0),
                     "top1": metrics["top1"], "top5": metrics["top5"]})
    summary = summarize(rows)
    summary.update(protocol=protocol, checkpoint=os.path.abspath(checkpoint),
                   text_prompts=sorted(modes),
                   views={"num_clip": cfg.TEST.NUM_CLIP, "num_crop": cfg.TEST.NUM_CROP})
    if dist_info.is_main:
        path = os.path.join(cfg.OUTPUT, RESULTS_FILE)
        atomic_write_text(path, json.dumps(summary, indent=2) + "\n")
        described = f"{', '.join(sorted(modes))} text features; " if modes else ""
        log(format_table(summary, f"Zero-shot {protocol} ({described}std over splits: "
                                  f"population, ddof=0)"))
        log(f"results: {path}")
    return summary
