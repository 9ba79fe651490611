"""Annotation readers: one function per on-disk format, each returning ``[(path, label), ...]``.

Formats: list files (``path,label`` / ``path label`` / mmaction rawframes ``dir frames label``),
class-name files (``id,name`` CSV with header, or one name per line), the official Kinetics CSV
(``label,youtube_id,time_start,time_end,split``), Something-Something-v2 JSON, and the HMDB51 /
UCF101 official split layouts. Any malformed line raises AnnotationError naming the file, the
line and what is wrong.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import re

__all__ = ["AnnotationError", "read_class_names", "check_unique_class_names", "read_list_file",
           "is_kinetics_csv", "read_kinetics_csv", "read_ssv2", "read_hmdb51", "read_ucf101",
           "find_videos", "find_listed_videos", "VIDEO_EXTENSIONS", "ssv2_template_to_name",
           "numbered_lines"]

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v")


class AnnotationError(ValueError):
    """An annotation or class file that cannot be used; the message names file, line and fix."""


def _read_lines(path: str) -> list[str]:
    if not path:
        raise AnnotationError("no annotation file given (set DATA.TRAIN_FILE / DATA.VAL_FILE)")
    if not os.path.isfile(path):
        raise AnnotationError(f"{path}: annotation file not found")
    try:
        with open(path, "r", encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as err:
        raise AnnotationError(f"{path}: not a text file (byte {err.start} is not UTF-8); give "
                              f"a list or class file with one entry per line") from None
    if "\x00" in text:  # UTF-16 or a binary that happens to decode
        raise AnnotationError(f"{path}: not a text file (it holds NUL bytes); give a list or "
                              f"class file with one entry per line, saved as UTF-8")
    return text.splitlines()


def numbered_lines(path: str) -> list[tuple[int, str]]:
    """(1-based line number, stripped line) for every non-blank line, for error messages."""
    stripped = (raw.strip() for raw in _read_lines(path))
    return [(number, line) for number, line in enumerate(stripped, start=1) if line]


def _join(root: str, path: str) -> str:
    return path if (not root or os.path.isabs(path)) else os.path.join(root, path)


# ------------------------------------------------------------------------------------------------
# Class names and list files
# ------------------------------------------------------------------------------------------------
def read_class_names(path: str) -> list[str]:
    """Class names in label order from ``path``: an ``id,name`` CSV with a header (names may hold
    commas; rows are ordered by id, which must be 0..K-1) or one name per line. Blank lines are
    skipped; a name listed twice is an error naming both lines."""
    if not path:
        raise AnnotationError("no class-name file given (DATA.LABEL_LIST is empty)")
    if not os.path.isfile(path):
        raise AnnotationError(f"{path}: class-name file not found (DATA.LABEL_LIST)")
    lines = numbered_lines(path)
    if not lines:
        raise AnnotationError(f"{path}: class file is empty")
    header = [h.strip().lower() for h in lines[0][1].split(",")]
    if header[:2] != ["id", "name"]:
        named = lines
    else:
        by_id: dict[int, tuple[int, str]] = {}
        for number, line in lines[1:]:
            index, sep, name = line.partition(",")
            if not sep or not index.strip().lstrip("-").isdigit():
                raise AnnotationError(f"{path}: line {number}: expected `id,name`, got {line!r}")
            index = int(index)
            if index in by_id:
                raise AnnotationError(f"{path}: line {number}: class id {index} appears twice "
                                      f"(first on line {by_id[index][0]})")
            by_id[index] = (number, name.strip().strip('"'))
        if sorted(by_id) != list(range(len(by_id))):
            raise AnnotationError(f"{path}: class ids must be 0..{len(by_id) - 1} without gaps")
        named = [by_id[i] for i in range(len(by_id))]
    first_line: dict[str, int] = {}
    for number, name in named:
        if not name:
            raise AnnotationError(f"{path}: line {number}: empty class name")
        if name in first_line:
            raise AnnotationError(f"{path}: lines {first_line[name]} and {number} both name "
                                  f"class {name!r}; every class must be listed once")
        first_line[name] = number
    return [name for _, name in named]


def check_unique_class_names(names, source: str) -> None:
    """AnnotationError when a class name appears twice in ``names`` (per-class results are keyed
    by name, and a text classifier cannot tell two equal names apart). ``source`` says where the
    list came from."""
    first: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in first:
            raise AnnotationError(f"{source}: classes {first[name]} and {index} are both named "
                                  f"{name!r}; every class must have its own name")
        first[name] = index


def _parse_label(text: str, path: str, number: int, line: str, num_classes: int | None) -> int:
    text = text.strip()
    if not text.lstrip("-").isdigit():
        raise AnnotationError(f"{path}: line {number}: label {text!r} is not an integer "
                              f"(line {line!r}); lines are `video_path,label`")
    label = int(text)
    if label < 0 or (num_classes is not None and label >= num_classes):
        if num_classes is None:
            raise AnnotationError(f"{path}: line {number}: label {label} is negative "
                                  f"(line {line!r}); labels count from 0")
        raise AnnotationError(f"{path}: line {number}: label {label} outside [0, "
                              f"{num_classes - 1}] (line {line!r}): the class list "
                              f"(DATA.LABEL_LIST, else the dataset's bundled list) has "
                              f"{num_classes} names; fix the label or the list")
    return label


def read_list_file(path: str, root: str = "", num_classes: int | None = None
                   ) -> list[tuple[str, int]]:
    """``path,label`` lines (reference format; split on ','), or whitespace ``path label`` lines
    (mmaction), or ``frame_dir num_frames label`` (mmaction rawframes). Paths join ``root``."""
    samples = []
    for number, line in numbered_lines(path):
        if line.startswith("#"):
            continue
        if "," in line:
            fields = line.split(",")
            if len(fields) != 2:
                raise AnnotationError(
                    f"{path}: line {number}: expected `video_path,label` (2 comma-separated "
                    f"fields), got {len(fields)}: {line!r}. Paths must not contain commas; "
                    f"multi-label lines are not supported")
            video, label = fields[0].strip(), fields[1]
        else:
            fields = line.rsplit(None, 2)
            if len(fields) == 3 and fields[1].isdigit() and fields[2].lstrip("-").isdigit():
                video, label = fields[0], fields[2]  # rawframes: dir, total_frames, label
            else:
                fields = line.rsplit(None, 1)
                if len(fields) != 2:
                    raise AnnotationError(f"{path}: line {number}: expected `video_path,label` "
                                          f"or `video_path label`, got {line!r}")
                video, label = fields
        if not video:
            raise AnnotationError(f"{path}: line {number}: empty video path in {line!r}")
        samples.append((_join(root, video), _parse_label(label, path, number, line, num_classes)))
    if not samples:
        raise AnnotationError(f"{path}: no samples (the file has no `video_path,label` lines)")
    return samples


# ------------------------------------------------------------------------------------------------
# Finding video files
# ------------------------------------------------------------------------------------------------
_SPLIT_FOLDERS = {"train": ("train", "training"), "val": ("val", "validate", "valid",
                                                        "validation"), "test": ("test", "testing")}


def find_videos(root: str, split: str | None = None) -> dict[str, str]:
    """Map file stem -> path for every video under ``root`` (any depth). When a stem occurs
    several times, the copy inside the split's folder (root/train, root/val, ...) wins."""
    preferred = _SPLIT_FOLDERS.get(split or "", ())
    index: dict[str, str] = {}
    for directory, _, files in os.walk(root, followlinks=True):
        rel_top = os.path.relpath(directory, root).split(os.sep)[0]
        for name in files:
            stem, ext = os.path.splitext(name)
            if ext.lower() not in VIDEO_EXTENSIONS:
                continue
            path = os.path.join(directory, name)
            if stem not in index or rel_top in preferred:
                index[stem] = path
    return index


