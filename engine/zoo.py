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

``import engine.zoo`` also hands ``fetch`` to every model family that accepts a weights locator
(``family.set_weights_locator``), which is how ``timm.create_model(..., pretrained=True)`` of a
released variant finds its file without the model package importing the engine.
"""
from __future__ import annotations

import difflib
import logging
import os
import urllib.parse
from dataclasses import dataclass

from .download import ChecksumError, DownloadError, copy_file, fetch_url, move_aside, \
    sha256_of

logger = logging.getLogger(__name__)

__all__ = ["Weights", "WeightsUnavailable", "ZOO", "register_weights", "get", "lookup",
           "weights_dir", "cached_path", "is_cached", "fetch", "resolve", "resolve_config_weights",
           "zoo_markdown", "sources"]

DEFAULT_DIR = os.path.join("~", ".cache", "video-recognition", "weights")


@dataclass(frozen=True)
class Weights:
    """One released weights file."""

    name: str
    file_name: str  # the name in the cache and on a mirror
    urls: tuple  # published sources, tried in order
    what: str  # one line: which network, trained on what
    key: str  # where it goes: "--checkpoint", "TRAIN.PRETRAINED_PATH", ...
    configs: tuple = ()  # configs it belongs to (the first one evaluates it)
    sha256: str | None = None  # published checksum; None = recorded at first download
    size: int | None = None  # bytes, when published
    top1: str = ""  # published top-1 accuracy (%) on the config's dataset
    params: str = ""  # parameters of the network as built by the config
    aliases: tuple = ()  # other names that resolve to this entry
    timm_name: str = ""  # timm ``arch.tag`` whose pretrained=True loads this file


class WeightsUnavailable(FileNotFoundError):
    """No verified copy of a zoo file could be had; the message says how to provide one.

    A FileNotFoundError, so every entry point already turns it into one line and exit code 2.
    """


def _drive(file_id: str) -> str:
    return f"https://drive.google.com/uc?export=download&id={file_id}"


_VFN_CONFIG = "configs/video_focalnet/{}.yaml"
_VFN_SIZES = {"tiny": "T", "small": "S", "base": "B"}
_DATASETS = {"k400": ("kinetics400", "Kinetics-400"), "k600": ("kinetics600", "Kinetics-600"),
             "ssv2": ("ssv2", "Something-Something v2"), "diving48": ("diving48", "Diving-48"),
             "activitynet": ("activitynet", "ActivityNet v1.3")}


def _video_focalnet(size: str, dataset: str, drive_id: str, top1: str, params: str) -> Weights:
    folder, title = _DATASETS[dataset]
    config = _VFN_CONFIG.format(f"{folder}/{size}" if dataset == "k400" else f"{folder}/base")
    name = f"video_focalnet_{size}_{dataset}"
    return Weights(
        name=name, file_name=f"{name}.pth", urls=(_drive(drive_id),),
        what=f"Video-FocalNet-{_VFN_SIZES[size]} trained on {title} (official checkpoint)",
        key="--checkpoint", configs=(config,), top1=top1,
        params=params,
        timm_name=f"video_focalnet_{size}.{dataset}")


def _focalnet_2d(size: str) -> list[Weights]:
    others = ("kinetics600", "ssv2", "diving48", "activitynet") if size == "base" else ()
    configs = tuple(_VFN_CONFIG.format(c) for c in (f"kinetics400/{size}",
                                                    *(f"{d}/base" for d in others)))
    letter = _VFN_SIZES[size]
    timm_repo = f"focalnet_{size}_srf.ms_in1k"
    return [
        Weights(name=f"focalnet_{size}_srf", file_name=f"focalnet_{size}_srf.pth",
                urls=("https://github.com/microsoft/FocalNet/releases/download/v1.0.0/"
                      f"focalnet_{size}_srf.pth",),
                what=f"FocalNet-{letter} (SRF), ImageNet-1K; initialises Video-FocalNet-{letter}",
                key="TRAIN.PRETRAINED_PATH", configs=configs),
        Weights(name=timm_repo, file_name=f"{timm_repo}.safetensors",
                urls=(f"https://huggingface.co/timm/{timm_repo}/resolve/main/model.safetensors",),
                what=f"the same FocalNet-{letter} (SRF) in timm's format (Hugging Face Hub)",
                key="TRAIN.PRETRAINED_PATH", configs=configs),
    ]


_OPENAI_B16_SHA256 = "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f"
_VITA_CONFIG = "configs/vita_clip/k400/vita_clip_b16.yaml"

ZOO: dict[str, Weights] = {}


def _owner(label: str) -> Weights | None:
    for entry in ZOO.values():
        if label == entry.name or label in entry.aliases:
            return entry
    return None


def register_weights(entry: Weights) -> Weights:
    """Add (or replace) an entry; its name and aliases must not belong to another entry."""
    for label in (entry.name, *entry.aliases):
        owner = _owner(label)
        if owner is not None and owner.name != entry.name:
            raise ValueError(f"zoo name {label!r} already belongs to {owner.name}")
    ZOO[entry.name] = entry
    return entry


for _entry in [
    _video_focalnet("tiny", "k400", "1wsUjJbPVQd7pf-OocD9mVU8pak0gdBTP", "79.8", "49.6 M"),
    _video_focalnet("small", "k400", "1gO4_tluuoR4mn2bSQRNyy9_wFCnUSiQ0", "81.4", "88.7 M"),
    _video_focalnet("base", "k400", "1tc1AKKmvHN7Hzxpd53QsBIMQZmLH8ozX", "83.6", "157.4 M"),
    _video_focalnet("base", "k600", "16u1dij3dde0KmaajiB5lAFy8FaRvQDmS", "86.7", "157.6 M"),
    _video_focalnet("base", "ssv2", "1MIPLjMVDmYEY5jmJs8pRRIj4gKNVqETg", "71.1", "157.2 M"),
    _video_focalnet("base", "diving48", "1MMZeDucN1cfC5MiTGIft8xNfo5358dA2", "90.8", "157.0 M"),
    _video_focalnet("base", "activitynet", "1Zku86i9Ol1gabqBqf0h1vtL-_H5gglA3", "89.8", "157.2 M"),
    *_focalnet_2d("tiny"), *_focalnet_2d("small"), *_focalnet_2d("base"),
    Weights(name="openai_clip_vit_b16", file_name="ViT-B-16.pt",
            urls=("https://openaipublic.azureedge.net/clip/models/"
                  f"{_OPENAI_B16_SHA256}/ViT-B-16.pt",),
            sha256=_OPENAI_B16_SHA256, aliases=("openai:ViT-B/16",),
            what="OpenAI CLIP ViT-B/16 (TorchScript archive); Vita-CLIP's backbone",
            key="MODEL.VITA.BACKBONE_PATH", configs=(_VITA_CONFIG,)),
    Weights(name="vita_clip_b16_k400", file_name="vita_clip_b16_k400.pth",
            urls=(_drive("1vxgNg_lmGBRKNiY4VAy-aiCb-GuOAJNZ"),),
            what="Vita-CLIP-B/16 trained on Kinetics-400 (official checkpoint)",
            key="--checkpoint", configs=(_VITA_CONFIG,), top1="80.5 (1x1 view)",
            params="186.9 M"),
    Weights(name="vita_clip_backbone", file_name="clip_pretrained.pth",
            urls=(_drive("17xSat9ZqL8p3RjpfTdqjxrBfcwZgZ2OE"),),
            what="the official repo's converted CLIP ViT-B/16 backbone (legacy alternative)",
            key="MODEL.VITA.BACKBONE_PATH", configs=(_VITA_CONFIG,)),
]:
    register_weights(_entry)


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
    labels = sorted(label for e in ZOO.values() for label in (e.name, *e.aliases))
    close = difflib.get_close_matches(name, labels, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return f"{name!r} {problem}; {hint}`python tools/download_weights.py --list` shows the names"


def _by_file_name(file_name: str) -> Weights | None:
    for entry in ZOO.values():
        if entry.file_name == file_name:
            return entry
    return None


def weights_dir() -> str:
    """``$VIDEO_WEIGHTS_DIR``, else ``~/.cache/video-recognition/weights``; NotADirectoryError
    when that names a file."""
    folder = os.path.expanduser(os.environ.get("VIDEO_WEIGHTS_DIR") or DEFAULT_DIR)
    if os.path.exists(folder) and not os.path.isdir(folder):
        source = "VIDEO_WEIGHTS_DIR" if os.environ.get("VIDEO_WEIGHTS_DIR") else "the cache"
        raise NotADirectoryError(f"{source} {folder} is a file, not a folder; point "
                                 f"VIDEO_WEIGHTS_DIR at a folder for the weights cache")
    return folder


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
def _looks_like_a_name(value: str) -> bool:
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
        if _looks_like_a_name(value):
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
    for entry in ZOO.values():
        names = " ".join(f"`{label}`" for label in (entry.name, *entry.aliases))
        config = f"`{entry.configs[0]}`" if entry.configs else "–"
        if len(entry.configs) > 1:
            config += f" (+{len(entry.configs) - 1} more)"
        lines.append(f"| {names} | {entry.what} | `{entry.key}` | {config} | {entry.top1 or '–'} "
                     f"| {entry.params or '–'} | {_size_text(entry.size)} |")
    return "\n".join(lines) + "\n"


def _connect_model_families() -> None:
    """Give ``fetch`` to each model family that can use it (timm pretrained=True)."""
    from .registry import model_families
    try:
        families = model_families()
    except RuntimeError:  # nothing installed: nothing to connect
        return
    for family in families:
        setter = getattr(family, "set_weights_locator", None)
        if setter is not None:
            setter(fetch)


_connect_model_families()
