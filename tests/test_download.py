"""fetch() against a local HTTP server that can cut connections, ignore Range, fail, or 404."""

import hashlib
import http.server
import re
import socket
import threading

import pytest

from facerepro.data.download import (
    ChecksumError,
    DownloadError,
    ManualPlacementError,
    NotFoundError,
    UnreachableError,
    fetch,
)

PAYLOAD = bytes(range(256)) * 4096          # 1 MiB, not all one byte
SHA = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()
FAST = {"backoff": 0.0, "progress": False, "timeout": 5.0}


class Server(http.server.ThreadingHTTPServer):
    """Serves PAYLOAD at /file; ``plan`` says how to misbehave, ``log`` what was asked."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.plan = {"cut_after": None, "fail_500": 0, "ignore_range": False}
        self.log: list[tuple[str | None, int]] = []     # (Range header, status sent)


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        plan, rng = self.server.plan, self.headers.get("Range")
        if self.path != "/file":
            return self._status(404, rng)
        if plan["fail_500"]:
            plan["fail_500"] -= 1
            return self._status(500, rng)
        start = int(re.match(r"bytes=(\d+)-", rng).group(1)) if rng else 0
        if rng and not plan["ignore_range"]:
            if start >= len(PAYLOAD):
                self.server.log.append((rng, 416))
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            code, body = 206, PAYLOAD[start:]
        else:
            code, body = 200, PAYLOAD
        self.server.log.append((rng, code))
        self.send_response(code)
        if code == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = plan["cut_after"]
        if cut is not None:
            plan["cut_after"] = None            # only the first response is cut
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def _status(self, code, rng):
        self.server.log.append((rng, code))
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def server():
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _url(srv, path="/file"):
    return f"http://127.0.0.1:{srv.server_address[1]}{path}"


def test_interrupted_download_resumes_with_range_and_verifies(server, tmp_path):
    server.plan["cut_after"] = 300_000
    dest = tmp_path / "a.bin"
    fetch(_url(server), dest, SHA, retries=2, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert server.log == [(None, 200), ("bytes=300000-", 206)]
    assert not (tmp_path / "a.bin.part").exists()


def test_partial_file_survives_a_failed_run_and_the_next_run_resumes(server, tmp_path):
    server.plan["cut_after"] = 100_000
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match="next run resumes"):
        fetch(_url(server), dest, SHA, retries=0, **FAST)
    assert (tmp_path / "a.bin.part").stat().st_size == 100_000 and not dest.exists()
    fetch(_url(server), dest, SHA, retries=0, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert server.log[-1] == ("bytes=100000-", 206)


def test_server_ignoring_range_starts_over(server, tmp_path):
    server.plan["ignore_range"] = True
    (tmp_path / "a.bin.part").write_bytes(b"stale bytes that must not stay in front")
    fetch(_url(server), tmp_path / "a.bin", SHA, **FAST)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    assert server.log == [("bytes=39-", 200)]


def test_complete_part_from_an_earlier_run_is_verified_not_refetched(server, tmp_path):
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD)
    fetch(_url(server), tmp_path / "a.bin", SHA, **FAST)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    assert server.log == [(f"bytes={len(PAYLOAD)}-", 416)]


def test_wrong_checksum_keeps_nothing(server, tmp_path):
    dest = tmp_path / "a.bin"
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as err:
        fetch(_url(server), dest, wrong, **FAST)
    assert SHA in str(err.value) and wrong in str(err.value) and _url(server) in str(err.value)
    assert list(tmp_path.iterdir()) == []          # neither dest nor a .part to resume


def test_size_mismatch_is_refused(server, tmp_path):
    with pytest.raises(ChecksumError, match="expected 1,048,577"):
        fetch(_url(server), tmp_path / "a.bin", SHA, size=len(PAYLOAD) + 1, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_md5_only_files_are_verified(server, tmp_path):
    fetch(_url(server), tmp_path / "a.bin", md5=MD5, **FAST)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    with pytest.raises(ChecksumError, match="md5"):
        fetch(_url(server), tmp_path / "b.bin", md5="0" * 32, **FAST)
    assert not (tmp_path / "b.bin").exists()


def test_without_any_checksum_the_user_must_pin_one(server, tmp_path):
    with pytest.raises(ChecksumError, match=f"no trusted checksum.*{SHA}.*pin"):
        fetch(_url(server), tmp_path / "a.bin", **FAST)
    assert list(tmp_path.iterdir()) == []


def test_404_names_the_url_and_the_manual_path(server, tmp_path):
    manual = tmp_path / "manual" / "a.bin"
    with pytest.raises(NotFoundError) as err:
        fetch(_url(server, "/gone"), tmp_path / "a.bin", SHA, manual=manual, retries=3, **FAST)
    message = str(err.value)
    assert _url(server, "/gone") in message and "404" in message
    assert str(manual.resolve()) in message and SHA in message
    assert server.log == [(None, 404)]             # no retries on 404


def test_connection_refused_says_how_to_place_the_file(tmp_path):
    with socket.socket() as sock:                   # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/file"
    manual = tmp_path / "manual" / "a.bin"
    with pytest.raises(UnreachableError) as err:
        fetch(url, tmp_path / "a.bin", SHA, manual=manual, note="(licence: research)", **FAST)
    message = str(err.value)
    assert url in message and str(manual.resolve()) in message and SHA in message
    assert "licence: research" in message


def test_transient_500_is_retried(server, tmp_path):
    server.plan["fail_500"] = 2
    fetch(_url(server), tmp_path / "a.bin", SHA, retries=2, **FAST)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    assert [code for _, code in server.log] == [500, 500, 200]


def test_persistent_500_gives_up_after_the_retries(server, tmp_path):
    server.plan["fail_500"] = 10
    with pytest.raises(DownloadError, match="gave up after 3 attempts"):
        fetch(_url(server), tmp_path / "a.bin", SHA, retries=2, **FAST)
    assert len(server.log) == 3


def test_hand_placed_file_is_verified_and_used_instead_of_the_network(tmp_path):
    manual = tmp_path / "manual" / "a.bin"
    manual.parent.mkdir()
    manual.write_bytes(PAYLOAD)
    dest = fetch("http://127.0.0.1:9/never-asked", tmp_path / "dl" / "a.bin", SHA,
                 manual=manual, **FAST)
    assert dest.read_bytes() == PAYLOAD
    manual.write_bytes(PAYLOAD[:-1])
    with pytest.raises(ChecksumError, match=str(manual)):
        fetch(None, tmp_path / "dl" / "b.bin", SHA, manual=manual, **FAST)
    assert manual.exists() and not (tmp_path / "dl" / "b.bin").exists()


def test_manual_only_file_names_the_exact_destination(tmp_path):
    manual = tmp_path / "resources" / "manual" / "casia" / "CASIA-WebFace.zip"
    with pytest.raises(ManualPlacementError) as err:
        fetch(None, tmp_path / "CASIA-WebFace.zip", md5=MD5, manual=manual, **FAST)
    assert str(manual.resolve()) in str(err.value) and MD5 in str(err.value)


def test_file_urls_and_an_already_verified_destination(tmp_path):
    source = tmp_path / "mirror" / "a.bin"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    dest = tmp_path / "dl" / "a.bin"
    fetch(source.as_uri(), dest, SHA, **FAST)
    assert dest.read_bytes() == PAYLOAD
    source.unlink()                                 # a verified dest needs no source
    assert fetch(source.as_uri(), dest, SHA, **FAST) == dest
    with pytest.raises(NotFoundError, match="no such file"):
        fetch(source.as_uri(), tmp_path / "dl" / "c.bin", SHA, **FAST)
