"""``rsretrieval fake-gemini`` / ``python -m rsretrieval.fake_gemini``: a foreground server that the real
google-genai client can use, that stops cleanly on SIGTERM / Ctrl-C, and whose canned answers validate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rsretrieval.fake_gemini.protocol import FakeRequest
from rsretrieval.fake_gemini.responders import task_responder
from rsretrieval.fake_gemini.serve import add_fake_gemini_args, fault_config
from rsretrieval.generation.tasks import TASKS
from tests.conftest import REPO

genai = pytest.importorskip("google.genai")
from google.genai import errors, types  # noqa: E402

SCENES_PROMPT = TASKS["text_scenes"].system_prompt
CAPTION = "Two red cars park next to a white house. Three tall trees line the road."


def _client(base_url: str) -> genai.Client:
    return genai.Client(api_key="dummy-key", http_options=types.HttpOptions(
        base_url=base_url, api_version="v1beta", timeout=10_000, retry_options=types.HttpRetryOptions(attempts=1)))


def _start(argv: list[str]) -> tuple[subprocess.Popen, list[str]]:
    """Start the server as a subprocess; returns it and its banner (the URL ends the first line)."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, *argv, "--port", "0"], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    banner: list[str] = []

    def read_banner() -> None:  # up to its last line (later output: communicate() reads it)
        for line in proc.stdout:
            banner.append(line)
            if "stops it" in line:
                return

    reader = threading.Thread(target=read_banner, daemon=True)
    reader.start()
    reader.join(timeout=60)
    if not banner or "listening on http://" not in banner[0] or reader.is_alive():
        proc.kill()
        pytest.fail(f"no banner printed: {banner} {proc.stderr.read()[-2000:]}")
    return proc, banner


@pytest.mark.parametrize("argv, sig", [
    (["-m", "rsretrieval.cli", "fake-gemini"], signal.SIGTERM),
    (["-m", "rsretrieval.fake_gemini"], signal.SIGINT),  # Ctrl-C
])
def test_command_serves_the_real_client_and_stops_cleanly(argv: list[str], sig: signal.Signals) -> None:
    proc, banner = _start(argv)
    url = banner[0].split()[-1]
    try:
        assert url.startswith("http://127.0.0.1:") and int(url.rsplit(":", 1)[1]) > 0
        client = _client(url)  # kept: a client that is garbage-collected closes its connection pool
        resp = client.models.generate_content(
            model="gemini-2.5-flash", contents=CAPTION,
            config=types.GenerateContentConfig(system_instruction=SCENES_PROMPT, response_mime_type="application/json"))
        assert TASKS["text_scenes"].parse(resp.text) == ["Two red cars park next to a white house",
                                                        "Three tall trees line the road"]
        assert resp.usage_metadata.prompt_token_count > 0
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "generation.base_url=" + url in "".join(banner)  # how to point rsretrieval at it
    assert "stopped; served requests 1, ok 1, batches 0" in out
    assert "Traceback" not in err


def test_a_taken_port_is_one_error_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "rsretrieval.fake_gemini", "--port", str(port)], cwd=REPO,
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in proc.stderr


def _args(*argv: str):
    import argparse

    p = argparse.ArgumentParser()
    add_fake_gemini_args(p)
    return p.parse_args(list(argv))


def test_fault_flags_map_to_the_fault_config() -> None:
    f = fault_config(_args("--fail-rate", "0.4", "--latency", "0.2", "--rpm-quota", "60", "--seed", "3"))
    assert (f.rate_429, f.rate_5xx, f.latency_s, f.rpm_quota, f.seed) == (0.2, 0.2, 0.2, 60, 3)
    f = fault_config(_args("--fail-rate", "0.4", "--rate-429", "1", "--retry-delay", "2.5"))
    assert (f.rate_429, f.rate_5xx, f.retry_delay_s) == (1.0, 0.2, 2.5)


def test_in_process_serve_injects_faults_and_stops_on_its_event(capsys: pytest.CaptureFixture[str]) -> None:
    from rsretrieval.fake_gemini.serve import serve

    stop = threading.Event()
    result: list[dict[str, int]] = []
    worker = threading.Thread(target=lambda: result.append(serve(_args("--port", "0", "--rate-429", "1"), stop)))
    worker.start()  # not the main thread: no signal handlers, the event stops it
    try:
        for _ in range(200):
            out = capsys.readouterr().out
            if "listening on" in out:
                break
            stop.wait(0.05)
        url = out.split("listening on ")[1].split()[0]
        client = _client(url)
        with pytest.raises(errors.ClientError) as err:
            client.models.generate_content(model="gemini-2.5-flash", contents="x")
        assert err.value.code == 429
    finally:
        stop.set()
        worker.join(timeout=10)
    assert result == [{"requests": 1, "429": 1, "batches": 0}]


@pytest.mark.parametrize("task", sorted(TASKS))
def test_the_canned_answers_validate_for_every_task(task: str) -> None:
    images = int(TASKS[task].input_kind == "image")
    req = FakeRequest("m", "v1beta", {}, [CAPTION] if not images else [], images, TASKS[task].system_prompt, "abc123")
    parsed = TASKS[task].parse(task_responder(req))
    assert parsed
