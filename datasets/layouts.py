"""DATA.DATASET: the registered dataset layouts, and the class names a config means.

A *layout* is how one dataset's annotations lie on disk. Adding one is one function and one
registration (the config accepts the new DATA.DATASET value at once)::

    def read_my_layout(cfg, split):
        # split: "train", "val" or "test"; read what you need from cfg.DATA
        return [(video_path, label), ...], class_names  # class_names: list of str or None

    register_layout("my_layout", read_my_layout, default_classes="my_classes.txt")

The reader contract (stable): ``reader(cfg, split) -> (samples, class_names)``

* ``samples``: a non-empty list of ``(path, label)`` tuples, ``label`` an int in ``[0, K)``;
  ``path`` is a video file (or a frame folder with ``DATA.DECODER frames``).
* ``class_names``: the K names in label order, or None when the layout does not know them.
* errors: raise ``AnnotationError`` naming the file, the line and the fix.

``default_classes`` is the dataset's own class list when ``DATA.LABEL_LIST`` is empty: a file
name inside the bundled ``datasets/labels/`` folder, a sequence of names, or None. Readers that
take class names from the config call ``class_names(cfg)``.

Class names a config means (``class_names(cfg)``): ``DATA.LABEL_LIST`` when set, else the bundled
default of ``DATA.DATASET``, else None. A ``DATA.LABEL_LIST`` that does not exist but names a
bundled file the way released configs do (``configs/labels/kinetics_400_labels.csv``,
``labels/...``, ``datasets/labels/...``) reads the bundled copy, so configs keep loading from any
working directory and from an installed wheel. The same holds for the published protocol files
shipped in ``datasets/protocols/`` (``protocols/few_shot/hmdb_train1_16shot.txt``,
``protocols/labels/hmdb_51_labels.csv``), as DATA.LABEL_LIST or as DATA.TRAIN_FILE / VAL_FILE /
TEST_FILE.

``DATA.FIND_BY_NAME`` (list files only): entries are file names looked up anywhere under
DATA.ROOT, as the published split lists need; missing videos are counted, reported and skipped.

A layout that reads its own class names (HMDB51 folders, UCF101 classInd.txt, SSv2 labels.json)
follows the config's class list (``DATA.LABEL_LIST``, else the bundled one) when that names the
same classes in another order or spelling (``kick_ball`` / ``kick ball``): its labels are
renumbered to the list's order, the order the model's classes have.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .annotations import (AnnotationError, check_unique_class_names, find_listed_videos,
                          is_kinetics_csv, read_class_names, read_hmdb51, read_kinetics_csv,
                          read_list_file, read_ssv2, read_ucf101)
from .synthetic import CLASS_NAMES as SYNTHETIC_CLASS_NAMES
from .synthetic import ensure_synthetic, synthetic_settings

__all__ = ["LAYOUTS", "register_layout", "layout_names", "load_annotations", "class_names",
           "default_class_names", "bundled_class_file", "bundled_protocol_file",
           "resolve_label_list", "resolve_bundled_path", "annotation_file", "LABELS_DIR",
           "PROTOCOLS_DIR", "SYNTHETIC_DEFAULT_ROOT"]

LABELS_DIR = Path(__file__).resolve().parent / "labels"  # package data, also in the wheel
PROTOCOLS_DIR = Path(__file__).resolve().parent / "protocols"  # published split files (data)
SYNTHETIC_DEFAULT_ROOT = "data/synthetic"
# Prefixes under which configs name bundled files (configs/labels/ is the class lists' old home).
_BUNDLED_PREFIXES = (("configs/labels/", LABELS_DIR), ("datasets/labels/", LABELS_DIR),
                     ("labels/", LABELS_DIR), ("datasets/protocols/", PROTOCOLS_DIR),
                     ("protocols/", PROTOCOLS_DIR))

Reader = Callable[[object, str], tuple]


@dataclass(frozen=True)
class Layout:
    reader: Reader
    default_classes: str | tuple | None = None


LAYOUTS: dict[str, Layout] = {}  # DATA.DATASET value -> Layout, in registration order


def register_layout(name: str, reader: Reader, default_classes: str | Sequence[str] | None = None
                    ) -> None:
    """Make ``DATA.DATASET name`` read its samples with ``reader(cfg, split)`` (see above).
    Registering a name again replaces its reader."""
    if not callable(reader):
        raise TypeError(f"layout {name!r}: reader must be callable, got {reader!r}")
    if default_classes is not None and not isinstance(default_classes, str):
        default_classes = tuple(default_classes)
        check_unique_class_names(default_classes, f"layout {name!r}: default_classes")
    LAYOUTS[name] = Layout(reader, default_classes)


def layout_names() -> tuple[str, ...]:
    """Every accepted DATA.DATASET value."""
    return tuple(LAYOUTS)


def _layout(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown DATA.DATASET {name!r}; registered layouts: "
                       f"{', '.join(LAYOUTS)} (add one with datasets.register_layout)") from None


def load_annotations(cfg, split: str) -> tuple[list[tuple[str, int]], list[str] | None]:
    """Samples and class names of ``split`` from DATA.DATASET's reader."""
    name = cfg.DATA.DATASET
    samples, classes = _layout(name).reader(cfg, split)
    if not samples:
        raise AnnotationError(f"DATA.DATASET {name}: no {split} samples")
    if classes is not None:
        check_unique_class_names(classes, f"DATA.DATASET {name} ({split})")
    return list(samples), (list(classes) if classes is not None else None)


