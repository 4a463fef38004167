"""``matcher serve``: a real server process on loopback, real HTTP.

Two servers for the whole module (started once): ``authed`` (API keys, small limits) and ``open_``
(``--no-auth`` on 127.0.0.1, its own index that the live-index test changes under it). Every bad
request must get a 4xx with a JSON message, never a 5xx; uploads that cannot be decoded never get a
clean answer.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from fixtures.generate import scene
from matcher.index import KnownIndex
from matcher.index.importing import import_sources
from matcher.serve.keys import KeyStore

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    config: Path
    index: Path
    log: Path
    key: str | None = None

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def audit(self) -> list[dict]:
        return [json.loads(line) for line in (self.config / "audit.jsonl").read_text().splitlines()]


def start(index: Path, config: Path, *extra: str) -> Server:
    port = free_port()
    log = config.parent / f"server-{port}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "matcher", "serve", "--index", str(index), "--config", str(config)]
    with open(log, "wb") as out:
        process = subprocess.Popen([*command, "--port", str(port), *extra], stdout=out, stderr=out, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return Server(process, url, config, index, log)
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"the server did not answer /healthz within {START_TIMEOUT}s: {log.read_text()}")


def stop(server: Server) -> None:
    server.process.send_signal(signal.SIGINT)
    try:
        code = server.process.wait(15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        pytest.fail("the server did not stop on SIGINT")
    assert code == 0, server.log.read_text()


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def make_index(folder: Path, seeds: tuple[int, ...]) -> Path:
    known = folder / "known"
    known.mkdir(parents=True)
    for seed in seeds:
        scene(seed, 320, 240, "landscape").save(known / f"known-{seed}.png")
    path = folder / "index"
    with KnownIndex.create(path, ("pdq",)) as index:
        import_sources(index, [str(known)], list_name="demo", category=1)
    return path


@pytest.fixture(scope="module")
def authed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("authed")
    index = make_index(folder, (11, 12, 13))
    config = folder / "config"
    keys = KeyStore(config / "keys.json")
    _stored, key = keys.add("tests")
    revoked, revoked_key = keys.add("old")
    keys.revoke(revoked.id)
    server = start(
        index,
        config,
        "--max-body-bytes",
        "3000000",
        "--max-pixels",
        "1000000",
        "--max-lookup-hashes",
        "50",
        "--body-timeout",
        "1",
        "--reload-interval",
        "0",
    )
    server.key = key
    server.revoked_key = revoked_key  # type: ignore[attr-defined]
    yield server
    stop(server)


@pytest.fixture(scope="module")
def open_(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("open")
    index = make_index(folder, (21, 22))
    server = start(index, folder / "config", "--no-auth", "--reload-interval", "0.2")
    yield server
    stop(server)


def known_image(seed: int) -> Image.Image:
    return scene(seed, 320, 240, "landscape")


def pdq_of(client: httpx.Client, image: Image.Image) -> str:
    answer = client.post("/v1/hash", content=png(image))
    assert answer.status_code == 200, answer.text
    return answer.json()["records"][0]["pdq"]


# -- routes ---------------------------------------------------------------------------------------------


def test_match_finds_an_edited_copy_as_the_scan_would(authed: Server) -> None:
    with authed.client(authed.key) as client:
        copy = known_image(12).transpose(Image.Transpose.ROTATE_90)  # rotated and re-encoded: no digest match
        answer = client.post("/v1/match", content=jpeg(copy), headers={"content-type": "image/jpeg"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["status"] == "match"
        (record,) = body["records"]
        best = record["matches"][0]
        assert (best["algorithm"], best["list"], best["category"]) == ("pdq", "demo", 1)
        assert best["variant"] in ("rot90", "rot270")
        assert record["sha256"] and record["pdq"] and record["status"] == "match"
        assert body["index_generation"] >= 1


def test_match_multipart_and_clean_image(authed: Server) -> None:
    with authed.client(authed.key) as client:
        files = {"photo": ("x.png", png(scene(999, 320, 240, "plasma")), "image/png")}
        answer = client.post("/v1/match", files=files)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "no_match"
        assert answer.json()["records"][0]["path"] == "x.png"


def test_lookup_answers_each_hash_in_order_and_bad_entries_on_their_own(authed: Server) -> None:
    with authed.client(authed.key) as client:
        known = pdq_of(client, known_image(11))
        flipped = known[:-2] + format(int(known[-2:], 16) ^ 0x07, "02x")  # 3 bits away
        hashes = [
            {"algorithm": "pdq", "hex": known},
            {"algorithm": "pdq", "hex": "zz"},
            {"algorithm": "pdq", "hex": flipped, "max_distance": 2},
            {"algorithm": "nope", "hex": "00"},
            {"algorithm": "pdq", "hex": flipped, "quality": 90, "max_distance": 3},
            {"algorithm": "pdq", "hex": known, "quality": 20},
            {"algorithm": "pdq", "hex": known, "max_distance": 200},
            {"algorithm": "md5", "hex": "0" * 31},
            "not an object",
        ]
        answer = client.post("/v1/lookup", json={"hashes": hashes})
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        assert [r["status"] for r in results] == [
            "match",
            "error",
            "no_match",
            "error",
            "match",
            "skipped",
            "error",
            "error",
            "error",
        ]
        assert results[0]["matches"][0]["distance"] == 0 and results[0]["matches"][0]["list"] == "demo"
        assert results[4]["matches"][0]["distance"] == 3
        assert "hex" in results[1]["error"]
        assert "unknown algorithm 'nope'" in results[3]["error"]
        assert "quality 20 below 50" in results[5]["skipped"]
        assert "above this service's limit" in results[6]["error"]
        assert "32 hex digits" in results[7]["error"]


def test_lookup_by_digest(authed: Server) -> None:
    data = (authed.index.parent / "known" / "known-13.png").read_bytes()
    with authed.client(authed.key) as client:
        sha256 = client.post("/v1/hash", content=data).json()["records"][0]["sha256"]
        answer = client.post("/v1/lookup", json={"hashes": [{"algorithm": "sha256", "hex": sha256.upper()}]})
        (result,) = answer.json()["results"]
        assert result["status"] == "match" and result["matches"][0]["algorithm"] == "sha256"


def test_hash_index_healthz_metrics_openapi(authed: Server) -> None:
    with authed.client(authed.key) as client:
        record = client.post("/v1/hash", content=jpeg(known_image(11))).json()["records"][0]
        assert len(record["pdq"]) == 64 and record["pdq_quality"] >= 50
        index = client.get("/v1/index").json()
        assert index["records"] == 3 and index["lists"]["demo"]["records"] == 3 and index["generation"] >= 1
        health = httpx.get(authed.url + "/healthz").json()  # no key needed
        assert health["status"] == "ok" and health["problem"] is None
        schema = httpx.get(authed.url + "/openapi.json").json()
        assert {"/v1/match", "/v1/lookup", "/m/raw_lookup", "/m/lookup"} <= set(schema["paths"])
        text = client.get("/metrics").text
        assert 'matcher_requests_total{route="hash",status="200"}' in text
        assert 'matcher_request_duration_seconds_bucket{route="hash",le="+Inf"}' in text
        assert "matcher_index_generation " in text and "matcher_lookups_total" in text


def test_hma_routes(authed: Server) -> None:
    with authed.client(authed.key) as client:
        known = pdq_of(client, known_image(11))
        raw = client.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": known})
        assert raw.status_code == 200 and len(raw.json()["matches"]) == 1
        content_id = raw.json()["matches"][0]
        assert isinstance(content_id, int)
        with_distance = client.get(
            "/m/raw_lookup", params={"signal_type": "pdq", "signal": known, "include_distance": "true"}
        ).json()
        assert with_distance == {"matches": [{"content_id": content_id, "distance": "0"}]}
        assert client.get("/m/lookup", params={"signal_type": "pdq", "signal": known}).json() == ["demo"]
        clean = pdq_of(client, scene(5, 320, 240, "plasma"))
        assert client.get("/m/lookup", params={"signal_type": "pdq", "signal": clean}).json() == []
        upload = client.post("/m/lookup", files={"photo": ("a.jpg", jpeg(known_image(13)), "image/jpeg")})
        assert upload.status_code == 200 and upload.json()["pdq"] == ["demo"]
        status = client.get("/m/index/status").json()
        assert status["pdq"]["present"] is True and status["pdq"]["size"] == 3 and status["pdq"]["built_to"] > 0
        for params, words in (
            ({"signal_type": "pdq"}, "signal is required"),
            ({"signal": known}, "signal_type is required"),
            ({"signal_type": "video_tmk", "signal": known}, "No such SignalType"),
            ({"signal_type": "pdq", "signal": "xyz"}, "invalid signal"),
            ({"signal_type": "pdq", "signal": known, "include_distance": "maybe"}, "boolean"),
        ):
            bad = client.get("/m/raw_lookup", params=params)
            assert bad.status_code == 400 and words in bad.json()["message"], bad.text
        assert client.get("/m/index/status", params={"signal_type": "nope"}).status_code == 400


# -- access -----------------------------------------------------------------------------------------------


def test_keys_are_required_and_checked(authed: Server) -> None:
    bad_keys = [None, "nonsense", authed.key[:-2] + "xx", authed.revoked_key, "mk_ffffffff_" + "a" * 43]  # type: ignore[attr-defined]
    for key in bad_keys:
        with authed.client(key) as client:
            for method, path in (
                ("GET", "/v1/index"),
                ("POST", "/v1/lookup"),
                ("GET", "/metrics"),
                ("GET", "/m/lookup"),
            ):
                answer = client.request(method, path, json={"hashes": []})
                assert answer.status_code == 401, (key, path, answer.text)
                assert "API key" in answer.json()["message"]
    x_api_key = httpx.get(authed.url + "/v1/index", headers={"X-API-Key": authed.key})
    assert x_api_key.status_code == 200
    lines = [line for line in authed.audit() if line["status"] == 401]
    assert lines and all(line["key"] is None and line["result"] == "unauthorized" for line in lines)


def test_a_key_added_or_revoked_takes_effect_without_restart(authed: Server) -> None:
    keys = KeyStore(authed.config / "keys.json")
    stored, key = keys.add("temporary")
    assert httpx.get(authed.url + "/v1/index", headers={"X-API-Key": key}).status_code == 200
    keys.revoke(stored.id)
    assert httpx.get(authed.url + "/v1/index", headers={"X-API-Key": key}).status_code == 401


def test_keys_are_stored_hashed(authed: Server) -> None:
    text = (authed.config / "keys.json").read_text()
    secret = authed.key.split("_", 2)[2]  # mk_<id>_<secret>; the secret may itself hold "_"
    assert secret and authed.key not in text and secret not in text
    assert oct(os.stat(authed.config / "keys.json").st_mode & 0o777) == "0o600"


def test_no_auth_is_refused_off_loopback(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "matcher", "serve", "--index", str(tmp_path), "--no-auth", "--host", "0.0.0.0"]
    done = subprocess.run(command, capture_output=True, env=env, timeout=60)
    assert done.returncode == 2 and b"loopback" in done.stderr


def test_no_auth_on_loopback_serves_without_a_key(open_: Server) -> None:
    assert httpx.get(open_.url + "/v1/index").status_code == 200
    assert open_.audit()[-1]["key"] is None


# -- bad requests: 4xx with a message, never a 5xx, never a clean answer ----------------------------------


def test_bad_requests_get_a_clear_4xx(authed: Server) -> None:
    image = known_image(11)
    cases: list[tuple[str, str, dict, int, str]] = [
        ("POST", "/v1/lookup", {"content": b"{not json"}, 400, "not valid JSON"),
        ("POST", "/v1/lookup", {"content": b""}, 400, "empty"),
        ("POST", "/v1/lookup", {"json": [1, 2]}, 400, '{"hashes"'),
        ("POST", "/v1/lookup", {"json": {"hashes": [{"algorithm": "pdq", "hex": "00"}] * 51}}, 413, "limit is 50"),
        ("POST", "/v1/match", {"content": b""}, 400, "empty"),
        ("POST", "/v1/match", {"content": b"hello, not an image"}, 422, "not an image"),
        ("POST", "/v1/match", {"content": jpeg(image)[:2000]}, 422, "could not be decoded"),
        ("POST", "/v1/match", {"content": png(image)[:5000]}, 422, "could not be decoded"),
        ("POST", "/v1/match", {"content": png(Image.new("RGB", (1200, 1000), "red"))}, 422, "pixels"),
        ("POST", "/v1/match", {"content": b"\0" * 3_000_001}, 413, "over the limit"),
        ("POST", "/v1/hash", {"content": jpeg(image)[:2000]}, 422, "could not be decoded"),
        ("POST", "/v1/hash", {"content": b"GIF89a broken"}, 422, "could not be decoded"),
        ("POST", "/m/lookup", {"content": b"x" * 10}, 422, "not an image"),
        ("POST", "/v1/match", {"files": {"a": ("a", b"1"), "b": ("b", b"2")}}, 400, "only one file"),
        (
            "POST",
            "/v1/match",
            {"content": b"--xx\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=xx"}},
            400,
            "",
        ),
        ("GET", "/v1/match", {}, 405, "not allowed"),
        ("GET", "/nowhere", {}, 404, "not found"),
    ]
    with authed.client(authed.key) as client:
        for method, path, kwargs, status, words in cases:
            answer = client.request(method, path, **kwargs)
            assert answer.status_code == status, (path, kwargs.keys(), answer.text[:300])
            body = answer.json()
            assert words in body["message"], (path, body)
            assert body.get("status") != "no_match"


def test_a_body_sent_too_slowly_gets_408(authed: Server) -> None:
    host, port = authed.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            b"POST /v1/lookup HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + authed.key.encode() + b"\r\n"
            b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"hashes": ['
        )
        reply = b""
        while b"}" not in reply:  # the whole JSON answer (or the connection closed)
            chunk = conn.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert b"not received within 1 seconds" in reply


def test_a_chunked_body_over_the_limit_gets_413(authed: Server) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"\0" * 100_000

    with authed.client(authed.key) as client:
        answer = client.post("/v1/match", content=chunks())
        assert answer.status_code == 413 and "over the limit" in answer.json()["message"]


def test_no_5xx_and_every_request_audited(authed: Server) -> None:
    with authed.client(authed.key) as client:
        client.get("/no/such/route")
        client.post("/v1/match", content=b"junk")
        client.post("/v1/lookup", json={"hashes": [{"algorithm": "pdq", "hex": "ab" * 32}]})
    lines = authed.audit()
    assert all(line["status"] < 500 for line in lines), [line for line in lines if line["status"] >= 500]
    last = lines[-1]
    assert last["route"] == "lookup" and last["hashes"] == ["pdq:" + "ab" * 32] and last["result"] == "no_match"
    assert {"time", "key", "route", "hashes", "result", "status", "generation", "ms"} <= set(last)
    junk = lines[-2]
    assert junk["result"] == "error" and junk["hashes"][0].startswith("sha256:")
    assert not any("junk" in json.dumps(line) for line in lines)  # no upload bytes in the log
    assert any(line["route"] == "unknown" and line["status"] == 404 for line in lines)  # unknown paths too


def test_concurrent_lookups_are_answered_each_with_its_own_answer(authed: Server) -> None:
    with authed.client(authed.key) as client:
        known = {seed: pdq_of(client, known_image(seed)) for seed in (11, 12, 13)}
        ids = {
            seed: client.post("/v1/lookup", json={"hashes": [{"algorithm": "pdq", "hex": value}]}).json()["results"][0][
                "matches"
            ][0]["record"]
            for seed, value in known.items()
        }
    failures: list[str] = []

    def worker(number: int) -> None:
        with authed.client(authed.key) as client:
            for i in range(12):
                seed = (11, 12, 13)[(number + i) % 3]
                answer = client.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": known[seed]})
                if answer.status_code != 200 or answer.json()["matches"] != [ids[seed]]:
                    failures.append(f"{answer.status_code} {answer.text[:200]}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures[:3]


# -- live index -----------------------------------------------------------------------------------------


def wait_for(predicate, what: str, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def test_live_index_switch_and_corrupt_generation(open_: Server, tmp_path: Path) -> None:
    client = httpx.Client(base_url=open_.url, timeout=30)
    before = client.get("/healthz").json()["index_generation"]
    new = tmp_path / "new"
    new.mkdir()
    known_image(23).save(new / "known-23.png")
    added = pdq_of(client, known_image(23))
    lookup = {"hashes": [{"algorithm": "pdq", "hex": added}]}
    assert client.post("/v1/lookup", json=lookup).json()["results"][0]["status"] == "no_match"

    # another process (this one; the server is another) adds to the index: picked up without a restart
    with KnownIndex.open(open_.index, writable=True) as index:
        import_sources(index, [str(new)], list_name="late")
    wait_for(lambda: client.get("/healthz").json()["index_generation"] > before, "the new generation")
    result = client.post("/v1/lookup", json=lookup).json()["results"][0]
    assert result["status"] == "match" and result["matches"][0]["list"] == "late"
    good = client.get("/healthz").json()["index_generation"]

    # a corrupt new generation: the service stays on the last good one and says so
    copy = tmp_path / "copy"
    shutil.copytree(open_.index, copy)
    with KnownIndex.open(copy, writable=True) as index:
        import_sources(index, [str(open_.index.parent / "known")], list_name="again")
        generation = index.generation
    gen_dir = f"gen-{generation:06d}"
    codes = copy / gen_dir / "pdq.codes.npy"
    data = bytearray(codes.read_bytes())
    data[-1] ^= 0xFF  # same size, wrong checksum
    codes.write_bytes(bytes(data))
    shutil.copytree(copy / gen_dir, open_.index / gen_dir)
    os.replace(copy / "manifest.json", open_.index / "manifest.json")  # the commit point
    wait_for(lambda: client.get("/healthz").json()["status"] == "degraded", "the degraded health")
    health = client.get("/healthz").json()
    assert health["index_generation"] == good and f"still serving generation {good}" in health["problem"]
    assert health["failed_reloads"] >= 1
    result = client.post("/v1/lookup", json=lookup).json()
    assert result["index_generation"] == good and result["results"][0]["status"] == "match"
    assert "cannot be opened" in open_.log.read_text()
    client.close()


def test_a_server_killed_mid_request_loses_no_audit_line(tmp_path: Path) -> None:
    index = make_index(tmp_path, (31,))
    config = tmp_path / "config"
    server = start(index, config, "--no-auth", "--reload-interval", "0")
    with server.client() as client:
        for _ in range(3):
            assert client.post("/v1/match", content=jpeg(known_image(31))).json()["status"] == "match"
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:  # a request in flight
        conn.sendall(b"POST /v1/match HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"\xff\xd8" * 100)
        time.sleep(0.2)
        server.process.kill()
        server.process.wait(10)
    lines = [json.loads(line) for line in (config / "audit.jsonl").read_text().splitlines()]  # each one whole
    assert [line["result"] for line in lines if line["route"] == "match"] == ["match"] * 3


def test_the_audit_log_believes_x_forwarded_for_only_from_trusted_proxies(open_: Server, tmp_path: Path) -> None:
    spoofed = {"X-Forwarded-For": "203.0.113.9"}
    assert httpx.get(open_.url + "/v1/index", headers=spoofed).status_code == 200
    assert open_.audit()[-1]["client"] == "127.0.0.1"  # no proxy trusted by default: the peer's address
    index = make_index(tmp_path, (31,))  # open_'s own index may hold a generation damaged on purpose
    behind = start(index, tmp_path / "config", "--no-auth", "--forwarded-allow-ips", "127.0.0.1")
    try:
        assert httpx.get(behind.url + "/v1/index", headers=spoofed).status_code == 200
        assert behind.audit()[-1]["client"] == "203.0.113.9"  # the trusted proxy's word for its client
    finally:
        stop(behind)


def test_metrics_sum_every_worker_process(tmp_path: Path) -> None:
    index = make_index(tmp_path, (41,))
    server = start(index, tmp_path / "config", "--no-auth", "--workers", "2")
    try:
        for _ in range(40):  # a new connection each: the kernel shares them out between the workers
            assert httpx.get(server.url + "/v1/index").status_code == 200
        time.sleep(2.5)  # each worker publishes its figures every second
        text = httpx.get(server.url + "/metrics").text
        assert "matcher_worker_processes 2" in text
        assert 'matcher_requests_total{route="index",status="200"} 40' in text, text
        assert 'matcher_request_duration_seconds_count{route="index"} 40' in text
    finally:
        stop(server)
