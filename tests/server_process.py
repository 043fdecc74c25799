"""A real server for tests and benchmarks: gunicorn in its own process on a free loopback port, and a bounded
load generator to run against it. Traffic never leaves 127.0.0.1.

    with ServerProcess(models_dir) as server:
        status, headers, body = server.request("POST", "/api/attention", {"text": "Hello"})
        server.worker_rss_kb()
        result = run_load(server, clients=8, seconds=8, next_text=...)
"""

import gzip
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BOOT_TIMEOUT = 90  # seconds: importing onnxruntime, hashing and opening every model
REQUEST_TIMEOUT = 60  # seconds: one request, however loaded the server
RSS_INTERVAL = 0.25  # seconds between resident-memory samples during a load


class ServerProcess:
    """`gunicorn 'twelve_heads.server:create_app()'` as the README runs it, with HEADS_* settings from `env`."""

    def __init__(self, models_dir, workers: int = 1, threads: int = 8, graceful_timeout: int = 10,
                 env: dict | None = None, args: tuple = (), command: list | None = None, cwd: Path = REPO):
        """`command` replaces gunicorn's (for `twelve-heads serve --port 0` from an installed wheel), run in `cwd`."""
        self.command = command or [
            sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "--workers", str(workers),
            "--threads", str(threads), "--graceful-timeout", str(graceful_timeout), "--no-control-socket", *args,
            "twelve_heads.server:create_app()"]
        self.cwd = cwd
        inherited = {key: value for key, value in os.environ.items() if not key.startswith("HEADS_")}  # ours only
        self.env = {**inherited, "HEADS_MODELS_DIR": str(models_dir), "PYTHONUNBUFFERED": "1", **(env or {})}
        self.workers = workers
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self.worker_pids: list[int] = []
        self.lines: list[str] = []  # everything the server wrote to stderr
        self.changed = threading.Condition()

    def __enter__(self) -> "ServerProcess":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def stderr(self) -> str:
        with self.changed:
            return "".join(self.lines)

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                        errors="replace", start_new_session=True)
        threading.Thread(target=self.read_stderr, daemon=True).start()
        try:
            self.wait_for(lambda: self.port and len(self.worker_pids) >= self.workers, BOOT_TIMEOUT, "to listen")
            deadline = time.monotonic() + BOOT_TIMEOUT
            while True:  # the workers load the models after the master listens; connections wait in the backlog
                try:
                    if self.request("GET", "/healthz", timeout=5)[0] == 200:
                        return
                except OSError:
                    pass
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not become ready:\n{self.stderr}")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def read_stderr(self) -> None:
        for line in self.process.stderr:
            with self.changed:
                self.lines.append(line)
                if match := re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line):
                    self.port = int(match.group(1))
                if match := re.search(r"Booting worker with pid: (\d+)", line):
                    self.worker_pids.append(int(match.group(1)))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, condition, timeout: float, what: str) -> None:
        """Block until condition() holds (re-checked whenever the server writes a line), or fail loudly."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.process.poll() is not None and not condition()):
                    raise RuntimeError(f"the server did not come {what} within {timeout} s:\n{''.join(self.lines)}")
                self.changed.wait(min(remaining, 0.2))

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM (gunicorn's graceful stop); SIGKILL to the whole process group if that does not end it."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # our own session: the master and its workers
                self.process.wait(10)
        return self.process.returncode

    def connection(self, timeout: float = REQUEST_TIMEOUT) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method: str, path: str, payload=None, body: bytes | None = None, headers: dict | None = None,
                timeout: float = REQUEST_TIMEOUT) -> tuple[int, dict, bytes]:
        """One request on a fresh connection: (status, headers, body). `payload` is sent as JSON."""
        headers = dict(headers or {})
        if payload is not None:
            body = json.dumps(payload).encode()
            headers.setdefault("Content-Type", "application/json")
        connection = self.connection(timeout)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def worker_rss_kb(self) -> int:
        """Resident memory of all workers together, from /proc/PID/status (VmRSS, kB)."""
        total = 0
        for pid in self.worker_pids:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue  # a worker that has exited holds no memory
            total += int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))
        return total


# --- raw connections ----------------------------------------------------------------------------------------------

def accepted_by(pid: int, connection: socket.socket) -> bool:
    """Whether process `pid` holds the server end of `connection`, i.e. has accepted it (Linux /proc)."""
    client_port, server_port = connection.getsockname()[1], connection.getpeername()[1]
    return any(link_target(fd) in tcp_sockets(server_port, client_port) for fd in process_fds(pid))


def stopped_accepting(pid: int, port: int) -> bool:
    """Whether gunicorn worker `pid` no longer waits for new connections on `port`: its gthread loop has seen
    SIGTERM and taken the listening socket out of its epoll set (Linux /proc: the epoll fd's `tfd:` lines)."""
    listening = {fd.name for fd in process_fds(pid) if link_target(fd) in tcp_sockets(port, 0)}
    watched = set()
    for fd in process_fds(pid):
        if link_target(fd) == "anon_inode:[eventpoll]":
            info = (Path(f"/proc/{pid}/fdinfo") / fd.name).read_text()
            watched |= {line.split()[1] for line in info.splitlines() if line.startswith("tfd:")}
    return bool(listening) and not listening & watched


def tcp_sockets(local_port: int, remote_port: int) -> set[str]:
    """The fd link targets ("socket:[inode]") of this machine's TCP sockets between the two ports (remote 0: a
    listening socket)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if (int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)) == (local_port, remote_port) \
                and fields[9] != "0":
            inodes.add(f"socket:[{fields[9]}]")
    return inodes


def process_fds(pid: int) -> list[Path]:
    try:
        return list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:  # the process is gone
        return []


def link_target(path: Path) -> str:
    try:
        return str(path.readlink())
    except OSError:  # the descriptor closed while we looked
        return ""


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


def exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes on a fresh connection; everything the server answers before it closes. The bytes are sent
    from a thread, as a client does: a server may answer, and close, before it has read them all."""
    with socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT) as connection:
        sender = threading.Thread(target=send_ignoring_a_closed_connection, args=(connection, data))
        sender.start()
        response = b""
        while chunk := connection.recv(65536):
            response += chunk
        sender.join(REQUEST_TIMEOUT)
    return response


