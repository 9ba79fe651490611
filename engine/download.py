"""Fetching one weights file: resumable, atomic, checksummed, Google-Drive aware.

Written on the standard library's ``urllib`` on purpose. The well-kept clients each miss a part we
need: ``torch.hub.download_url_to_file`` cannot resume and does not know Drive's confirmation
page; ``gdown`` knows Drive but is not installed here and does not serve plain mirrors;
``huggingface_hub`` only talks to the Hub; ``requests`` is not a dependency of this project. The
HTTP needed is small: one GET with a ``Range`` header, a look at the status and ``Content-Range``.

``fetch_url(url, dest)`` behaves as follows:

* bytes go to ``dest + ".part"``; after a cut connection the next try (within this call, or a
  later run) asks for ``Range: bytes=<have>-`` and appends; a server that ignores the range
  (status 200) makes it start again from byte 0;
* on completion the part file is fsynced, checked (size, sha256) and renamed onto ``dest``; a
  checksum mismatch moves the part file aside (``<dest>.part.mismatch-<sha>``) and raises
  ``ChecksumError`` -- nothing half-checked ever carries the final name;
* an HTML answer where a file was expected is read as Google Drive's "can't scan this file for
  viruses" page: its download form (or ``confirm=`` link) gives the real file URL;
* a ``<dest>.lock`` file lock keeps two processes (e.g. the ranks of one ``torchrun`` job) from
  writing the same part file.
"""
from __future__ import annotations

import hashlib
import html.parser
import logging
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from http.client import HTTPException

from common.fileio import fsync_dir

logger = logging.getLogger(__name__)

__all__ = ["DownloadError", "ChecksumError", "fetch_url", "copy_file", "sha256_of", "move_aside",
           "drive_confirmation_url", "PART_SUFFIX"]

PART_SUFFIX = ".part"  # unfinished download, kept on purpose so that the next run resumes it
CHUNK = 1 << 20
USER_AGENT = "video-recognition-weights/1"
MAX_PAGE_HOPS = 3  # HTML pages followed (Drive confirmation) before giving up
_BACKOFF_SCALE = 1.0  # seconds per back-off step between resumptions (tests set it to 0)
# Worth another try: a dropped or stalled connection. Not: refused, unknown host, TLS errors.
_TRANSIENT = (TimeoutError, ConnectionResetError, ConnectionAbortedError, HTTPException)


class DownloadError(OSError):
    """A file could not be fetched from one source (the message says which and why)."""


