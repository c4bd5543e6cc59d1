"""Downloading weights from a real HTTP server on 127.0.0.1, mirrors and offline mode.

The files served are the real DRN checkpoints from ../shared/weights (44 KB each).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from derain_cli import weights
from derain_cli.errors import WeightsError
from tests.conftest import REPO as REPO_ROOT
from tests.test_weights import drn_file, make_model, model_files

PATH = "/csdwren/DRN/raw/logs/Rain100H/net_latest.pth"


@pytest.fixture
def drn():
    """(bytes, sha256) of the real DRN Rain100H checkpoint."""
    path, sha = drn_file("rain100h")
    return path.read_bytes(), sha


@pytest.fixture
def no_sleep(monkeypatch):
    """Retries without waiting; returns the list of back-off delays asked for."""
    delays: list[float] = []
    monkeypatch.setattr(weights, "RETRY", weights.RetryPolicy(sleep=delays.append))
    return delays


@pytest.fixture
def no_network(monkeypatch):
    """Any HTTP request fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"the network was used: {args[1:]}")

    monkeypatch.setattr(requests.Session, "request", refuse)


# -- a scripted raw HTTP server (for broken connections and slow bodies) ------------------------


@contextmanager
def scripted_server(respond):
    """Serve GETs with ``respond(handler, n)`` (n counts requests from 1); yields (base URL, log).

    The log holds (path, Range header) per request.
    """
    log: list[tuple[str, str | None]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            with lock:
                log.append((self.path, self.headers.get("Range")))
                n = len(log)
            respond(self, n)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", log
    finally:
        server.shutdown()
        server.server_close()


def send(handler, data: bytes, *, honour_range: bool = True, stop_after: int | None = None,
         stall: float = 0.0, chunk_delay: float = 0.0) -> None:
    """Answer with ``data`` (206 for a Range request if ``honour_range``).

    ``stop_after``: close the connection after that many body bytes although Content-Length
    promised more; ``stall``: wait that long before closing; ``chunk_delay``: a slow server.
    """
    start = 0
    found = re.match(r"bytes=(\d+)-", handler.headers.get("Range") or "")
    if found and honour_range:
        start = int(found.group(1))
        handler.send_response(206)
        handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
    else:
        handler.send_response(200)
    handler.send_header("Content-Length", str(len(data) - start))
    handler.end_headers()
    body = data[start:] if stop_after is None else data[start:start + stop_after]
    for i in range(0, len(body), 4096):
        handler.wfile.write(body[i:i + 4096])
        handler.wfile.flush()
        time.sleep(chunk_delay)
    if stop_after is not None:
        time.sleep(stall)
        handler.close_connection = True


# -- plain downloads ---------------------------------------------------------------------------


def test_clean_download_is_cached_with_metadata(httpserver, drn):
    data, sha = drn
    httpserver.expect_request(PATH).respond_with_data(data, content_type="application/octet-stream")
    url = httpserver.url_for(PATH)
    model = make_model(url=url, sha256=sha, size=len(data))

    path = weights.ensure_weights(model, progress=False)
    assert path == weights.cache_dir() / "weights" / "drnlike" / "rain100h" / f"{sha[:12]}-drn_rain100h.pth"
    assert path.read_bytes() == data
    meta = json.loads(path.with_name(path.name + ".json").read_text())
    assert (meta["model"], meta["source"]) == ("drnlike:rain100h", url)
    assert (meta["sha256"], meta["size"]) == (sha, len(data))
    assert meta["original_filename"] == "drn_rain100h.pth" and meta["imported"] is False
    assert model_files(model) == sorted([path.name, path.name + ".json"])

    assert weights.ensure_weights(model) == path  # a cache hit: no second request
    assert len(httpserver.log) == 1
    assert weights.download(model, progress=False, force=True) == path
    assert len(httpserver.log) == 2
    assert [r.ok for r in weights.verify_cache()] == [True]


def test_a_broken_connection_is_resumed_with_a_range_request(drn, no_sleep):
    data, sha = drn
    half = len(data) // 2

    def respond(handler, n):
        send(handler, data, stop_after=half if n == 1 else None)

    with scripted_server(respond) as (base, log):
        model = make_model(url=base + PATH, sha256=sha)
        path = weights.download(model, progress=False)
    assert path.read_bytes() == data
    assert log == [(PATH, None), (PATH, f"bytes={half}-")]
    assert no_sleep == [1.0]


def test_a_server_that_ignores_range_restarts_the_file(drn, no_sleep):
    data, sha = drn

    def respond(handler, n):
        send(handler, data, honour_range=False, stop_after=1000 if n == 1 else None)

    with scripted_server(respond) as (base, log):
        path = weights.download(make_model(url=base + PATH, sha256=sha), progress=False)
    assert path.read_bytes() == data
    assert [r for _, r in log] == [None, "bytes=1000-"]


def test_a_read_timeout_is_retried(drn, no_sleep, monkeypatch):
    data, sha = drn
    monkeypatch.setattr(weights, "TIMEOUT", (5.0, 0.3))

    def respond(handler, n):
        send(handler, data, stop_after=8192 if n == 1 else None, stall=1.0)

    with scripted_server(respond) as (base, log):
        path = weights.download(make_model(url=base + PATH, sha256=sha), progress=False)
    assert path.read_bytes() == data
    assert len(log) == 2 and no_sleep == [1.0]


def test_a_server_error_is_retried_with_backoff(httpserver, drn, no_sleep):
    data, sha = drn
    httpserver.expect_ordered_request(PATH).respond_with_data("busy", status=503)
    httpserver.expect_ordered_request(PATH).respond_with_data("oops", status=500)
    httpserver.expect_ordered_request(PATH).respond_with_data(data)
    path = weights.download(make_model(url=httpserver.url_for(PATH), sha256=sha), progress=False)
    assert path.read_bytes() == data
    assert no_sleep == [1.0, 2.0]


def test_retries_give_up_after_five_attempts(httpserver, drn, no_sleep):
    _, sha = drn
    httpserver.expect_request(PATH).respond_with_data("down", status=502)
    url = httpserver.url_for(PATH)
    model = make_model(url=url, sha256=sha)
    expected = rf"cannot download {re.escape(url)}: HTTP 502 .*5 attempts"
    with pytest.raises(weights.DownloadError, match=expected):
        weights.download(model, progress=False)
    assert len(httpserver.log) == 5 and no_sleep == [1.0, 2.0, 4.0, 8.0]
    assert model_files(model) == []


@pytest.mark.parametrize("status", [404, 403])
def test_a_missing_file_fails_at_once_naming_url_and_status(httpserver, drn, no_sleep, status):
    _, sha = drn
    httpserver.expect_request(PATH).respond_with_data("no", status=status)
    url = httpserver.url_for(PATH)
    model = make_model(url=url, sha256=sha)
    expected = rf"cannot download {re.escape(url)}: HTTP {status}"
    with pytest.raises(weights.DownloadError, match=expected) as info:
        weights.ensure_weights(model, progress=False)
    assert info.value.status == status
    assert len(httpserver.log) == 1 and no_sleep == []
    assert model_files(model) == []


def test_a_wrong_checksum_is_refused_and_nothing_is_kept(httpserver, drn):
    data, sha = drn
    httpserver.expect_request(PATH).respond_with_data(data)
    url = httpserver.url_for(PATH)
    expected = "0" * 64
    model = make_model(url=url, sha256=expected)
    with pytest.raises(weights.ChecksumError) as info:
        weights.ensure_weights(model, progress=False)
    message = str(info.value)
    assert f"expected sha256 {expected}" in message and f"got {sha}" in message and url in message
    assert not weights.installed(model)
    assert model_files(model) == []  # no .part, no file, no record


def test_two_processes_downloading_at_once_fetch_once(drn, tmp_path):
    data, sha = drn
    home, started = tmp_path / "home", tmp_path / "started"
    started.mkdir()

    def respond(handler, n):
        send(handler, data, chunk_delay=0.05)  # about half a second for the whole file

    script = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        from derain_cli import weights
        from derain_cli.models.registry import Architecture, Contract, ModelEntry, ResolvedModel, WeightSource

        url, sha, started, me = sys.argv[1:]
        Path(started, me).touch()
        deadline = time.monotonic() + 30
        while len(list(Path(started).iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        arch = Architecture(name="drnlike", title="DRN-like", builder=dict, default_config={},
                            contract=Contract())
        source = WeightSource(kind="url", filename="drn_rain100h.pth", url=url, sha256=sha)
        model = ResolvedModel(ModelEntry(arch="drnlike", variant="rain100h", source=source), arch)
        print(weights.download(model, progress=False))
        """
    )
    env = {"DERAIN_HOME": str(home), "PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"}
    with scripted_server(respond) as (base, log):
        procs = [
            subprocess.Popen([sys.executable, "-c", script, base + PATH, sha, str(started), str(i)], env=env,
                             cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(2)
        ]
        outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    paths = {out.strip() for out, _ in outputs}
    assert len(paths) == 1
    path = Path(paths.pop())
    assert path.read_bytes() == data
    assert len(log) == 1  # the second process waited for the first and used its file
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, path.name + ".json"])


# -- offline mode --------------------------------------------------------------------------------


def test_offline_mode_never_touches_the_network(httpserver, drn, monkeypatch):
    data, sha = drn
    httpserver.expect_request(PATH).respond_with_data(data)
    model = make_model(url=httpserver.url_for(PATH), sha256=sha)

    monkeypatch.setenv("DERAIN_OFFLINE", "1")
    with pytest.raises(weights.OfflineError) as info:
        weights.ensure_weights(model, progress=False)
    message = str(info.value)
    assert "DERAIN_OFFLINE" in message and "derain models download drnlike:rain100h" in message
    assert "DERAIN_MIRROR" in message and "derain models import drnlike:rain100h" in message
    assert httpserver.log == []

    monkeypatch.delenv("DERAIN_OFFLINE")
    path = weights.ensure_weights(model, progress=False)
    monkeypatch.setenv("DERAIN_OFFLINE", "1")
    assert weights.ensure_weights(model, progress=False) == path
    assert len(httpserver.log) == 1


# -- mirrors ----------------------------------------------------------------------------------


def _mirror_folder(tmp_path: Path, data: bytes, name: str = "drn_rain100h.pth") -> Path:
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / name).write_bytes(data)
    return folder


@pytest.mark.parametrize("as_url", [False, True], ids=["folder", "file-url"])
def test_a_mirror_folder_serves_the_files_by_name(drn, tmp_path, monkeypatch, no_network, as_url):
    data, sha = drn
    folder = _mirror_folder(tmp_path, data)
    monkeypatch.setenv("DERAIN_MIRROR", folder.as_uri() if as_url else str(folder))
    monkeypatch.setenv("DERAIN_OFFLINE", "1")  # a folder is not the network
    model = make_model(url="https://github.com/example/never-used.pth", sha256=sha)
    path = weights.ensure_weights(model, progress=False)
    assert path.read_bytes() == data
    assert weights.cache_record(model).source == f"mirror {folder / 'drn_rain100h.pth'}"


def test_a_mirror_folder_also_serves_manual_models(drn, tmp_path, monkeypatch, no_network):
    data, sha = drn
    model = make_model("manual", page="https://pan.baidu.com/s/1example", sha256=sha)
    monkeypatch.setenv("DERAIN_MIRROR", str(tmp_path / "empty"))
    with pytest.raises(weights.ManualDownloadRequired, match="not on the mirror"):
        weights.ensure_weights(model)
    monkeypatch.setenv("DERAIN_MIRROR", str(_mirror_folder(tmp_path, data)))
    assert weights.ensure_weights(model).read_bytes() == data


def test_a_mirror_without_the_file_or_with_a_wrong_one_fails_clearly(drn, tmp_path, monkeypatch, no_network):
    data, sha = drn
    folder = _mirror_folder(tmp_path, data, name="other.pth")
    monkeypatch.setenv("DERAIN_MIRROR", str(folder))
    model = make_model(url="https://github.com/example/never-used.pth", sha256=sha)
    expected = r"drn_rain100h.pth not found on the mirror .*DERAIN_MIRROR"
    with pytest.raises(weights.DownloadError, match=expected):
        weights.ensure_weights(model)
    (folder / "drn_rain100h.pth").write_bytes(data[:-1] + b"\0")
    with pytest.raises(weights.ChecksumError, match=rf"checksum mismatch for {re.escape(str(folder))}"):
        weights.ensure_weights(model)
    assert model_files(model) == []


def test_an_http_mirror_is_asked_by_file_name(httpserver, drn, monkeypatch):
    data, sha = drn
    httpserver.expect_request("/weights/drn_rain100h.pth").respond_with_data(data)
    monkeypatch.setenv("DERAIN_MIRROR", httpserver.url_for("/weights/"))
    model = make_model(url=httpserver.url_for(PATH), sha256=sha)
    path = weights.ensure_weights(model, progress=False)
    assert path.read_bytes() == data
    assert [entry[0].path for entry in httpserver.log] == ["/weights/drn_rain100h.pth"]

    monkeypatch.setenv("DERAIN_OFFLINE", "1")
    weights.remove(model)
    with pytest.raises(weights.OfflineError, match="DERAIN_MIRROR is a URL"):
        weights.ensure_weights(model)


def test_errors_are_weights_errors():
    errors = (weights.DownloadError, weights.ChecksumError, weights.OfflineError,
              weights.ManualDownloadRequired)
    assert all(issubclass(cls, WeightsError) for cls in errors)