def find_listed_videos(samples: list[tuple[str, int]], root: str, source: str = "list file"
                       ) -> tuple[list[tuple[str, int]], int]:
    """Listed videos resolved by file name under ``root``, and how many are missing there.

    For published split lists (``train/<id>_000010_000020.mp4 3``, ``v_Typing_g10_c04.avi 0``,
    ``74225.webm 28``): an entry is used as ``root/<entry>`` when that file exists, else it is
    looked up by file stem anywhere below ``root`` (any extension of VIDEO_EXTENSIONS). Missing
    entries are counted, reported once and skipped; none found at all is an error."""
    found: list[tuple[str, int]] = []
    missing = 0
    index: dict[str, str] | None = None
    for entry, label in samples:
        direct = _join(root, entry)
        if os.path.isfile(direct):
            found.append((direct, label))
            continue
        if index is None:
            index = find_videos(root)  # walked once, only when a name needs it
        stem = os.path.splitext(os.path.basename(entry.replace("\\", "/")))[0]
        path = index.get(stem)
        if path is None:
            missing += 1
        else:
            found.append((path, label))
    if not found:
        raise AnnotationError(f"{source}: none of the {len(samples)} listed videos were found "
                              f"under {root} (looked up by file name); check DATA.ROOT")
    if missing:
        logger.warning("%s: %d of %d listed videos are missing under %s (not downloaded?); "
                       "they are skipped", source, missing, len(samples), root)
    return found, missing


