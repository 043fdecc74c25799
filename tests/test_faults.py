"""Faults against a real gunicorn process: start-up with broken models, a graceful SIGTERM, bodies and bytes no
browser sends, an export killed late, and a short soak whose memory must level off."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GPT2_TOKENIZER, REPO, offline_hub_env
from twelve_heads.server import create_app
from twelve_heads.modeldir import HEAD_MASK, INPUT_IDS, RESIDUAL, checksums
from server_process import ServerProcess, accepted_by, exchange, run_load, stopped_accepting, wait_until

SERVER_ENV = {"HEADS_ORT_THREADS": "1"}  # the tests share the machine's cores with the server


@pytest.mark.parametrize("step", ["quantizing to int8", "writing the tokenizer and manifest"])
def test_an_export_killed_at_a_late_step_leaves_nothing_a_server_would_load(tmp_path, tiny_checkpoint, step):
    """tests/test_export.py kills an export as it starts; here SIGKILL lands in its last steps, int8 included."""
    models = tmp_path / "models"
    process = subprocess.Popen([sys.executable, "-m", "twelve_heads.export", str(tiny_checkpoint), "--name", "tiny", "--int8",
                                "--models-dir", str(models), "--tokenizer", str(GPT2_TOKENIZER)],
                               cwd=REPO, env={**os.environ, **offline_hub_env()}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output = []
    try:
        for line in process.stdout:  # ends when the export does, so the loop is bounded by the export itself
            output.append(line)
            if step in line:
                process.kill()
                break
    finally:
        process.kill()
        process.wait(60)
    assert step in "".join(output), "".join(output)
    assert not (models / "tiny").exists()
    client = create_app({"MODELS_DIR": str(models)}).test_client()
    assert (client.get("/api/models").json["models"], client.get("/api/models").json["default"]) == ([], None)


def edit_manifest(model_dir: Path, **changes) -> None:
    path = model_dir / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def graph_without_attention(model_dir: Path) -> None:
    """A valid ONNX graph with the right inputs and residual, and no attention outputs (another model's export)."""
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Cast", [INPUT_IDS], [RESIDUAL], to=TensorProto.FLOAT)], "other",
                              [helper.make_tensor_value_info(INPUT_IDS, TensorProto.INT64, ["batch", "sequence"]),
                               helper.make_tensor_value_info(HEAD_MASK, TensorProto.FLOAT, ["layers", "heads"])],
                              [helper.make_tensor_value_info(RESIDUAL, TensorProto.FLOAT, ["batch", "sequence"])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model_dir / "model.onnx")
    edit_manifest(model_dir, files=checksums(model_dir))


def truncated_graph(model_dir: Path) -> None:
    data = (model_dir / "model.onnx").read_bytes()
    (model_dir / "model.onnx").write_bytes(data[: len(data) // 3])
    edit_manifest(model_dir, files=checksums(model_dir))


def tokenizer_of_another_model(model_dir: Path) -> None:
    from tokenizers import AddedToken, Tokenizer
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.add_special_tokens([AddedToken("<|pad|>", special=True)])
    tokenizer.save(str(model_dir / "tokenizer.json"))
    edit_manifest(model_dir, files=checksums(model_dir))  # a consistent copy, only of the wrong tokenizer


BROKEN_MODELS = {  # name: (damage, what the error must say, after the model's path)
    "no-onnx": (lambda d: (d / "model.onnx").unlink(), "/model.onnx is missing"),
    "truncated": (truncated_graph, "/model.onnx could not be loaded ("),
    "checksum": (lambda d: (d / "model.onnx").write_bytes((d / "model.onnx").read_bytes() + b"\0"),
                 "/model.onnx does not match the checksum in its manifest (damaged or replaced)"),
    "manifest-says-3-layers": (lambda d: edit_manifest(d, n_layer=3),
                               "/model.onnx has no output 'attentions.2', but its manifest says 3 layers"),
    "no-attention": (graph_without_attention, "/model.onnx has no output 'attentions.0', but its manifest says 2"),
    "foreign-tokenizer": (tokenizer_of_another_model,
                          "/tokenizer.json has 50,258 tokens but the model has 50,257 embeddings"),
    "manifest-not-json": (lambda d: (d / "manifest.json").write_text('{"name": '), "/manifest.json is not valid JSON"),
}
FIX = "re-export it with `twelve-heads export`"


def test_one_good_model_serves_while_each_broken_one_is_reported_in_one_line(tmp_path, tiny_model):
    shutil.copytree(tiny_model, tmp_path / "good")
    for name, (damage, _) in BROKEN_MODELS.items():
        damage(shutil.copytree(tiny_model, tmp_path / name))
    with ServerProcess(tmp_path, env={**SERVER_ENV, "HEADS_MODEL": "checksum"}) as server:
        status, _, body = server.request("POST", "/api/attention", {"text": "still serving"})
        assert status == 200 and json.loads(body)["model"] == "good"
        models = {m["name"]: m for m in json.loads(server.request("GET", "/api/models")[2])["models"]}
        stderr = server.stderr
    assert models["good"]["error"] is None
    for name, (_, message) in BROKEN_MODELS.items():
        assert str(tmp_path / name) + message in models[name]["error"] and FIX in models[name]["error"], name
        lines = [line for line in stderr.splitlines() if f"model {name} is unusable" in line]
        assert len(lines) == 1 and message in lines[0] and FIX in lines[0], (name, stderr)
    assert "serving good from" in stderr
    assert "Traceback" not in stderr


def more_positions_than_the_graph(model_dir: Path) -> str:
    edit_manifest(model_dir, n_positions=100)  # the graph's position table has 40
    return "word " * 49 + "word"


def more_tokens_than_the_graph(model_dir: Path) -> str:
    tokenizer_of_another_model(model_dir)
    edit_manifest(model_dir, vocab_size=50_258)  # the graph's embedding table has 50,257
    return "a <|pad|>"


@pytest.mark.parametrize("disagree, message", [
    (more_positions_than_the_graph, "failed on a 50-token sentence"),
    (more_tokens_than_the_graph, "has fewer token embeddings than the 50,258 its manifest says"),
])
def test_a_manifest_larger_than_its_graph_is_a_clear_server_fault(tmp_path, tiny_model, disagree, message):
    """The model is at fault, not the request: a 503 naming the file and the fix, never an onnxruntime trace."""
    text = disagree(shutil.copytree(tiny_model, tmp_path / "tiny"))
    client = create_app({"MODELS_DIR": str(tmp_path)}).test_client()
    response = client.post("/api/attention", json={"text": text, "model": "tiny"})
    assert response.status_code == 503
    assert message in response.json["error"] and "re-export it with `twelve-heads export`" in response.json["error"]


def test_a_missing_models_directory_is_one_clear_line_and_a_503(tmp_path):
    with ServerProcess(tmp_path / "nowhere", env=SERVER_ENV) as server:
        status, _, body = server.request("POST", "/api/attention", {"text": "hello"})
        assert status == 503 and "no model is ready in" in json.loads(body)["error"]
        stderr = server.stderr
    assert f"no model is ready in {tmp_path / 'nowhere'}; export one there with `twelve-heads export`" in stderr
    assert "Traceback" not in stderr


def test_sigterm_finishes_the_request_in_flight_then_exits_cleanly(tmp_path, tiny_model):
    shutil.copytree(tiny_model, tmp_path / "tiny")
    body = json.dumps({"text": "finish me before you go"}).encode()
    with ServerProcess(tmp_path, env=SERVER_ENV) as server:
        connection = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        with connection:
            # Half the body: the worker has begun the request and is waiting for the rest.
            connection.sendall(b"POST /api/attention HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                               b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body[:10]))
            wait_until(lambda: accepted_by(server.worker_pids[0], connection), 10, "the worker to accept")
            assert not stopped_accepting(server.worker_pids[0], server.port)
            server.process.send_signal(signal.SIGTERM)
            server.wait_for(lambda: any("Handling signal: term" in line for line in server.lines), 10, "to stop")
            wait_until(lambda: stopped_accepting(server.worker_pids[0], server.port), 10, "the worker to get SIGTERM")
            connection.sendall(body[10:])
            response = b""
            while chunk := connection.recv(65536):
                response += chunk
        assert response.startswith(b"HTTP/1.1 200 "), response[:300]
        assert "".join(json.loads(response.split(b"\r\n\r\n", 1)[1])["tokens"]) == "finish me before you go"
        assert server.process.wait(30) == 0
        assert "Traceback" not in server.stderr


def test_a_body_of_megabytes_is_refused_before_it_is_read_and_the_server_keeps_serving(tmp_path, tiny_model):
    shutil.copytree(tiny_model, tmp_path / "tiny")
    with ServerProcess(tmp_path, env=SERVER_ENV) as server:
        response = exchange(server.port, b"POST /api/attention HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                                         b"application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
                                         % (8 << 20))  # 8 MB announced, none sent: refused on the header alone
        head, body = response.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 413 ")
        assert json.loads(body) == {"error": "the request body is over 262,144 bytes; send a shorter text"}
        assert server.request("POST", "/api/attention", {"text": "still serving"})[0] == 200


RAW_REQUESTS = {  # what curl or a script can send; a browser percent-encodes
    "raw-latin-1-in-query": (b"GET /api/attention?text=caf\xe9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                             b"HTTP/1.1 400 "),
    "raw-utf-8-in-query": (b"GET /api/attention?text=caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                           b"HTTP/1.1 400 "),
    "nul-in-request-line": (b"GET /api/attention?text=a\x00b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                            b"HTTP/1.1 400 "),
    "not-http": (b"HELLO\r\n\r\n", b"HTTP/1.1 400 "),
    "percent-encoded-invalid-utf-8": (b"GET /api/attention?text=%ff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                      b"HTTP/1.1 400 "),
}


def test_raw_bytes_on_the_wire_get_a_400_and_the_server_keeps_serving(tmp_path, tiny_model):
    """gunicorn itself refuses a request line that is not ASCII, with its own small HTML page (the app never sees
    it); everything that reaches the app gets the JSON error."""
    shutil.copytree(tiny_model, tmp_path / "tiny")
    with ServerProcess(tmp_path, env=SERVER_ENV) as server:
        for name, (request, status_line) in RAW_REQUESTS.items():
            assert exchange(server.port, request).startswith(status_line), name
        assert server.request("POST", "/api/attention", {"text": "still serving"})[0] == 200
        assert "Traceback" not in server.stderr


def test_a_chunked_body_of_megabytes_gets_413(tmp_path, tiny_model):
    shutil.copytree(tiny_model, tmp_path / "tiny")
    body = json.dumps({"text": "a" * (4 << 20)}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[at:at + 65536]), body[at:at + 65536])
                      for at in range(0, len(body), 65536))
    request = (b"POST /api/attention HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
    with ServerProcess(tmp_path, env=SERVER_ENV) as server:
        response = exchange(server.port, request)
        assert server.request("POST", "/api/attention", {"text": "still serving"})[0] == 200
    head, answer = response.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 4")  # a clear 4xx either way; the status is what is wrong
    assert head.startswith(b"HTTP/1.1 413 "), answer


SOAK_SENTENCES = ["The cat sat on the mat.", "Alice met Bob and she smiled at him.",
                  "The trophy does not fit in the suitcase because it is too big.", "one two three one two three"]


def soak_text(client: int, n: int) -> tuple[str, bool]:
    if n % 2:  # every other request repeats a sentence (a cache hit), the rest are new (a miss)
        return SOAK_SENTENCES[(client + n) % len(SOAK_SENTENCES)], True
    return f"Client {client} sends sentence number {n} of the soak.", False


def test_short_soak_has_no_errors_and_memory_levels_off(tmp_path, tiny_model):
    """8 clients for 8 s on loopback (benchmarks/soak.py runs 32 for 60 s, and measures throughput): every request
    answered, and the worker's memory after warm-up stays within a few MB of where it was. The cache is small so
    it fills, and evicts, within the first few dozen requests, however fast the machine is."""
    shutil.copytree(tiny_model, tmp_path / "tiny")
    seconds, warmup, cache_bytes = 8.0, 2.0, 32 * 1024
    with ServerProcess(tmp_path, env={**SERVER_ENV, "HEADS_CACHE_BYTES": str(cache_bytes)}) as server:
        result = run_load(server, clients=8, seconds=seconds, next_text=soak_text, payload_extra={"format": "packed"})
    assert result.errors == []
    assert result.repeat_latencies and result.new_latencies  # both hits and misses were asked for
    assert sum(result.response_bytes.values()) > 2 * cache_bytes  # more distinct answers than the cache holds
    third = (seconds - warmup) / 3
    first = result.rss_between(warmup, warmup + third)
    last = result.rss_between(warmup + 2 * third, seconds)
    assert first and last
    assert max(last) <= max(first) + 4096, (first, last)  # kB: leveled off, allowing allocator noise


def test_a_sentence_at_the_models_limit_leaves_no_memory_behind(tmp_path, demo_model):
    """1,024 tokens through all 144 heads needs about 1 GB at its peak (the 576 MB attention array, the
    activations). Once answered, the worker is back within 100 MB of where it started: onnxruntime's arena is
    shrunk after a long run (Engine.is_long), and what glibc held goes back (release_freed_memory)."""
    shutil.copytree(demo_model, tmp_path / "demo")
    with ServerProcess(tmp_path, env=SERVER_ENV) as server:
        status, _, _ = server.request("POST", "/api/attention", {"text": "warm up"})
        assert status == 200
        before = server.worker_rss_kb()
        status, _, body = server.request("POST", "/api/attention", {"text": "the" + " the" * 1023})
        assert status == 200 and json.loads(body)["n_tokens"] == 1024
        after = server.worker_rss_kb()
    assert after - before < 100 * 1024, (before, after)