class ChecksumError(DownloadError):
    """The bytes are not the expected ones; the file has been deleted."""


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def _locked(path: str):
    """An exclusive advisory lock on ``path + ".lock"`` (no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: concurrent downloads of one file are the user's business
        yield
        return
    with open(path + ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def move_aside(path: str, digest: str) -> str:
    """Rename a file whose checksum does not match to ``<path>.mismatch-<digest[:16]>`` (kept,
    not deleted: the expectation may be what is wrong); returns the new name."""
    aside = f"{path}.mismatch-{digest[:16]}"
    os.replace(path, aside)
    return aside


def _finish(part: str, dest: str, sha256: str | None, size: int | None, source: str) -> str:
    """Check the complete part file and give it its final name (atomically)."""
    have = os.path.getsize(part)
    if size is not None and have != size:
        os.remove(part)
        raise ChecksumError(f"{source} gave {have} bytes, expected {size}; the file was deleted")
    if sha256:
        actual = sha256_of(part)
        if actual != sha256.lower():
            aside = move_aside(part, actual)
            raise ChecksumError(f"checksum mismatch for {os.path.basename(dest)} from {source}: "
                                f"sha256 {actual}, expected {sha256}; the file is kept as "
                                f"{aside}")
    os.replace(part, dest)
    fsync_dir(os.path.dirname(os.path.abspath(dest)))
    return dest


def _progress(total: int | None, initial: int, name: str):
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=name, disable=None, leave=False)  # disable=None: only on a terminal


# ---------------------------------------------------------------------------------------------
# Google Drive's confirmation page
# ---------------------------------------------------------------------------------------------
class _DownloadFormParser(html.parser.HTMLParser):
    """Collects the download form's action and hidden inputs, and every link's href."""

    def __init__(self):
        super().__init__()
        self.action, self.fields, self.links, self._in_form = None, {}, [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and (attrs.get("id") == "download-form" or
                              "download" in (attrs.get("action") or "")):
            self.action, self._in_form = attrs.get("action"), True
        elif tag == "input" and self._in_form and attrs.get("name"):
            self.fields[attrs["name"]] = attrs.get("value") or ""
        elif tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False


def drive_confirmation_url(page: str, page_url: str) -> str | None:
    """The real file URL behind a Drive large-file warning page, or None for any other page.

    Drive answers big files with a page holding a GET form (``id``, ``export``, ``confirm``,
    ``uuid``); older pages carried a ``...&confirm=TOKEN&id=...`` link instead.
    """
    parser = _DownloadFormParser()
    parser.feed(page)
    if parser.action:
        action = urllib.parse.urljoin(page_url, parser.action)
        query = urllib.parse.urlencode(parser.fields)
        return f"{action}{'&' if '?' in action else '?'}{query}" if query else action
    for link in parser.links:
        if "confirm=" in link:
            return urllib.parse.urljoin(page_url, link)
    return None


# ---------------------------------------------------------------------------------------------
# One source
# ---------------------------------------------------------------------------------------------
def _open(url: str, offset: int, timeout: float):
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _resume_offset(response, offset: int) -> int:
    """Where the body of this response starts in the file (0 when the range was ignored)."""
    if response.status != 206:
        return 0
    content_range = response.headers.get("Content-Range", "")  # "bytes START-END/TOTAL"
    try:
        start = int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return 0
    return start if start == offset else 0


def _expected_total(response, start: int) -> int | None:
    length = response.headers.get("Content-Length")
    return start + int(length) if length and length.isdigit() else None


def _write_body(response, part: str, start: int, total: int | None, progress: bool
                ) -> tuple[int, bool]:
    """Write the response body into ``part`` from byte ``start`` (fsynced, even when cut).

    Returns (bytes in the part file, whether the connection broke off).
    """
    name = os.path.basename(part)[:-len(PART_SUFFIX)]
    written, cut = start, False
    bar = _progress(total, start, name) if progress else None
    try:
        with open(part, "r+b" if start else "wb") as f:
            f.seek(start)
            f.truncate()
            try:
                for block in iter(lambda: response.read(CHUNK), b""):
                    f.write(block)
                    written += len(block)
                    if bar is not None:
                        bar.update(len(block))
            except (HTTPException, OSError) as err:
                cut = True
                logger.warning("%s: connection cut at byte %d (%s)", name, written,
                               type(err).__name__)
            f.flush()
            os.fsync(f.fileno())
    finally:
        if bar is not None:
            bar.close()
    return written, cut


def fetch_url(url: str, dest: str, sha256: str | None = None, size: int | None = None,
              retries: int = 3, timeout: float = 60.0, progress: bool = True) -> str:
    """Download ``url`` to ``dest`` (see the module docstring); returns ``dest``.

    Raises ``DownloadError`` (source unreachable, HTTP error, a web page instead of the file, or
    still cut after ``retries`` resumptions; the part file stays for the next run) or
    ``ChecksumError``.
    """
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    part = dest + PART_SUFFIX
    name = os.path.basename(dest)
    with _locked(dest):
        if os.path.isfile(dest):  # another process finished it while we waited for the lock
            return dest
        cuts, hops, current = 0, 0, url
        while True:
            have = os.path.getsize(part) if os.path.isfile(part) else 0
            try:
                response = _open(current, have, timeout)
            except urllib.error.HTTPError as err:
                if err.code == 416 and have:  # nothing left to send: the part file is whole
                    return _finish(part, dest, sha256, size, url)
                raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
            except (urllib.error.URLError, HTTPException, OSError) as err:
                reason = getattr(err, "reason", err)
                if cuts < retries and isinstance(reason, _TRANSIENT):
                    cuts += 1
                    # said even under --quiet (a warning): a stalled mirror is not silence
                    logger.warning("%s: no answer from %s within %.0f s (%s); try %d of %d",
                                   name, urllib.parse.urlsplit(current).netloc or current,
                                   timeout, type(reason).__name__, cuts + 1, retries + 1)
                    time.sleep(min(2 ** cuts, 10) * _BACKOFF_SCALE)
                    continue
                raise DownloadError(f"{url}: cannot connect ({reason})") from None
            with response:
                if "text/html" in response.headers.get("Content-Type", ""):
                    page = response.read(2 << 20).decode("utf-8", "replace")
                    target = drive_confirmation_url(page, response.geturl())
                    if target is None or hops >= MAX_PAGE_HOPS:
                        raise DownloadError(
                            f"{url}: the server sent a web page instead of the file (a link that "
                            f"moved or expired, a download quota, or a sign-in page)")
                    hops, current = hops + 1, target
                    logger.info("%s: following Google Drive's download confirmation", name)
                    continue
                start = _resume_offset(response, have)
                total = _expected_total(response, start)
                if total is None and size is not None:
                    total = size
                if have and start:
                    logger.info("%s: resuming at byte %d", name, start)
                written, cut = _write_body(response, part, start, total, progress)
            if cut or (total is not None and written < total):  # resume where it stopped
                if cuts >= retries:
                    raise DownloadError(
                        f"{url}: connection cut at byte {written} of {total or '?'}, {retries} "
                        f"resumptions failed; run again to resume from {part}")
                cuts += 1
                time.sleep(min(2 ** cuts, 10) * _BACKOFF_SCALE)
                continue
            return _finish(part, dest, sha256, size, url)


def copy_file(source: str, dest: str, sha256: str | None = None, size: int | None = None) -> str:
    """Copy a local file (a mirror directory) to ``dest`` with the same checks and atomicity."""
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    with _locked(dest):
        part = dest + PART_SUFFIX
        with open(source, "rb") as src, open(part, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
        return _finish(part, dest, sha256, size, source)