def send_ignoring_a_closed_connection(connection: socket.socket, data: bytes) -> None:
    try:
        connection.sendall(data)
    except OSError:
        pass


# --- load ------------------------------------------------------------------------------------------------------

@dataclass
class LoadResult:
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, one per successful request
    repeat_latencies: list[float] = field(default_factory=list)  # the share for sentences from the repeated set
    new_latencies: list[float] = field(default_factory=list)  # the share for sentences sent once
    errors: list[str] = field(default_factory=list)  # what went wrong, one per failed request
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, kB of all workers)
    response_bytes: dict = field(default_factory=dict)  # text → gzipped bytes of its answer, as the cache keeps it

    @property
    def requests(self) -> int:
        return len(self.latencies) + len(self.errors)

    def percentile_ms(self, q: float, latencies: list[float] | None = None) -> float:
        ordered = sorted(self.latencies if latencies is None else latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000

    def rss_between(self, start: float, end: float) -> list[int]:
        return [kb for at, kb in self.rss if start <= at < end]


def run_load(server: ServerProcess, clients: int, seconds: float, next_text, payload_extra: dict | None = None
             ) -> LoadResult:
    """`clients` threads, each on its own keep-alive connection, POST /api/attention back to back for `seconds`,
    accepting gzip as browsers do.

    next_text(client, n) → (text, repeated) picks each sentence. A request is an error unless it gets 200 and a
    JSON body with labelled heads. Workers' RSS is sampled every RSS_INTERVAL seconds meanwhile."""
    result = LoadResult(seconds)
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + seconds

    def client(number: int) -> None:
        connection, n = server.connection(), 0
        while time.monotonic() < deadline:
            text, repeated = next_text(number, n)
            n += 1
            body = json.dumps({"text": text, **(payload_extra or {})}).encode()
            sent = time.monotonic()
            try:
                connection.request("POST", "/api/attention", body=body,
                                   headers={"Content-Type": "application/json", "Accept-Encoding": "gzip"})
                response = connection.getresponse()
                data = response.read()
                elapsed, wire_bytes = time.monotonic() - sent, len(data)
                if response.getheader("Content-Encoding") == "gzip":
                    data = gzip.decompress(data)
                problem = None if response.status == 200 else f"{response.status} {data[:200]!r}"
                if problem is None and b'"heads":[[{"label":' not in data:  # cheaper than parsing it all
                    problem = f"200 without heads: {data[:200]!r}"
            except (OSError, http.client.HTTPException, ValueError, EOFError) as err:
                problem, elapsed, wire_bytes = f"{type(err).__name__}: {err}", 0.0, 0
                connection.close()
                connection = server.connection()
            with lock:
                if problem:
                    result.errors.append(problem)
                else:
                    result.latencies.append(elapsed)
                    (result.repeat_latencies if repeated else result.new_latencies).append(elapsed)
                    result.response_bytes[text] = wire_bytes
        connection.close()

    def sample_rss() -> None:
        while time.monotonic() < deadline:
            result.rss.append((time.monotonic() - started, server.worker_rss_kb()))
            time.sleep(RSS_INTERVAL)

    threads = [threading.Thread(target=client, args=(number,)) for number in range(clients)]
    threads.append(threading.Thread(target=sample_rss))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 2 * REQUEST_TIMEOUT)  # bounded: a request times out after REQUEST_TIMEOUT
    result.seconds = time.monotonic() - started
    return result