# ------------------------------------------------------------------------------------------------
# Class names
# ------------------------------------------------------------------------------------------------
def bundled_class_file(file_name: str) -> str:
    """Path of a class list shipped in ``datasets/labels/`` (e.g. ``k600_novel_split1.txt``)."""
    path = LABELS_DIR / file_name
    if not path.is_file():
        known = sorted(p.name for p in LABELS_DIR.iterdir() if p.suffix in (".txt", ".csv"))
        raise FileNotFoundError(f"no bundled class list {file_name!r} in {LABELS_DIR}; "
                                f"bundled: {', '.join(known)}")
    return str(path)


def bundled_protocol_file(relative_path: str) -> str:
    """Path of a published protocol file shipped in ``datasets/protocols/``
    (e.g. ``k600_zero_shot/split1_val.txt``; see its README.md)."""
    path = PROTOCOLS_DIR / relative_path
    if not path.is_file():
        raise FileNotFoundError(f"no bundled protocol file {relative_path!r} in {PROTOCOLS_DIR} "
                                f"(folders: k600_zero_shot, few_shot, base_to_novel, labels)")
    return str(path)


def resolve_bundled_path(path: str) -> str:
    """``path`` itself when it exists; else the bundled file it names (``configs/labels/X``,
    ``labels/X``, ``datasets/labels/X`` -> class lists; ``protocols/X``, ``datasets/protocols/X``
    -> published protocol files); else ``path`` unchanged (reading it reports it)."""
    if not path or os.path.exists(path) or os.path.isabs(path):
        return path
    normalised = path.replace("\\", "/")
    while normalised.startswith("./"):
        normalised = normalised[2:]
    for prefix, folder in _BUNDLED_PREFIXES:
        if normalised.startswith(prefix):
            bundled = folder / normalised[len(prefix):]
            if bundled.is_file():
                return str(bundled)
    return path


resolve_label_list = resolve_bundled_path  # the name DATA.LABEL_LIST readers know


def default_class_names(dataset_name: str) -> list[str] | None:
    """The class list bundled for a DATA.DATASET value, or None when it has none. KeyError for
    a name that is not a registered layout."""
    default = _layout(dataset_name).default_classes
    if default is None:
        return None
    if isinstance(default, tuple):
        return list(default)
    return read_class_names(bundled_class_file(default))


def class_names(cfg) -> list[str] | None:
    """The class names the config means: DATA.LABEL_LIST, else DATA.DATASET's bundled list,
    else None."""
    if cfg.DATA.LABEL_LIST:
        return read_class_names(resolve_label_list(cfg.DATA.LABEL_LIST))
    return default_class_names(cfg.DATA.DATASET)


# ------------------------------------------------------------------------------------------------
# The built-in layouts
# ------------------------------------------------------------------------------------------------
def annotation_file(cfg, split: str) -> str:
    """DATA.TRAIN_FILE / VAL_FILE / TEST_FILE for a split (test falls back to VAL_FILE); a
    bundled protocol file named as ``protocols/...`` resolves to the shipped copy."""
    if split == "train":
        file = cfg.DATA.TRAIN_FILE
    elif split == "test" and cfg.DATA.TEST_FILE:
        file = cfg.DATA.TEST_FILE
    else:
        file = cfg.DATA.VAL_FILE
    return resolve_bundled_path(file)


def _first_file(root: str, names: list[str]) -> str:
    for name in names:
        for folder in ("", "annotations", "labels"):
            path = os.path.join(root, folder, name)
            if os.path.isfile(path):
                return path
    raise AnnotationError(f"no annotation file given and none of {names} found under {root} "
                          f"(or its annotations/, labels/ folders); set DATA.TRAIN_FILE/VAL_FILE")


def _read_list(cfg, file: str):
    classes = class_names(cfg)
    num_classes = len(classes) if classes else None
    if not cfg.DATA.get("FIND_BY_NAME", False):
        return read_list_file(file, cfg.DATA.ROOT, num_classes), classes
    listed = read_list_file(file, "", num_classes)
    return find_listed_videos(listed, cfg.DATA.ROOT, source=file)[0], classes


