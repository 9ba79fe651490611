"""The model zoo: every released weights file by name, fetched once, verified at every use.

A name works wherever a weights path does (``TRAIN.PRETRAINED_PATH``, ``MODEL.VITA.BACKBONE_PATH``,
``tools/test.py --checkpoint``): ``resolve(value)`` returns a real path unchanged and turns a zoo
name into the cached file, downloading it first when needed. ``engine.build.build_model`` does
this for the keys a model family lists in its ``weight_keys``, before the family builds, so the
model packages only ever see paths.

Where the files live: ``$VIDEO_WEIGHTS_DIR``, else ``~/.cache/video-recognition/weights``, under the
zoo's file name. Where they come from: ``$VIDEO_WEIGHTS_MIRROR`` first (a base URL or a local
folder holding the files under the same file names), then the published sources in order.
``VIDEO_WEIGHTS_OFFLINE=1`` uses only the cache and a local-folder mirror.

Checksums: an entry's ``sha256`` when one is published; otherwise the first download records
the file's sha256 beside it (``<file>.sha256``, the format of ``sha256sum``) and every later use
checks the file against that record (a malformed record counts as none). A file that fails its
check is moved aside to ``<file>.mismatch-<its sha256>`` (named in the message), never deleted.

The entries are not written here: each model package declares its released files beside its
model (``video_focalnet/pretrained.py``, ``vita_clip/pretrained.py``) and hands them over as its
family's ``released_weights``. This module is generic: lookup, cache, download, checksums.
Importing it changes nothing in any other module.
"""
from __future__ import annotations

import difflib
import logging
import os
import urllib.parse

from common.weights import Weights, weights_dir

from .contract import ReleasesWeights
from .download import ChecksumError, DownloadError, copy_file, fetch_url, move_aside, \
    sha256_of
from .registry import model_families

logger = logging.getLogger(__name__)

__all__ = ["Weights", "WeightsUnavailable", "entries", "register_weights", "get", "lookup",
           "weights_dir", "cached_path", "is_cached", "fetch", "resolve", "resolve_config_weights",
           "looks_like_a_name", "zoo_markdown", "sources"]


class WeightsUnavailable(FileNotFoundError):
    """No verified copy of a zoo file could be had; the message says how to provide one.

    A FileNotFoundError, so every entry point already turns it into one line and exit code 2.
    """


_ENTRIES: dict[str, Weights] = {}  # name -> entry, in registration order
_FAMILIES_READ: set = set()  # the families whose released_weights are in _ENTRIES


def entries() -> dict[str, Weights]:
    """name -> Weights: the files every registered model family declares
    (``family.released_weights``), read at the first use, plus what ``register_weights`` added."""
    try:
        families = model_families()
    except RuntimeError:  # no model package installed: only what was registered by hand
        families = []
    # the same order in every process; every new family is marked read before its entries are
    # added (register_weights looks names up through this function)
    new = sorted((f for f in families if f.name not in _FAMILIES_READ), key=lambda f: f.name)
    _FAMILIES_READ.update(f.name for f in new)
    for family in new:
        for entry in family.released_weights if isinstance(family, ReleasesWeights) else ():
            register_weights(entry)
    return _ENTRIES


def _owner(label: str) -> Weights | None:
    for entry in entries().values():
        if label == entry.name or label in entry.aliases:
            return entry
    return None


def register_weights(entry: Weights) -> Weights:
    """Add (or replace) an entry; its name and aliases must not belong to another entry.
    Released files belong in their model package (``released_weights``); this is for a
    session's own files (tests, notebooks)."""
    for label in (entry.name, *entry.aliases):
        owner = _owner(label)
        if owner is not None and owner.name != entry.name:
            raise ValueError(f"zoo name {label!r} already belongs to {owner.name}")
    _ENTRIES[entry.name] = entry
    return entry


# ---------------------------------------------------------------------------------------------
# Looking names up
# ---------------------------------------------------------------------------------------------
def lookup(name: str) -> Weights | None:
    """The entry called ``name`` (or with that alias), None when there is none."""
    return _owner(name) if isinstance(name, str) else None


def get(name: str) -> Weights:
    """The entry called ``name``; KeyError naming the closest known names otherwise."""
    entry = lookup(name)
    if entry is None:
        raise KeyError(_unknown_name_message(name, "is not a model-zoo name"))
    return entry


