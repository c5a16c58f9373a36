"""The upload-gate service, run for real: `rightsmeta serve` as a subprocess on a free loopback port,
httpx clients, real files (Pillow, ExifTool, ffmpeg), answers judged by the c2pa Reader and ExifTool."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import c2pa
import httpx
import jsonschema
import pytest
from PIL import Image

import rightsmeta
from rightsmeta import Assertion, keys
from rightsmeta.fingerprint import image_code
from rightsmeta.verify import verify
from tests import material
from tests.samples import image_bytes

REPO = Path(__file__).resolve().parent.parent
DENY_AI = Assertion.build(deny=["ai"], holder="Jane Doe", copyright="(c) 2026 Jane Doe")
ASSERTION = json.dumps({"permissions": {"ai-training": "notAllowed", "genai-training": "notAllowed", "ai-inference": "notAllowed"},
                        "copyright": "(c) 2026 Jane Doe"})


@dataclass
class Server:
    url: str
    token: str | None
    folder: Path
    process: subprocess.Popen[bytes]

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_healthy(url: str, process: subprocess.Popen[Any], seconds: float = 60) -> bool:
    """Whether the server at ``url`` answers /healthz before ``process`` ends or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def stop_server(process: subprocess.Popen[Any]) -> None:
    """SIGTERM to our own process group only (the server, its forkserver and its workers; gone if a
    test killed them), SIGKILL after 15 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def _start(folder: Path, *args: str) -> Iterator[Server]:
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    log = open(folder / "server.log", "wb")  # noqa: SIM115 - closed at teardown
    process = subprocess.Popen([sys.executable, "-m", "rightsmeta", "serve", "--port", str(port), *args],
                               stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    if not wait_healthy(url, process):
        process.kill()
        pytest.fail(f"server did not start: {(folder / 'server.log').read_text()}")
    token_file = folder / "token"
    token = token_file.read_text().strip() if token_file.exists() else None
    try:
        yield Server(url, token, folder, process)
    finally:
        stop_server(process)
        log.close()


@pytest.fixture(scope="module")
def identity() -> keys.Identity:
    return keys.make_identity("Test Platform")


def _start_signing(folder: Path, identity: keys.Identity, *args: str) -> Iterator[Server]:
    """A server with a ledger, a signing identity and a token, all kept in ``folder``."""
    keys.save_identity(identity, folder / "identity")
    yield from _start(folder, "--ledger", str(folder / "ledger.sqlite3"), "--identity", str(folder / "identity"),
                      "--token-file", str(folder / "token"), *args)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, identity: keys.Identity) -> Iterator[Server]:
    yield from _start_signing(tmp_path_factory.mktemp("serve"), identity, "--workers", "2")


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("tight")
    yield from _start(folder, "--ledger", str(folder / "ledger.sqlite3"), "--max-upload-mb", "1", "--upload-timeout", "1",
                      "--workers", "1", "--backlog", "0", "--timeout", "10")


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((REPO / "schemas" / name).read_text())
    return schema


def _actions(manifest: dict[str, Any]) -> list[str]:
    found = next(a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions"))
    return [a["action"] for a in found["data"]["actions"]]


def _manifest(data: bytes, mime: str) -> tuple[str, dict[str, Any]]:
    with c2pa.Reader(mime, io.BytesIO(data)) as reader:
        store = json.loads(reader.json())
        return str(reader.get_validation_state()), store["manifests"][store["active_manifest"]]


def test_health_openapi_and_self_contained_docs(server: Server) -> None:
    with server.client() as http:
        health = http.get("/healthz").json()
        assert health["status"] == "ok" and health["signing"] is True and health["ledger"] is True
        spec = http.get("/openapi.json").json()
        assert spec["openapi"].startswith("3.")
        for path in ("/v1/read", "/v1/verify", "/v1/tag", "/v1/sanitize", "/v1/carry", "/matches/byBinding",
                     "/matches/byContent", "/manifests/{manifestId}"):
            assert path in spec["paths"]
        page = http.get("/docs")
        assert page.status_code == 200 and "/v1/verify" in page.text
        assert "<script" not in page.text and "http://" not in page.text and "https://" not in page.text


def test_read_and_verify_answer_like_the_cli(server: Server) -> None:
    tagged = rightsmeta.tag_bytes(image_bytes("jpeg"), DENY_AI)
    with server.client() as http:
        # The Content-Type says PNG; the bytes say JPEG, and the bytes win.
        raw = http.post("/v1/verify", content=tagged, headers={"Content-Type": "image/png"})
        multipart = http.post("/v1/verify", files={"file": ("photo.jpg", tagged, "application/octet-stream")})
        read = http.post("/v1/read", content=tagged)
    for response in (raw, multipart):
        assert response.status_code == 200
        verdict = response.json()
        jsonschema.validate([verdict], _schema("verify-report.schema.json"))
        assert verdict["status"] == "intact" and verdict["format"] == "jpeg"
        assert verdict["permissions"]["ai-training"] == "notAllowed"
    assert multipart.json()["path"] == "photo.jpg"  # the client's name is a label, never a path
    jsonschema.validate([read.json()], _schema("read-report.schema.json"))


def test_tag_then_recover_a_stripped_copy(server: Server, exiftool: str, tmp_path: Path) -> None:
    original = image_bytes("jpeg", size=(256, 192), seed=7)
    with server.client() as http:
        _problem(http.post("/v1/tag", files={"file": ("a.jpg", original)}, data={"assertion": ASSERTION}), 401)
        _problem(http.post("/v1/tag", files={"file": ("a.jpg", original)}, data={"assertion": ASSERTION},
                           headers={"Authorization": "Bearer not-the-token"}), 401)
        tagged = http.post("/v1/tag", files={"file": ("a.jpg", original)}, data={"assertion": ASSERTION}, headers=server.auth)
        assert tagged.status_code == 200, tagged.text
        assert tagged.headers["content-type"] == "image/jpeg"
        work_id = tagged.headers["x-rightsmeta-work-id"]
        state, _ = _manifest(tagged.content, "image/jpeg")
        assert state == "Valid"
        assert rightsmeta.read(tagged.content).permissions == rightsmeta.read(rightsmeta.tag_bytes(original, DENY_AI)).permissions

        stripped_path = tmp_path / "stripped.jpg"
        (tmp_path / "tagged.jpg").write_bytes(tagged.content)
        subprocess.run([exiftool, "-q", "-all=", "-o", str(stripped_path), str(tmp_path / "tagged.jpg")], check=True)
        stripped = stripped_path.read_bytes()
        assert rightsmeta.read(stripped).signals == []

        verdict = http.post("/v1/verify", content=stripped).json()
        assert verdict["status"] == "stripped" and verdict["match"]["work_id"] == work_id

        by_content = http.post("/matches/byContent", content=stripped).json()["matches"]
        code = image_code(stripped)
        assert code is not None
        by_binding = http.get("/matches/byBinding", params={"alg": "io.iscc.v0", "value": code}).json()["matches"]
        by_binding64 = http.post("/matches/byBinding", json={"alg": "io.iscc.v0",
                                                             "value": base64.b64encode(code.encode()).decode()}).json()["matches"]
        assert by_content and by_binding and by_binding64
        manifest_id = by_binding[0]["manifestId"]
        assert manifest_id.startswith("urn:c2pa:")
        assert by_content[0]["manifestId"] == manifest_id == by_binding64[0]["manifestId"]
        assert by_binding[0]["similarityScore"] == 100

        # A crop of another tagged photo keeping none of its corners: byContent finds it too (cropsearch).
        photo = material.photo(3, (320, 240))
        other = http.post("/v1/tag", files={"file": ("p.jpg", material.jpeg(photo, 90))}, data={"assertion": ASSERTION},
                          headers=server.auth)
        assert other.status_code == 200, other.text
        other_code = image_code(other.content)
        assert other_code is not None
        other_id = http.get("/matches/byBinding", params={"alg": "io.iscc.v0", "value": other_code}).json()["matches"][0]["manifestId"]
        cropped = material.jpeg(material._crop(photo, 0.05, 0.15, 0.2, 0.1), 75)
        assert [m["manifestId"] for m in http.post("/matches/byContent", content=cropped).json()["matches"]] == [other_id]

        store = http.get(f"/manifests/{manifest_id}")
        assert store.status_code == 200 and store.headers["content-type"] == "application/c2pa"
        assert store.content[4:8] == b"jumb"  # a JUMBF superbox: the C2PA manifest store
        _problem(http.get("/manifests/urn:c2pa:00000000-0000-0000-0000-000000000000"), 404)
        assert http.get("/matches/byBinding", params={"alg": "io.iscc.v0", "value": "ISCC:EEAQAAAAAAAAAAAA"}).json() == {"matches": []}
        _problem(http.get("/matches/byBinding", params={"alg": "com.example.watermark", "value": "x"}), 400)


def test_sanitize_and_carry_over_http(server: Server, exiftool: str, tmp_path: Path, identity: keys.Identity) -> None:
    photo = tmp_path / "camera.jpg"
    photo.write_bytes(material.jpeg(material.photo(6, (320, 240)), 90))  # a photo: its rendition is compared with it
    subprocess.run([exiftool, "-q", "-overwrite_original", "-GPSLatitude=48.8584", "-GPSLatitudeRef=N",
                    "-SerialNumber=123456789", str(photo)], check=True)
    signed = rightsmeta.tag_bytes(photo.read_bytes(), DENY_AI, identity=identity)
    with server.client() as http:
        _problem(http.post("/v1/sanitize", content=signed), 401)
        cleaned = http.post("/v1/sanitize", content=signed, headers=server.auth)
        assert cleaned.status_code == 200, cleaned.text
        out = tmp_path / "clean.jpg"
        out.write_bytes(cleaned.content)
        tags = json.loads(subprocess.run([exiftool, "-j", "-a", str(out)], check=True, capture_output=True, text=True).stdout)[0]
        assert "GPSLatitude" not in tags and "SerialNumber" not in tags and tags["DataMining"] == "Prohibited for AI/ML training"
        assert verify(cleaned.content).status == "intact"
        assert _actions(_manifest(cleaned.content, "image/jpeg")[1]) == ["c2pa.opened", "c2pa.edited.metadata"]

        rendition = io.BytesIO()
        with Image.open(io.BytesIO(signed)) as img:
            img.resize((160, 120)).save(rendition, "WEBP")
        carried = http.post("/v1/carry", headers=server.auth,
                            files={"original": ("o.jpg", signed), "derivative": ("d.webp", rendition.getvalue())})
        assert carried.status_code == 200, carried.text
        assert carried.headers["content-type"] == "image/webp"
        assert verify(carried.content).status == "intact"
        state, manifest = _manifest(carried.content, "image/webp")
        assert state == "Valid" and "c2pa.resized" in _actions(manifest)
        _problem(http.post("/v1/carry", headers=server.auth, files={"original": ("o.jpg", signed)}), 400)
        # Another photo is no rendition of this one: refused, unless the platform says it is a new work.
        other = {"original": ("o.jpg", signed), "derivative": ("n.jpg", material.jpeg(material.photo(16, (320, 240)), 85))}
        refused = http.post("/v1/carry", headers=server.auth, files=other)
        assert refused.status_code == 400 and "does not match the original" in refused.json()["detail"], refused.text
        made = http.post("/v1/carry?newWork=true", headers=server.auth, files=other)
        assert made.status_code == 200, made.text
        assert _actions(_manifest(made.content, "image/jpeg")[1]) == ["c2pa.opened", "c2pa.edited"]


def test_carried_audio_is_found_from_a_stripped_copy(server: Server, ffmpeg: str, tmp_path: Path, identity: keys.Identity) -> None:
    mp3, m4a, bare = tmp_path / "song.mp3", tmp_path / "song.m4a", tmp_path / "bare.m4a"
    (tmp_path / "song.wav").write_bytes(material.wav(material.music(3, 4.0)))  # music: its rendition is compared with it
    subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(tmp_path / "song.wav"), "-ac", "1", str(mp3)], check=True)
    mp3.write_bytes(rightsmeta.tag_bytes(mp3.read_bytes(), DENY_AI, identity=identity))
    subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(mp3), "-map_metadata", "-1", "-c:a", "aac", str(m4a)], check=True)
    with server.client() as http:
        carried = http.post("/v1/carry", headers=server.auth, files={"original": ("s.mp3", mp3.read_bytes()),
                                                                     "derivative": ("s.m4a", m4a.read_bytes())})
        assert carried.status_code == 200, carried.text
        (tmp_path / "carried.m4a").write_bytes(carried.content)
        state, manifest = _manifest(carried.content, "audio/mp4")
        assert state == "Valid" and "c2pa.transcoded" in _actions(manifest)
        # A platform downstream drops every tag and box but the audio.
        subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(tmp_path / "carried.m4a"), "-map_metadata", "-1",
                        "-map", "0:a", "-c", "copy", str(bare)], check=True)
        assert rightsmeta.read(bare).signals == []
        matches = http.post("/matches/byContent", content=bare.read_bytes()).json()["matches"]
        assert matches and matches[0]["manifestId"].startswith("urn:c2pa:")
        verdict = http.post("/v1/verify", content=bare.read_bytes()).json()
        assert verdict["status"] == "stripped" and verdict["match"]["work_id"] == carried.headers["x-rightsmeta-work-id"]


def test_hostile_uploads_get_problems_and_the_server_lives(server: Server) -> None:
    bomb = io.BytesIO()
    Image.new("1", (30000, 30000)).save(bomb, "PNG")  # ~100 KB that decode to 900 megapixels
    with server.client() as http:
        _problem(http.post("/v1/verify", content=b""), 400)
        _problem(http.post("/v1/verify", content=image_bytes("jpeg")[:20]), 422)
        _problem(http.post("/v1/read", content=os.urandom(4096)), 422)
        _problem(http.post("/matches/byContent", content=bomb.getvalue()), 422)
        _problem(http.post("/v1/verify", content=b"--x\r\n", headers={"Content-Type": "multipart/form-data"}), 400)
        _problem(http.post("/v1/verify", content=b"garbage", headers={"Content-Type": "multipart/form-data; boundary=zz"}), 400)
        _problem(http.post("/v1/tag", headers=server.auth, files={"file": ("a.jpg", image_bytes("jpeg"))},
                           data={"assertion": "{not json"}), 400)
        _problem(http.post("/v1/tag", headers=server.auth, files={"file": ("a.jpg", image_bytes("jpeg"))},
                           data={"assertion": '{"permissions": {"ai-training": "maybe"}}'}), 400)
        _problem(http.post("/v1/sanitize", params={"keep": "all"}, content=b"x", headers=server.auth), 400)
        _problem(http.get("/no/such/thing"), 404)
        _problem(http.get("/v1/verify"), 405)
        _problem(http.get("/matches/byBinding", params={"alg": "io.iscc.v0", "value": "%%%"}), 400)
        assert http.get("/healthz").status_code == 200


def test_size_time_and_concurrency_limits(tight: Server) -> None:
    big = b"\xff\xd8" + b"\0" * (1024 * 1024 + 10)
    with tight.client() as http:
        _problem(http.post("/v1/verify", content=big), 413)

        def chunks() -> Iterator[bytes]:  # no Content-Length: the cap is enforced while streaming
            for _ in range(20):
                yield b"\0" * 65536 * 2
        _problem(http.post("/v1/verify", content=chunks()), 413)
        # A server with no token accepts no writes at all.
        _problem(http.post("/v1/tag", content=image_bytes("jpeg"), headers={"Authorization": "Bearer x" * 3}), 403)

    with socket.create_connection(("127.0.0.1", int(tight.url.rsplit(":", 1)[1])), timeout=10) as slow:
        slow.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"\xff\xd8" * 5)
        time.sleep(2)  # longer than --upload-timeout 1
        answer = slow.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 408") and "application/problem+json" in answer

    photo = io.BytesIO()
    Image.effect_noise((1200, 900), 80).convert("RGB").save(photo, "JPEG", quality=60)
    statuses: list[int] = []
    retry: list[str | None] = []

    def hit() -> None:
        with tight.client() as http:
            response = http.post("/v1/verify", content=photo.getvalue())
            statuses.append(response.status_code)
            retry.append(response.headers.get("retry-after"))
    threads = [threading.Thread(target=hit) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 200 in statuses and 503 in statuses, statuses
    assert all(r == "1" for s, r in zip(statuses, retry, strict=True) if s == 503)
    with tight.client() as http:
        assert http.get("/healthz").status_code == 200


def test_concurrent_tags_are_all_recorded(server: Server) -> None:
    from rightsmeta.ledger import Ledger

    results: list[httpx.Response] = []

    def tag(seed: int) -> None:
        with server.client() as http:
            results.append(http.post("/v1/tag", headers=server.auth, data={"assertion": ASSERTION},
                                     files={"file": ("a.png", image_bytes("png", seed=100 + seed))}))
    threads = [threading.Thread(target=tag, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200] * 6
    ids = {r.headers["x-rightsmeta-work-id"] for r in results}
    with Ledger.open(server.folder / "ledger.sqlite3", readonly=True) as db:
        assert all(db.get(i) is not None for i in ids) and len(ids) == 6


def test_token_file_is_private(server: Server, tmp_path: Path) -> None:
    assert stat.S_IMODE((server.folder / "token").stat().st_mode) == 0o600
    from rightsmeta.errors import UsageError
    from rightsmeta.server import load_token

    loose = tmp_path / "token"
    loose.write_text("a" * 40)
    loose.chmod(0o644)
    with pytest.raises(UsageError, match="readable by others"):
        load_token(str(loose))
    # docs/platforms.md's /etc/rightsmeta/token: a folder that does not exist yet is made, private
    # (it was "cannot create token file: No such file or directory").
    token, created = load_token(str(tmp_path / "etc" / "rightsmeta" / "token"))
    assert created and len(token) >= 16
    assert stat.S_IMODE((tmp_path / "etc" / "rightsmeta").stat().st_mode) == 0o700


def test_the_server_process_keeps_its_signal_handlers_and_limits(tmp_path: Path) -> None:
    """Decoding happens in worker processes: the server's own process gets no alarm handler or rlimit."""
    import resource

    import uvicorn

    from rightsmeta.server import ServerConfig, create_app

    alarm, limit = signal.getsignal(signal.SIGALRM), resource.getrlimit(resource.RLIMIT_AS)
    port = _free_port()
    token = "t" * 32
    app = create_app(ServerConfig(ledger=str(tmp_path / "ledger.sqlite3"), workers=1, token=token, protect_reads=True))
    running = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=running.run)  # a server thread, as an embedding application would run it
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for _ in range(100):
                if running.started:
                    break
                time.sleep(0.1)
            tagged = rightsmeta.tag_bytes(image_bytes("png"), DENY_AI)
            _problem(http.post("/v1/verify", content=tagged), 401)  # --protect-reads: reads need the token too
            _problem(http.get("/matches/byBinding", params={"alg": "io.iscc.v0", "value": "ISCC:EEAQAAAAAAAAAAAA"}), 401)
            http.headers["Authorization"] = f"Bearer {token}"
            answer = http.post("/v1/verify", content=tagged)
            assert answer.status_code == 200 and answer.json()["status"] == "intact"
            assert http.post("/v1/verify", content=image_bytes("png", seed=3)).json()["status"] == "untagged"
    finally:
        running.should_exit = True
        thread.join(30)
    assert signal.getsignal(signal.SIGALRM) is alarm and resource.getrlimit(resource.RLIMIT_AS) == limit