def _normalised(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def _follow_label_list(cfg, samples, layout_classes, where: str = ""):
    """Samples and class names of a layout that reads its own class names, renumbered to the
    config's class list (DATA.LABEL_LIST, else the dataset's bundled list: the names the model
    is built with) when that names the same classes in another order or spelling. An explicit
    DATA.LABEL_LIST of other classes is an error; a bundled list of other classes (a subset, a
    test folder) leaves the layout's own classes."""
    wanted = class_names(cfg)
    if not wanted or list(wanted) == list(layout_classes):
        return samples, layout_classes
    position = {_normalised(name): i for i, name in enumerate(wanted)}
    new_label = [position.get(_normalised(name)) for name in layout_classes]
    if len(position) != len(wanted) or len(wanted) != len(layout_classes) or None in new_label:
        if not cfg.DATA.LABEL_LIST:
            return samples, layout_classes
        raise AnnotationError(f"{cfg.DATA.LABEL_LIST}: class list differs from the "
                              f"{cfg.DATA.DATASET} layout{where} under {cfg.DATA.ROOT}; leave "
                              f"DATA.LABEL_LIST empty or list the same classes")
    return [(path, new_label[label]) for path, label in samples], list(wanted)


def read_list_layout(cfg, split: str):
    """List files of ``path,label`` lines (DATA.TRAIN_FILE / VAL_FILE), paths under DATA.ROOT."""
    file = annotation_file(cfg, split)
    if not file:
        raise AnnotationError(f"DATA.DATASET {cfg.DATA.DATASET}: set DATA.TRAIN_FILE / "
                              f"DATA.VAL_FILE to list files of `video_path,label` lines")
    return _read_list(cfg, file)


def read_kinetics_layout(cfg, split: str):
    """List files, or the official Kinetics CSVs (detected by their header) at
    ROOT/{train,val|validate}.csv; CSV labels are matched to the class list by name."""
    file = annotation_file(cfg, split)
    if not file:
        names = ["train.csv"] if split == "train" else ["val.csv", "validate.csv"]
        file = _first_file(cfg.DATA.ROOT, names)
    if not is_kinetics_csv(file):
        return _read_list(cfg, file)
    classes = class_names(cfg)
    if not classes:
        raise AnnotationError(f"{file}: the official Kinetics CSV names classes; set "
                              f"DATA.LABEL_LIST to the class list")
    return read_kinetics_csv(file, cfg.DATA.ROOT, classes, split), classes


def read_ssv2_layout(cfg, split: str):
    """The official JSON files (ROOT/labels/{train,validation,labels}.json), or list files."""
    file, root = annotation_file(cfg, split), cfg.DATA.ROOT
    if file and not file.endswith(".json"):
        return read_list_layout(cfg, split)
    label_dir = root if os.path.isfile(os.path.join(root, "labels.json")) else \
        os.path.join(root, "labels")
    file = file or os.path.join(label_dir, "train.json" if split == "train" else "validation.json")
    nested = os.path.join(root, "20bn-something-something-v2")
    video_root = nested if os.path.isdir(nested) else root
    samples, classes = read_ssv2(file, os.path.join(os.path.dirname(file), "labels.json"),
                                 video_root)
    return _follow_label_list(cfg, samples, classes, where=" (labels.json)")


def _official_split_layout(reader):
    def read(cfg, split: str):
        if annotation_file(cfg, split):
            return read_list_layout(cfg, split)
        samples, layout_classes = reader(cfg.DATA.ROOT, cfg.DATA.SPLIT, split)
        return _follow_label_list(cfg, samples, layout_classes)
    read.__doc__ = f"The official folders and split files ({reader.__name__}), or list files."
    return read


def read_synthetic_layout(cfg, split: str):
    """The synthetic motion set, generated into DATA.ROOT (default data/synthetic) on first use."""
    root = cfg.DATA.ROOT or SYNTHETIC_DEFAULT_ROOT
    s = cfg.DATA.SYNTHETIC
    ensure_synthetic(root, synthetic_settings(s.NUM_TRAIN, s.NUM_VAL, s.NUM_FRAMES, s.SIZE,
                                              s.SEED))
    file = annotation_file(cfg, split) or os.path.join(
        root, "train.csv" if split == "train" else "val.csv")
    classes = class_names(cfg)  # after generation: DATA.LABEL_LIST may name root/classes.txt
    return read_list_file(file, root, len(classes)), classes


register_layout("csv", read_list_layout)
register_layout("kinetics400", read_kinetics_layout, "kinetics_400_labels.csv")
register_layout("kinetics600", read_kinetics_layout, "kinetics_600_labels.csv")
register_layout("ssv2", read_ssv2_layout, "ssv2_174_labels.csv")
register_layout("hmdb51", _official_split_layout(read_hmdb51), "hmdb51_classes.txt")
register_layout("ucf101", _official_split_layout(read_ucf101), "ucf101_classes.txt")
register_layout("diving48", read_list_layout, "diving_48_labels.csv")
register_layout("activitynet", read_list_layout, "activitynet_200_labels.csv")
register_layout("synthetic", read_synthetic_layout, SYNTHETIC_CLASS_NAMES)
