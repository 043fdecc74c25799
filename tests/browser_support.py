"""Helpers for tests/test_browser.py: a real `flask run` server on a free loopback port, the page's own API
called from the test, and Debian's chromium driven by Playwright (never a downloaded browser)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]
SERVER_START_TIMEOUT = 90  # s: the server loads (and checksums) every model before it answers /healthz
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LiveServer:
    """`python -m flask --app server run` in a child process, as a user starts it; stopped on close()."""

    def __init__(self, models_dir: Path, default_model: str, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "HEADS_MODELS_DIR": str(models_dir), "HEADS_MODEL": default_model,
               "PYTHONUNBUFFERED": "1"}
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "twelve_heads.server", "run", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_until_healthy(log_path)

    def wait_until_healthy(self, log_path: Path) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}):\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.close()
        raise RuntimeError(f"the server did not answer /healthz in {SERVER_START_TIMEOUT} s:\n{log_path.read_text()}")

    def api(self, endpoint: str = "/api/attention", **payload) -> tuple[int, dict]:
        """POST `endpoint`; (status, parsed body) for successes and errors alike."""
        request = urllib.request.Request(f"{self.url}{endpoint}", data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def synthetic_copy(model_dir: Path, target: Path) -> Path:
    """The same model marked `"synthetic": true`: its files linked, its manifest rewritten (nothing recomputed)."""
    target.mkdir(parents=True)
    for item in model_dir.iterdir():
        if item.name != "manifest.json":
            try:
                (target / item.name).symlink_to(item.resolve())
            except OSError:
                shutil.copy2(item, target / item.name)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["synthetic"] = True
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return target


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG: the signature is missing"
    assert data[12:16] == b"IHDR", "not a PNG: the first chunk is not IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def shown_token(token: str) -> str:
    """A token as the page's chips show it (static/attention.js visibleToken)."""
    return token.replace(" ", "␣").replace("\t", "⇥").replace("\n", "↵")