def test_a_job_over_its_time_is_a_problem_not_a_hang(tmp_path: Path) -> None:
    """The per-upload alarm of a worker (run here in the test's main thread, as a worker runs jobs)."""
    from rightsmeta.server import jobs

    photo = tmp_path / "big.png"
    Image.effect_noise((2000, 1500), 60).save(photo)
    previous = signal.getsignal(signal.SIGALRM)
    try:
        jobs.init(str(tmp_path / "ledger.sqlite3"), None, 0.001, 0)
        result = jobs.run("by_content", {"path": str(photo), "limit": 5})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        jobs._STATE.clear()
    assert result["problem"]["status"] == 422 and "gave up after" in result["problem"]["detail"]


def test_a_binding_query_body_is_bounded(server: Server) -> None:
    def endless() -> Iterator[bytes]:  # chunked: no Content-Length to trust
        yield b'{"alg": "io.iscc.v0", "value": "'
        for _ in range(100):
            yield b"A" * 4096
    with server.client() as http:
        _problem(http.post("/matches/byBinding", content=endless()), 413)
        _problem(http.post("/matches/byBinding", content=b"[1, 2]"), 400)


def test_serve_refuses_a_ledger_that_is_no_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # It started, said healthy, and answered every upload 422 "Cannot process this file".
    from click.testing import CliRunner

    import rightsmeta.server
    from rightsmeta.cli import main

    started: list[object] = []
    monkeypatch.setattr(rightsmeta.server, "serve", lambda *args, **kwargs: started.append(args))
    other = tmp_path / "photo.sqlite3"
    other.write_bytes(image_bytes("png"))
    out = CliRunner().invoke(main, ["serve", "--ledger", str(other)])
    assert out.exit_code == 2 and "cannot use the ledger" in out.output, out.output
    assert started == []
    assert CliRunner().invoke(main, ["serve", "--ledger", str(tmp_path / "new.sqlite3")]).exit_code == 0
    assert len(started) == 1


def test_a_camera_raw_upload_is_not_rewritten(server: Server, tmp_path: Path) -> None:
    # Review 1: `rightsmeta tag` never rewrites a vendor's raw (its statement goes to its sidecar),
    # but /v1/tag wrote XMP into a TIFF-based CR2 (9,400 -> 13,432 bytes). Now it says why not.
    raw = io.BytesIO()
    Image.new("RGB", (64, 48), "red").save(raw, format="TIFF")
    with server.client() as http:
        answer = http.post("/v1/tag", files={"file": ("IMG_0001.CR2", raw.getvalue())}, data={"assertion": ASSERTION},
                           headers=server.auth)
    problem_doc = _problem(answer, 422)
    assert "camera raw" in problem_doc["detail"] and "sidecar" in problem_doc["detail"]