def _unknown_name_message(name: str, problem: str) -> str:
    labels = sorted(label for e in entries().values() for label in (e.name, *e.aliases))
    close = difflib.get_close_matches(name, labels, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return f"{name!r} {problem}; {hint}`python tools/download_weights.py --list` shows the names"


def _by_file_name(file_name: str) -> Weights | None:
    for entry in entries().values():
        if entry.file_name == file_name:
            return entry
    return None


def cached_path(name: str) -> str:
    """Where the file of ``name`` is (or will be) kept."""
    return os.path.join(weights_dir(), get(name).file_name)


def is_cached(name: str) -> bool:
    return os.path.isfile(cached_path(name))


# ---------------------------------------------------------------------------------------------
# Recorded checksums
# ---------------------------------------------------------------------------------------------
def _record_path(path: str) -> str:
    return path + ".sha256"


def _recorded_sha256(path: str) -> str | None:
    """The sha256 recorded beside ``path``; None when there is none or the record is malformed
    (not 64 hex digits): a broken record must never condemn a good file."""
    try:
        with open(_record_path(path), encoding="utf-8", errors="replace") as f:
            digest = f.read().split()[0].lower()
    except (OSError, IndexError):
        return None
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        logger.warning("ignoring %s: not a sha256 record (64 hex digits); it is written again "
                       "from the file", _record_path(path))
        return None
    return digest


def _record_sha256(path: str, digest: str) -> None:
    try:
        with open(_record_path(path), "w", encoding="utf-8") as f:
            f.write(f"{digest}  {os.path.basename(path)}\n")
    except OSError as err:  # a read-only shared cache: still usable, just not recorded
        logger.warning("cannot record the sha256 of %s (%s)", path, err)
        return
    logger.info("recorded sha256 %s of %s (checked at every later use)", digest, path)


# ---------------------------------------------------------------------------------------------
# Fetching
# ---------------------------------------------------------------------------------------------
def _offline() -> bool:
    return os.environ.get("VIDEO_WEIGHTS_OFFLINE", "").lower() in ("1", "true", "yes")


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def sources(entry: Weights) -> list[str]:
    """Where ``entry`` is looked for, in order: the mirror (URL or folder), then its URLs."""
    found = []
    mirror = os.environ.get("VIDEO_WEIGHTS_MIRROR", "").strip()
    if mirror.startswith("file://"):
        mirror = urllib.parse.unquote(urllib.parse.urlparse(mirror).path)
    if mirror and _is_url(mirror):
        found.append(f"{mirror.rstrip('/')}/{urllib.parse.quote(entry.file_name)}")
    elif mirror:
        found.append(os.path.join(os.path.expanduser(mirror), entry.file_name))
    return found + list(entry.urls)


def _verified(path: str, expected: str | None, problems: list) -> bool:
    """True when the file matches ``expected``. A mismatching file is moved aside, never
    deleted (an offline user keeps it and can decide), and ``problems`` says where to."""
    if not expected:
        return True
    actual = sha256_of(path)
    if actual == expected:
        return True
    aside = move_aside(path, actual)
    note = (f"{path}: sha256 {actual} is not the expected {expected} (corrupt or replaced); "
            f"moved aside to {aside}")
    logger.warning("%s; fetching it again", note)
    problems.append(note)
    return False


def fetch(name: str, progress: bool = True) -> str:
    """The verified local file of zoo entry ``name``, downloaded first when needed.

    Raises KeyError for an unknown name and WeightsUnavailable when no source gives the file.
    """
    entry = get(name)
    dest = os.path.join(weights_dir(), entry.file_name)
    expected = entry.sha256.lower() if entry.sha256 else _recorded_sha256(dest)
    problems = []
    if os.path.isfile(dest) and _verified(dest, expected, problems):
        if expected is None:  # placed by hand: from now on this copy is the reference
            _record_sha256(dest, sha256_of(dest))
        return dest
    for source in sources(entry):
        remote = _is_url(source)
        if remote and _offline():
            problems.append(f"{source}: not tried (VIDEO_WEIGHTS_OFFLINE is set)")
            continue
        if not remote and not os.path.isfile(source):
            problems.append(f"{source}: no such file in the mirror folder")
            continue
        logger.info("%s: fetching %s from %s", entry.name, entry.file_name, source)
        try:
            if remote:
                fetch_url(source, dest, sha256=expected, size=entry.size, progress=progress)
            else:
                copy_file(source, dest, sha256=expected, size=entry.size)
        except ChecksumError as err:
            problems.append(str(err))
            continue
        except DownloadError as err:
            problems.append(str(err))
            continue
        if expected is None:
            _record_sha256(dest, sha256_of(dest))
        return dest
    raise WeightsUnavailable(_unavailable_message(entry, dest, expected, problems))


def _unavailable_message(entry: Weights, dest: str, expected: str | None,
                         problems: list[str]) -> str:
    if entry.sha256:
        checksum = f"sha256 {expected}"
    elif expected:
        checksum = (f"sha256 {expected} as recorded at the first download in "
                    f"{_record_path(dest)}; delete that record if the source changed on purpose")
    else:
        checksum = "no sha256 published: it is recorded when the file is first used"
    tried = "".join(f"\n  - {p}" for p in problems)
    return (f"cannot get the weights {entry.name!r} ({entry.file_name}):{tried}\n"
            f"Download {entry.urls[0]} by hand and save it as {dest} (expected file name "
            f"{entry.file_name}, {checksum}), or set VIDEO_WEIGHTS_MIRROR to a URL or folder "
            f"that holds {entry.file_name}.")


# ---------------------------------------------------------------------------------------------
# Names where paths are expected
# ---------------------------------------------------------------------------------------------
def looks_like_a_name(value: str) -> bool:
    """A value spelled like a zoo name (no folder, no extension), not like a file path."""
    return os.sep not in value and not os.path.splitext(value)[1]


def resolve(value: str, key: str = "", progress: bool = True) -> str:
    """A weights path or zoo name -> a local file path.

    An existing path always wins. A zoo name (or alias) gives the cached, verified file. A path
    that does not exist but whose file name is a zoo file name (the released configs say
    ``pretrained/focalnet_tiny_srf.pth``) gives that zoo file, with a log line. Anything else is
    returned unchanged for the loader to report, except a bare word close to a zoo name, which
    raises WeightsUnavailable with the suggestion. ``key`` prefixes error messages.
    """
    if not value or os.path.exists(value):
        return value
    prefix = f"key {key}: " if key else ""
    entry = lookup(value)
    if entry is None:
        entry = _by_file_name(os.path.basename(value))
        if entry is not None:
            logger.info("%s%s does not exist; using the model zoo's %s", prefix, value,
                        entry.name)
    if entry is None:
        if looks_like_a_name(value):
            raise WeightsUnavailable(prefix + _unknown_name_message(
                value, "is neither an existing file nor a model-zoo name"))
        return value
    try:
        return fetch(entry.name, progress=progress)
    except WeightsUnavailable as err:
        raise WeightsUnavailable(prefix + str(err)) from None


def resolve_config_weights(cfg, keys):
    """``cfg`` with every weights key in ``keys`` (dotted, e.g. ``TRAIN.PRETRAINED_PATH``)
    resolved to a local path; the same object when nothing changes, else a clone (kept frozen
    if it was)."""
    changes = {}
    for key in keys:
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        value = node[leaf]
        if isinstance(value, str) and value:
            path = resolve(value, key)
            if path != value:
                changes[key] = path
    if not changes:
        return cfg
    frozen = cfg.is_frozen()
    cfg = cfg.clone()
    cfg.defrost()
    for key, path in changes.items():
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = path
    if frozen:
        cfg.freeze()
    return cfg


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------
def _size_text(size: int | None) -> str:
    return f"{size / 2 ** 20:.0f} MiB" if size else "–"


def zoo_markdown() -> str:
    """The zoo as a Markdown table (docs/model_zoo.md embeds it; a test keeps them equal)."""
    lines = ["| name | what | use with | config | top-1 (%) | params | size |",
             "|---|---|---|---|---|---|---|"]
    for entry in entries().values():
        names = " ".join(f"`{label}`" for label in (entry.name, *entry.aliases))
        config = f"`{entry.configs[0]}`" if entry.configs else "–"
        if len(entry.configs) > 1:
            config += f" (+{len(entry.configs) - 1} more)"
        lines.append(f"| {names} | {entry.what} | `{entry.key}` | {config} | {entry.top1 or '–'} "
                     f"| {entry.params or '–'} | {_size_text(entry.size)} |")
    return "\n".join(lines) + "\n"