# ------------------------------------------------------------------------------------------------
# Kinetics official CSV
# ------------------------------------------------------------------------------------------------
def is_kinetics_csv(path: str) -> bool:
    """True when the first line is the official header (has a youtube_id column)."""
    if not os.path.isfile(path):
        return False  # the list-file reader reports the missing file
    with open(path, "r", encoding="utf-8-sig") as f:
        header = f.readline().strip().lower()
    return "youtube_id" in header


def _normalise_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", name.lower()).strip()


def read_kinetics_csv(path: str, root: str, classes: list[str], split: str | None = None
                      ) -> list[tuple[str, int]]:
    """Official ``label,youtube_id,time_start,time_end,split`` CSV; videos named
    ``<youtube_id>_<start:06d>_<end:06d>.<ext>`` anywhere under ``root`` (per-split folders, flat,
    or per-class subfolders). Rows whose video is missing are counted, reported once and skipped."""
    if not os.path.isfile(path):
        raise AnnotationError(f"{path}: annotation file not found")
    lookup: dict[str, int] = {}
    for i, c in enumerate(classes):
        if lookup.setdefault(_normalise_name(c), i) != i:
            raise AnnotationError(f"{path}: class names {classes[lookup[_normalise_name(c)]]!r} "
                                  f"and {c!r} of the class list cannot be told apart in the CSV "
                                  f"(case and punctuation are ignored there); rename one")
    videos = find_videos(root, split)
    samples, missing = [], 0
    with open(path, "r", encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        fields = [c.strip().lower() for c in (reader.fieldnames or [])]
        for need in ("youtube_id", "time_start", "time_end"):
            if need not in fields:
                raise AnnotationError(f"{path}: line 1: header lacks column {need!r}; expected "
                                      f"`label,youtube_id,time_start,time_end,split`")
        reader.fieldnames = fields
        for number, row in enumerate(reader, start=2):
            try:
                stem = f"{row['youtube_id']}_{int(float(row['time_start'])):06d}_" \
                       f"{int(float(row['time_end'])):06d}"
            except (TypeError, ValueError):
                raise AnnotationError(f"{path}: line {number}: time_start/time_end must be "
                                      f"numbers, got {row}") from None
            name = (row.get("label") or "").strip()
            if _normalise_name(name) not in lookup:
                raise AnnotationError(f"{path}: line {number}: class {name!r} is not in the class "
                                      f"list ({len(classes)} classes); check DATA.LABEL_LIST")
            if stem not in videos:
                missing += 1
                continue
            samples.append((videos[stem], lookup[_normalise_name(name)]))
    if missing:
        logger.warning("%s: %d of %d listed videos are missing under %s (not downloaded?); "
                       "they are skipped", path, missing, missing + len(samples), root)
    if not samples:
        raise AnnotationError(f"{path}: none of the listed videos were found under {root}")
    return samples


# ------------------------------------------------------------------------------------------------
# Something-Something v2
# ------------------------------------------------------------------------------------------------
def ssv2_template_to_name(template: str) -> str:
    """"Putting [something] on [something]" -> "Putting something on something"."""
    return template.replace("[", "").replace("]", "")


def _load_json(path: str):
    if not os.path.isfile(path):
        raise AnnotationError(f"{path}: file not found")
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise AnnotationError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from err


def read_ssv2(annotation: str, labels_json: str, video_root: str
              ) -> tuple[list[tuple[str, int]], list[str]]:
    """SSv2 ``train.json``/``validation.json`` entries ``{id, label, template, placeholders}``;
    labels from ``labels.json`` (name -> id) after removing the template's brackets. Videos are
    ``<video_root>/<id>.webm``. Returns samples and the class names in id order."""
    mapping = _load_json(labels_json)
    if not isinstance(mapping, dict):
        raise AnnotationError(f"{labels_json}: expected an object mapping class name -> id")
    classes_by_id = {}
    for name, index in mapping.items():
        if not str(index).isdigit():
            raise AnnotationError(f"{labels_json}: class {name!r} has a non-integer id {index!r}")
        classes_by_id[int(index)] = name
    if sorted(classes_by_id) != list(range(len(classes_by_id))):
        raise AnnotationError(f"{labels_json}: class ids must be 0..{len(classes_by_id) - 1}")
    classes = [classes_by_id[i] for i in range(len(classes_by_id))]
    entries = _load_json(annotation)
    if not isinstance(entries, list):
        raise AnnotationError(f"{annotation}: expected a list of {{id, label, template, ...}}")
    samples = []
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict) or "id" not in entry or "template" not in entry:
            raise AnnotationError(f"{annotation}: entry {number}: needs 'id' and 'template', "
                                  f"got {entry!r:.120}")
        name = ssv2_template_to_name(entry["template"])
        if name not in mapping:
            raise AnnotationError(f"{annotation}: entry {number} (id {entry['id']}): template "
                                  f"{entry['template']!r} is not a class of {labels_json}")
        samples.append((os.path.join(video_root, f"{entry['id']}.webm"), int(mapping[name])))
    return samples, classes


