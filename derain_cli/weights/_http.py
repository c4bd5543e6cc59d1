"""Downloading one file over HTTP(S): resumable, retried with back-off after transient failures."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import one_line
from ._errors import DownloadError

# HTTP time-outs in seconds: (connect, read between two packets).
TIMEOUT = (10.0, 60.0)
_CHUNK = 1 << 16


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a download is retried after a transient failure."""

    attempts: int = 5  # failed attempts in a row before giving up
    backoff: float = 1.0  # seconds before the 2nd attempt; doubled for each further one
    max_backoff: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, failures: int) -> float:
        return min(self.backoff * 2 ** (failures - 1), self.max_backoff)


RETRY = RetryPolicy()


class _Transient(Exception):
    """A failure worth retrying (5xx, 429, a connection closed before the end)."""


def _reason(e: BaseException) -> str:
    import requests

    if isinstance(e, requests.Timeout):
        return "timed out"
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(e))
    if found:
        return found.group(1).strip()
    if isinstance(e, requests.exceptions.ChunkedEncodingError):
        return "connection broken"
    return one_line(e)


def http_download(
    url: str,
    dest: Path,
    *,
    progress: bool = True,
    desc: str = "",
    expected_size: int | None = None,
    retry: RetryPolicy | None = None,
) -> None:
    """Download ``url`` into ``dest`` (overwritten), resuming with Range requests after breaks.

    Connection errors, time-outs, 5xx and 429 are retried with exponential backoff; other HTTP
    errors fail at once. Honours the usual proxy and CA-bundle environment variables.
    """
    import requests
    from tqdm import tqdm

    retry = retry or RETRY
    failures, best = 0, 0
    dest.write_bytes(b"")
    bar = tqdm(total=expected_size, unit="B", unit_scale=True, unit_divisor=1024, desc=desc or dest.name,
               file=sys.stderr, disable=not (progress and sys.stderr.isatty()), leave=False)
    with requests.Session() as session, bar:
        session.headers.update({"User-Agent": f"derain-cli/{__version__}", "Accept-Encoding": "identity"})
        while True:
            have = dest.stat().st_size
            try:
                _http_attempt(session, url, dest, have, bar, expected_size)
                return
            except requests.exceptions.SSLError as e:
                raise DownloadError(
                    f"cannot download {url}: TLS certificate check failed ({_reason(e)}); behind a proxy "
                    "with its own certificate authority, set REQUESTS_CA_BUNDLE to its CA file"
                ) from e
            except (_Transient, requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as e:
                size = dest.stat().st_size
                if size > best:  # progress: the budget of failures starts again
                    best, failures = size, 0
                failures += 1
                if failures >= retry.attempts:
                    raise DownloadError(
                        f"cannot download {url}: {_reason(e)} (gave up after {failures} attempts in a row)"
                    ) from e
                retry.sleep(retry.delay(failures))
            except requests.RequestException as e:  # a malformed URL, too many redirects, ...
                raise DownloadError(f"cannot download {url}: {one_line(e)}") from e


def _http_attempt(session, url: str, dest: Path, have: int, bar, expected_size: int | None) -> None:
    headers = {"Range": f"bytes={have}-"} if have else {}
    with session.get(url, stream=True, timeout=TIMEOUT, headers=headers) as resp:
        status = resp.status_code
        if status == 416 and have:
            total = re.search(r"/(\d+)", resp.headers.get("Content-Range", ""))
            if total and int(total.group(1)) == have:
                return  # we already have every byte
            dest.write_bytes(b"")
            raise _Transient("the server refused to resume")
        if status >= 500 or status == 429:
            raise _Transient(f"HTTP {status} {resp.reason}")
        if status not in (200, 206):
            raise DownloadError(f"cannot download {url}: HTTP {status} {resp.reason}", status=status)
        length = resp.headers.get("Content-Length")
        size: int | None
        if status == 206:
            span = re.match(r"bytes (\d+)-\d+/(\d+|\*)", resp.headers.get("Content-Range", ""))
            if not span or int(span.group(1)) != have:
                dest.write_bytes(b"")
                raise _Transient("the server resumed at the wrong offset")
            size = int(span.group(2)) if span.group(2) != "*" else None
            mode = "ab"
        else:
            have = 0
            size = int(length) if length else None
            mode = "wb"
        size = size or expected_size
        # Keep the bytes of a body cut short (urllib3 would drop its last partial read); the size
        # check below notices the shortfall and the next attempt resumes after those bytes.
        resp.raw.enforce_content_length = False
        bar.reset(total=size)
        bar.update(have)
        with open(dest, mode) as fh:
            for chunk in resp.iter_content(_CHUNK):
                fh.write(chunk)
                bar.update(len(chunk))
        got = dest.stat().st_size
        if size is not None and got < size:
            raise _Transient(f"connection closed after {got} of {size} bytes")


