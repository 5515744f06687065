"""Fetch one file and verify it before it appears under its final name.

Bytes land in ``<dest>.part``; only a file whose size and checksums match is renamed to
``dest``, so an interrupted or corrupt download never sits under the final name. The ``.part``
survives an interruption and the next attempt (or the next run) resumes it with an HTTP Range
request; a server that ignores Range (200 instead of 206) makes it start over. Transient
failures (connection reset or cut short, timeouts, 5xx, 408/429) are retried with exponential
backoff; a 404, a refused connection or an unknown host are not, and their error says where to
place the file by hand and which checksum it must have.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

CHUNK = 1 << 20
USER_AGENT = "facerepro-fetch/1"
log = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    """A file could not be fetched; the message says what to do."""


class ChecksumError(DownloadError):
    """The bytes arrived but are not the expected file."""


class NotFoundError(DownloadError):
    """The server (or the local mirror) does not have the file."""


class UnreachableError(DownloadError):
    """No connection to the server (offline, refused, unknown host)."""


class ManualPlacementError(DownloadError):
    """The file has no public download and was not placed by hand yet."""


class _Transient(Exception):
    """Worth another attempt: the .part file is kept and resumed."""


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    return digests(path)[0]


def digests(path: str | Path) -> tuple[str, str]:
    """(sha256, md5) of a file in one pass (md5 only for datasets that publish nothing else)."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def fetch(url: str | None, dest: str | Path, sha256: str | None = None, *,
          md5: str | None = None, size: int | None = None, manual: str | Path | None = None,
          note: str = "", retries: int = 4, backoff: float = 1.0, timeout: float = 60.0,
          progress: bool = True) -> Path:
    """Copy ``url`` (https://, http://, file://) to ``dest``; keep it only if it verifies.

    ``sha256`` and/or ``md5`` are checked (and ``size`` first, when known); with neither, the
    file is refused with its sha256 in the message, so the user can confirm and pin it.
    ``manual`` is where a user may place the file by hand: when it exists it is used instead of
    the network (and verified the same way); ``url=None`` means that is the only way.
    ``note`` (provenance, licence) is added to every error. Returns ``dest``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    check = _Check(sha256, md5, size, note)
    place = Path(manual) if manual is not None else dest
    if dest.exists() and check.matches(dest):
        return dest
    part = dest.with_name(dest.name + ".part")
    if manual is not None and Path(manual).exists():
        _link_or_copy(Path(manual), part)
        check.verify(part, f"the file placed at {manual}", place)
        os.replace(part, dest)
        return dest
    if url is None:
        raise ManualPlacementError(
            f"{dest.name} has no public download: place it by hand at {place.resolve()} "
            f"({check.expected()}) and re-run. {note}".rstrip())
    for attempt in range(retries + 1):
        try:
            _download(url, part, timeout, progress, check.size)
            break
        except _Transient as exc:
            if attempt == retries:
                raise DownloadError(
                    f"{url}: gave up after {retries + 1} attempts ({exc}). The partial file "
                    f"{part} is kept and the next run resumes it; or place the file by hand at "
                    f"{place.resolve()} ({check.expected()}) and re-run. {note}".rstrip()
                ) from exc
            delay = backoff * 2 ** attempt
            log.warning("%s: %s; retrying in %.1f s", url, exc, delay)
            time.sleep(delay)
        except DownloadError as exc:
            raise type(exc)(f"{exc}. Place {dest.name} by hand at {place.resolve()} "
                            f"({check.expected()}) and re-run. {note}".rstrip()) from exc
    check.verify(part, url, place)
    os.replace(part, dest)
    return dest


class _Check:
    """The expected size and checksums of one file, and the messages when they differ."""

    def __init__(self, sha256: str | None, md5: str | None, size: int | None, note: str):
        self.sha256, self.md5, self.size, self.note = sha256, md5, size, note

    def expected(self) -> str:
        if self.sha256:
            return f"expected sha256 {self.sha256}"
        if self.md5:
            return f"expected md5 {self.md5}; no sha256 is published"
        return "no published checksum: you will be asked to confirm its sha256"

    def matches(self, path: Path) -> bool:
        if not (self.sha256 or self.md5):
            return False
        if self.size is not None and path.stat().st_size != self.size:
            return False
        sha, md5 = digests(path)
        return (not self.sha256 or sha == self.sha256) and (not self.md5 or md5 == self.md5)

    def verify(self, part: Path, origin: str, place: Path) -> None:
        """Raise (and delete ``part``, a copy or link, never the user's file) unless it
        matches; a wrong file must not be resumed or kept."""
        got = part.stat().st_size
        problem = None
        if self.size is not None and got != self.size:
            problem = f"it has {got:,} bytes, expected {self.size:,}"
        else:
            sha, md5 = digests(part)
            if self.sha256 and sha != self.sha256:
                problem = f"its sha256 is {sha}, expected {self.sha256}"
            elif self.md5 and md5 != self.md5:
                problem = f"its md5 is {md5}, expected {self.md5}"
            elif not (self.sha256 or self.md5):
                part.unlink()
                raise ChecksumError(
                    f"{origin}: no trusted checksum is known for {place.name}, so it is not "
                    f"kept. Its sha256 is {sha}: if this is the copy you received from the "
                    f"dataset's authors, pin that sha256 in the config and re-run. "
                    f"{self.note}".rstrip())
        if problem:
            part.unlink()
            raise ChecksumError(
                f"{origin}: {problem}; the file was not kept. It is corrupt or another release: "
                f"re-fetch it, or place the right file at {place.resolve()}. "
                f"{self.note}".rstrip())


def _link_or_copy(src: Path, part: Path) -> None:
    # A hard link costs no space for multi-GB archives; a copy where links are impossible.
    part.unlink(missing_ok=True)
    try:
        os.link(src, part)
    except OSError:
        shutil.copyfile(src, part)


def _download(url: str, part: Path, timeout: float, progress: bool,
              size: int | None) -> None:
    """Append the rest of ``url`` to ``part`` (start over when resuming is impossible)."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme == "file":
        _copy_file_url(url, part, progress)
        return
    if scheme not in ("http", "https"):
        raise DownloadError(f"{url}: unsupported scheme {scheme!r} (https, http or file)")
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset >= size:
        if offset == size:
            return      # complete from an earlier run: verified by the caller
        part.unlink()
        offset = 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            if _content_range(exc.headers.get("Content-Range", ""))[2] == offset:
                return  # the .part already holds the whole file
            part.unlink()
            raise _Transient("the server refused the resume range; starting over") from exc
        raise _classify(url, exc) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _classify(url, exc) from exc
    with response:
        if response.status == 206:
            start, _, total = _content_range(response.headers.get("Content-Range", ""))
            if start != offset:
                part.unlink()
                raise _Transient(f"asked to resume at byte {offset}, got byte {start}; "
                                 f"starting over")
            mode = "ab"
        else:
            # 200: no Range sent, or the server ignores it; either way the body is the whole
            # file, so the .part starts over.
            offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
        _stream(url, response, part, mode, offset, total, progress)


def _stream(url: str, response: http.client.HTTPResponse, part: Path, mode: str, offset: int,
            total: int | None, progress: bool) -> None:
    received = offset
    with open(part, mode) as out, _bar(part, total, offset, progress) as bar:
        while True:
            try:
                block = response.read(CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                raise _Transient(f"connection lost after {received:,} bytes ({exc!r})") from exc
            if not block:
                break
            out.write(block)
            received += len(block)
            bar.update(len(block))
    if total is not None and received < total:
        raise _Transient(f"connection closed after {received:,} of {total:,} bytes")


def _copy_file_url(url: str, part: Path, progress: bool) -> None:
    source = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    if not source.is_file():
        raise NotFoundError(f"{url}: no such file")
    total = source.stat().st_size
    offset = part.stat().st_size if part.exists() else 0
    if offset > total:
        part.unlink()
        offset = 0
    with open(source, "rb") as src, open(part, "ab") as out, \
            _bar(part, total, offset, progress) as bar:
        src.seek(offset)
        while block := src.read(CHUNK):
            out.write(block)
            bar.update(len(block))


def _bar(part: Path, total: int | None, offset: int, progress: bool) -> tqdm:
    # sys.stderr at call time: a rule script has pointed it at its log file by then.
    interactive = sys.stderr.isatty()
    return tqdm(total=total, initial=offset, desc=part.name.removesuffix(".part"), unit="B",
                unit_scale=True, unit_divisor=1024, file=sys.stderr, disable=not progress,
                mininterval=0.5 if interactive else 30.0)


_RANGE_RE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")


def _content_range(value: str) -> tuple[int | None, int | None, int | None]:
    """(first, last, total) of a Content-Range header; None where absent or ``*``."""
    match = _RANGE_RE.match(value.strip())
    if not match:
        return None, None, None
    first, last, total = match.groups()
    return (int(first) if first else None, int(last) if last else None,
            int(total) if total and total != "*" else None)


def _classify(url: str, exc: BaseException) -> BaseException:
    """The error to raise (or retry) for a failed request."""
    if isinstance(exc, urllib.error.HTTPError):
        if exc.code >= 500 or exc.code in (408, 429):
            return _Transient(f"HTTP {exc.code} {exc.reason}")
        if exc.code in (404, 410):
            return NotFoundError(f"{url} answered HTTP {exc.code} {exc.reason}: the file is not "
                                 f"at this address (moved or withdrawn)")
        return DownloadError(f"{url} answered HTTP {exc.code} {exc.reason}")
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, (ConnectionResetError, ConnectionAbortedError, TimeoutError,
                           http.client.HTTPException)):
        return _Transient(repr(reason))
    return UnreachableError(f"cannot reach {url} ({reason}): no network, or the host is down")