# ------------------------------------------------------------------------------------------------
# HMDB51 / UCF101 official layouts
# ------------------------------------------------------------------------------------------------
def _first_dir(*candidates: str) -> str:
    for c in candidates:
        if os.path.isdir(c):
            return c
    return candidates[0]


def read_hmdb51(root: str, split_number: int, split: str
                ) -> tuple[list[tuple[str, int]], list[str]]:
    """``root/videos/<class>/<video>.avi`` (or ``root/<class>/...``) with the official
    ``root/testTrainMulti_7030_splits/<class>_test_split<k>.txt`` (``<video> 1`` train,
    ``2`` test, ``0`` unused). Classes: sorted folder names."""
    split_dir = os.path.join(root, "testTrainMulti_7030_splits")
    if not os.path.isdir(split_dir):
        raise AnnotationError(f"{split_dir}: HMDB51 split folder not found; expected the "
                              f"official testTrainMulti_7030_splits under DATA.ROOT")
    suffix = f"_test_split{split_number}.txt"
    files = sorted(f for f in os.listdir(split_dir) if f.endswith(suffix))
    if not files:
        raise AnnotationError(f"{split_dir}: no *{suffix} files (DATA.SPLIT {split_number})")
    classes = sorted(f[: -len(suffix)] for f in files)
    video_root = _first_dir(os.path.join(root, "videos"), root)
    wanted = "1" if split == "train" else "2"
    samples = []
    for label, name in enumerate(classes):
        path = os.path.join(split_dir, name + suffix)
        for number, line in numbered_lines(path):
            fields = line.split()
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise AnnotationError(f"{path}: line {number}: expected `<video>.avi 0|1|2`, "
                                      f"got {line!r}")
            if fields[1] == wanted:
                samples.append((os.path.join(video_root, name, fields[0]), label))
    return samples, classes


def read_ucf101(root: str, split_number: int, split: str
                ) -> tuple[list[tuple[str, int]], list[str]]:
    """``root/UCF-101/<Class>/<video>.avi`` with ``root/ucfTrainTestlist/`` (classInd.txt
    ``1 ApplyEyeMakeup``; trainlist0k.txt ``Class/v_x.avi 1``; testlist0k.txt ``Class/v_x.avi``).
    Classes in classInd order; labels 0-based."""
    list_dir = os.path.join(root, "ucfTrainTestlist")
    class_file = os.path.join(list_dir, "classInd.txt")
    classes = []
    for number, line in numbered_lines(class_file):
        fields = line.split()
        if len(fields) != 2 or not fields[0].isdigit() or int(fields[0]) != len(classes) + 1:
            raise AnnotationError(f"{class_file}: line {number}: expected `{len(classes) + 1} "
                                  f"ClassName`, got {line!r}")
        classes.append(fields[1])
    check_unique_class_names(classes, class_file)
    lookup = {c: i for i, c in enumerate(classes)}
    video_root = _first_dir(os.path.join(root, "UCF-101"), root)
    name = f"trainlist0{split_number}.txt" if split == "train" else f"testlist0{split_number}.txt"
    path = os.path.join(list_dir, name)
    samples = []
    for number, line in numbered_lines(path):
        fields = line.split()
        video = fields[0]
        folder = video.replace("\\", "/").split("/")[0]
        if folder not in lookup or len(fields) > 2:
            raise AnnotationError(f"{path}: line {number}: expected `Class/video.avi [label]` "
                                  f"with a class of classInd.txt, got {line!r}")
        label = lookup[folder]
        if len(fields) == 2 and (not fields[1].isdigit() or int(fields[1]) != label + 1):
            raise AnnotationError(f"{path}: line {number}: label {fields[1]} does not match class "
                                  f"{folder} (classInd {label + 1})")
        samples.append((os.path.join(video_root, video), label))
    return samples, classes
