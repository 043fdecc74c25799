"""Whatever a class pastes into the box, and whatever happens to the machine, the server keeps serving.

Bad and odd input through the app (each with its exact status and message; tests/test_api.py has the common
ones), security defaults, the optional rate limit, and — against a real gunicorn process — start-up with
broken models, a graceful SIGTERM, and a short soak whose memory must level off.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import GPT2_TOKENIZER, REPO, offline_hub_env
from server import create_app
from server.engine import file_sha256
from server.ratelimit import RateLimiter, client_address, parse_networks
from server_process import ServerProcess, accepted_by, exchange, run_load, wait_until

SERVER_ENV = {"HEADS_ORT_THREADS": "1"}  # the tests share the machine's cores with the server


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, tiny_model, wide_model):
    models = tmp_path_factory.mktemp("served")
    shutil.copytree(tiny_model, models / "tiny")
    shutil.copytree(wide_model, models / "wide")
    shutil.copytree(tiny_model, models / ".building-tiny-1")  # an export in progress is not a model
    return models


@pytest.fixture(scope="module")
def app(models_dir):
    return create_app({"MODELS_DIR": str(models_dir), "DEFAULT_MODEL": "tiny"})


@pytest.fixture
def client(app):
    return app.test_client()


def strict_json(data: bytes):
    """JSON as the browser parses it: NaN and Infinity are not JSON."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(data, parse_constant=refuse)


# --- bad input: a 4xx with a message that says what to do -------------------------------------------------------

AVAILABLE = "available: tiny, wide"

BAD_QUERIES = [
    ("text=a&model=..%2Ftiny", 404, f"no model named '../tiny'; {AVAILABLE}"),
    ("text=a&model=%2e%2e%2f%2e%2e%2fetc", 404, f"no model named '../../etc'; {AVAILABLE}"),
    ("text=a&model=..%5Ctiny", 404, f"no model named '..\\\\tiny'; {AVAILABLE}"),
    ("text=a&model=%2Fetc%2Fpasswd", 404, f"no model named '/etc/passwd'; {AVAILABLE}"),
    ("text=a&model=%2e%2e", 404, f"no model named '..'; {AVAILABLE}"),
    ("text=a&model=.building-tiny-1", 404, f"no model named '.building-tiny-1'; {AVAILABLE}"),
    ("text=a&model=tiny%00", 404, f"no model named '(invalid name)'; {AVAILABLE}"),
    ("text=a&model=tiny%00.onnx", 404, f"no model named '(invalid name)'; {AVAILABLE}"),
    ("text=a&model=", 404, f"no model named ''; {AVAILABLE}"),
    ("", 400, '"text" is required: the sentence to look at'),
    ("text=", 400, "the text is empty; type a sentence to look at"),
    ("text=%20%0A%09", 400, "the text is empty; type a sentence to look at"),
    ("text=%ED%A0%80", 400, "the query string is not valid UTF-8; percent-encode the text as UTF-8"),
    ("text=%C3%28", 400, "the query string is not valid UTF-8; percent-encode the text as UTF-8"),
    ("text=a&prepend_bos=maybe", 400, "\"prepend_bos\" must be true or false, not 'maybe'"),
    ("text=a&sink_aware=2", 400, "\"sink_aware\" must be true or false, not '2'"),
    ("text=a&layer=one", 400, "\"layer\" must be a whole number, not 'one'"),
    ("text=a&layer=2", 400, "layer must be between 0 and 1 for model 'tiny', not 2"),
    ("text=a&format=html", 400, '"format" must be one of summary, json, packed'),
    ("text=a&Text=b", 400, "unknown field 'Text'; the fields are: text, model, prepend_bos, sink_aware, format, "
                           "layer"),
    ("text=" + "word+" * 40 + "word", 400, "the sentence has 41 tokens; this model reads at most 40. Shorten it"),
    ("text=" + "word+" * 39 + "word&prepend_bos=1", 400,
     "the sentence has 41 tokens; this model reads at most 40. Shorten it"),
]


@pytest.mark.parametrize("query, status, message", BAD_QUERIES)
def test_bad_query_parameters_get_a_clear_error(client, query, status, message):
    response = client.get(f"/api/attention?{query}")
    assert (response.status_code, response.json) == (status, {"error": message})


BAD_BODIES = [
    (b'{"text": true}', 400, '"text" must be a string, not a boolean'),
    (b'{"text": 1.5}', 400, '"text" must be a string, not a number'),
    (b'{"text": {"a": 1}}', 400, '"text" must be a string, not an object'),
    (b'{"text": "a", "prepend_bos": null}', 400, '"prepend_bos" must be true or false, not null'),
    (b'{"text": "a", "prepend_bos": "true"}', 400, '"prepend_bos" must be true or false, not a string'),
    (b'{"text": "a", "prepend_bos": [true]}', 400, '"prepend_bos" must be true or false, not a list'),
    (b'{"text": "a", "layer": 1.0}', 400, '"layer" must be a whole number, not a number'),
    (b'{"text": "a", "layer": true}', 400, '"layer" must be a whole number, not a boolean'),
    (b'{"text": "a", "model": ["tiny"]}', 400, '"model" must be a string (a name from /api/models), not a list'),
    (b'{"text": "a", "model": "tiny/"}', 404, f"no model named 'tiny/'; {AVAILABLE}"),
    (b'{"text": "a", "model": "./tiny"}', 404, f"no model named './tiny'; {AVAILABLE}"),
    (b'{"text": "a", "model": "wide/../tiny"}', 404, f"no model named 'wide/../tiny'; {AVAILABLE}"),
    (b'{"text": "a", "model": "..%2Ftiny"}', 404, f"no model named '..%2Ftiny'; {AVAILABLE}"),
    (b'{"text": "a", "model": "' + str(REPO / "models").encode() + b'"}', 404,
     f"no model named {str(REPO / 'models')!r}; {AVAILABLE}"),
    (b'{"text": "a", "model": "' + b"x" * 101 + b'"}', 404, f"no model named '(invalid name)'; {AVAILABLE}"),
    (b'{"text": "a", "' + b"y" * 100 + b'": 1}', 400,
     f"unknown field '{'y' * 40}…'; the fields are: text, model, prepend_bos, sink_aware, format, layer"),
    (b'{"text": "ab\\ud800"}', 400, "the text has an invalid character at position 2 (a lone surrogate); remove it"),
    (b'{"text": "\\udc00z"}', 400, "the text has an invalid character at position 0 (a lone surrogate); remove it"),
    (b'{"text": "\\ude00\\ud83d"}', 400,
     "the text has an invalid character at position 0 (a lone surrogate); remove it"),
    (b'{"text": "\\u00a0\\u3000"}', 400, "the text is empty; type a sentence to look at"),
    (b'{"text": "ok \xed\xa0\x80"}', 400,  # a surrogate encoded as UTF-8: JSON's decoder lets it through
     "the text has an invalid character at position 3 (a lone surrogate); remove it"),
]


@pytest.mark.parametrize("body, status, message", BAD_BODIES)
def test_bad_json_fields_get_a_clear_error(client, body, status, message):
    response = client.post("/api/attention", data=body, content_type="application/json")
    assert (response.status_code, response.json) == (status, {"error": message})


NOT_JSON = 'the request body must be JSON (UTF-8) like {"text": "Hello world"}, sent with Content-Type: application/json'


@pytest.mark.parametrize("body, content_type", [
    (b"", "application/json"),
    (b'{"text": "a\x01b"}', "application/json"),  # a raw control character inside a JSON string
    (b'{"text": "\xc0\xaf"}', "application/json"),  # an overlong encoding of "/"
    (b'{"text": "a"', "application/json"),
    (b'{"text": "a"}', "text/plain"),
    (b'text=a', "application/x-www-form-urlencoded"),
])
def test_bodies_that_are_not_json_get_a_clear_error(client, body, content_type):
    response = client.post("/api/attention", data=body, content_type=content_type)
    assert (response.status_code, response.json) == (400, {"error": NOT_JSON})


def test_a_configured_body_limit_is_enforced_before_the_character_limit(models_dir):
    client = create_app({"MODELS_DIR": str(models_dir), "MAX_CONTENT_LENGTH": 65_536}).test_client()
    response = client.post("/api/attention", json={"text": "é" * 15_000})  # 15,000 characters, 90 kB escaped
    assert (response.status_code, response.json) == (413, {"error": "the request body is over 65,536 bytes; "
                                                                    "send a shorter text"})


def test_deeply_nested_json_is_a_bad_request(client):
    response = client.post("/api/attention", data=b"[" * 5000 + b"]" * 5000, content_type="application/json")
    assert (response.status_code, response.json) == (400, {
        "error": 'the request body nests too deeply; send a flat object like {"text": "Hello world"}'})


@pytest.mark.parametrize("path, method, allowed", [
    ("/api/models", "POST", "GET"), ("/healthz", "DELETE", "GET"), ("/", "PUT", "GET"),
    ("/api/attention", "TRACE", "GET or POST"),
])
def test_wrong_methods_elsewhere_get_405_as_json(client, path, method, allowed):
    response = client.open(path, method=method)
    assert (response.status_code, response.json) == (405, {"error": f"{method} is not allowed on {path}; use "
                                                                    f"{allowed}"})


# --- odd but valid text: it works, and every token maps back into the text -------------------------------------

ODD_TEXTS = {
    "control": "tab\there\x07bell \x1b[31m escape \x7f\x85",
    "nul": "nul\x00inside",
    "emoji": "😀 👩\u200d👩\u200d👧 🇫🇷 🤗",
    "combining": "e\u0301 n\u0303 Z\u0351\u0352\u0353",
    "right-to-left": "שלום עולם مرحبا بالعالم",
    "bidi-override": "\u202eevil\u202c and \u2066isolate\u2069",
    "zero-width": "zero\u200bwidth\u200cnon\u200djoiner\ufeff\u2060",
    "zero-width-only": "\u200b",
    "private-use": "\U0010ffff private \ue000",
    "script": "<script>alert(document.cookie)</script>",
    "html": '<img src=x onerror=alert(1)> &amp; "quotes" \'</textarea>',
    "template": "${alert(1)} {{7*7}} `backticks`",
    "special-token": "<|endoftext|> typed by hand",
    "single-token": "a",
    "single-character": ".",
}


def token_bytes(token: str) -> bytes:
    """A token's display string back to its bytes: "\\xf0\\x9f" fragments are bytes, everything else UTF-8."""
    return b"".join(bytes([int(part[2:], 16)]) if part.startswith("\\x") else part.encode("utf-8")
                    for part in re.split(r"(\\x[0-9a-f]{2})", token) if part)


@pytest.mark.parametrize("text", ODD_TEXTS.values(), ids=ODD_TEXTS.keys())
@pytest.mark.parametrize("prepend_bos", [False, True], ids=["plain", "bos"])
def test_odd_text_works_and_its_tokens_slice_back_into_it(client, text, prepend_bos):
    response = client.post("/api/attention", json={"text": text, "prepend_bos": prepend_bos, "format": "packed"})
    assert response.status_code == 200, response.json
    assert response.mimetype == "application/json"
    body = strict_json(response.data)
    tokens, offsets = body["tokens"][prepend_bos:], body["offsets"][prepend_bos:]
    assert body["n_tokens"] == len(body["tokens"]) == len(body["ids"]) == len(body["offsets"]) >= 1
    assert b"".join(token_bytes(token) for token in tokens) == text.encode("utf-8")
    for token, (start, end) in zip(tokens, offsets):
        assert 0 <= start < end <= len(text)
        if "\\x" in token:  # a fragment of a multi-byte character: its bytes lie inside the characters it spans
            assert token_bytes(token) in text[start:end].encode("utf-8")
        else:
            assert text[start:end] == token
    assert all(len(layer) == 4 for layer in body["heads"])


def test_a_single_token_sentence_gets_finite_scores_in_every_format(client):
    for form in ("summary", "json", "packed"):
        response = client.post("/api/attention", json={"text": "a", "format": form})
        body = strict_json(response.data)
        assert response.status_code == 200 and body["n_tokens"] == 1 and body["tokens"] == ["a"]
    assert body["attention_packed"]["shape"] == [2, 4, 1, 1]


def test_a_text_at_the_character_limit_is_accepted(models_dir):
    client = create_app({"MODELS_DIR": str(models_dir), "DEFAULT_MODEL": "tiny", "MAX_TEXT_CHARS": 50}).test_client()
    assert client.post("/api/attention", json={"text": "ab" * 25}).status_code == 200
    response = client.post("/api/attention", json={"text": "ab" * 25 + "c"})
    assert response.json == {"error": "the text has 51 characters; the limit is 50. Shorten it"}


# --- secure by default -------------------------------------------------------------------------------------------

def test_production_defaults_have_debug_off_and_no_cors(app, client):
    assert app.debug is False and app.testing is False
    for response in (client.options("/api/attention", headers={"Origin": "https://elsewhere.example",
                                                                "Access-Control-Request-Method": "POST"}),
                     client.post("/api/attention", json={"text": "a"}, headers={"Origin": "https://elsewhere.example"})):
        assert not [name for name in response.headers.keys() if name.lower().startswith("access-control-")]


def test_content_security_policy_allows_no_inline_script_and_no_remote_origin(client):
    policy = client.get("/").headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'" and directives["default-src"] == "'self'"
    for sources in directives.values():
        assert not re.search(r"unsafe-|https?:|\*|//", sources), sources


@pytest.mark.parametrize("method, path, payload", [
    ("POST", "/api/attention", {"text": ""}), ("GET", "/api/attention?text=a&model=nope", None),
    ("PUT", "/api/attention", None), ("GET", "/nothing", None), ("GET", "/static/app.js", None),
])
def test_every_response_carries_the_security_headers(client, method, path, payload):
    headers = client.open(path, method=method, json=payload).headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_an_unexpected_failure_is_a_json_500_without_a_traceback(app, monkeypatch):
    registry = app.extensions["heads.models"]
    monkeypatch.setattr(registry, "get", lambda name=None: (_ for _ in ()).throw(RuntimeError("/secret/path")))
    response = app.test_client().post("/api/attention", json={"text": "a"})
    assert (response.status_code, response.json) == (500, {"error": "internal error: the server logged it; try "
                                                                    "again or report it"})
    assert b"secret" not in response.data and b"Traceback" not in response.data


def test_no_endpoint_takes_a_path_from_the_request_but_the_static_folder(app):
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    assert routes == {"/", "/static/<path:filename>", "/healthz", "/api/models", "/api/attention"}


@pytest.mark.parametrize("path", ["/static/../server/config.py", "/static/%2e%2e/server/config.py",
                                  "/static/..%2fserver%2fconfig.py", "/static/%2fetc%2fpasswd",
                                  "/static//etc/passwd", "/static/app.js%00.html"])
def test_the_static_folder_cannot_be_left(client, path):
    response = client.get(path, follow_redirects=True)  # "//" is first redirected to "/", on this server
    assert response.status_code == 404 and response.json["error"].startswith("nothing at ")


def test_the_page_writes_tokens_and_sentences_only_as_text():
    """No HTML sink and no code from strings in the page's scripts; no inline script or handler in its HTML.
    (tests/test_browser.py drives a real browser with script and HTML payloads.)"""
    for script in sorted((REPO / "static").glob("*.js")):
        source = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                     "setTimeout(\"", "setTimeout('", "srcdoc", "createContextualFragment"):
            assert sink not in source, f"{script.name} uses {sink}"
    page = (REPO / "static" / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "inline script"
    assert not re.search(r"\son[a-z]+\s*=", page), "inline event handler"
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "a remote resource"
    assert not re.search(r"<style|\sstyle=", page), "an inline style (the policy would block it)"


# --- the optional rate limit ---------------------------------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_allows_a_burst_then_one_request_per_refill():
    clock = FakeClock()
    limiter = RateLimiter(6, clock=clock)  # 6 a minute: one every 10 s
    assert [limiter.acquire("a") for _ in range(6)] == [0.0] * 6
    assert limiter.acquire("a") == pytest.approx(10.0)
    assert limiter.acquire("b") == 0.0  # another client has its own bucket
    clock.now += 10
    assert limiter.acquire("a") == 0.0 and limiter.acquire("a") == pytest.approx(10.0)


def test_rate_limiter_memory_is_bounded():
    clock = FakeClock()
    limiter = RateLimiter(6, max_clients=100, clock=clock)
    for n in range(1000):
        limiter.acquire(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter.buckets) == 100
    clock.now += 60  # idle a minute: every bucket is full again, so nothing needs remembering
    limiter.acquire("a")
    assert list(limiter.buckets) == ["a"]


TRUSTED = parse_networks("127.0.0.1, 10.0.0.0/8")


@pytest.mark.parametrize("peer, forwarded_for, client", [
    ("203.0.113.9", "", "203.0.113.9"),
    ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # not from our proxy: the header is the client's own claim
    ("127.0.0.1", "198.51.100.1", "198.51.100.1"),
    ("127.0.0.1", "1.1.1.1, 198.51.100.1", "198.51.100.1"),  # the client wrote 1.1.1.1; nginx appended the peer
    ("127.0.0.1", "198.51.100.1, 10.0.0.2", "198.51.100.1"),  # two proxies of ours
    ("127.0.0.1", "not-an-address", "not-an-address"),
    ("127.0.0.1", "", "127.0.0.1"),
    ("127.0.0.1", "10.0.0.3, 10.0.0.2", "10.0.0.3"),
])
def test_the_client_is_the_peer_unless_a_trusted_proxy_forwarded_it(peer, forwarded_for, client):
    assert client_address(peer, forwarded_for, TRUSTED) == client


def test_trusted_proxies_must_be_addresses():
    with pytest.raises(SystemExit, match="TRUSTED_PROXIES: 'nginx' is not an IP address or network"):
        parse_networks("127.0.0.1, nginx")


def test_rate_limit_is_off_by_default(app, client):
    assert "heads.ratelimit" not in app.extensions
    assert {client.post("/api/attention", json={"text": "again"}).status_code for _ in range(30)} == {200}


def test_rate_limit_gives_429_with_retry_after_on_attention_only(models_dir):
    app = create_app({"MODELS_DIR": str(models_dir), "RATE_LIMIT_PER_MINUTE": 3, "TRUSTED_PROXIES": "127.0.0.1"})
    app.extensions["heads.ratelimit"].clock = FakeClock()
    client = app.test_client()

    def attend(address="127.0.0.1", **headers):
        return client.post("/api/attention", json={"text": "a"}, headers=headers,
                           environ_base={"REMOTE_ADDR": address})

    assert [attend().status_code for _ in range(3)] == [200] * 3
    refused = attend()
    assert (refused.status_code, refused.json) == (429, {"error": "too many requests from this address; try again "
                                                                  "in 20 seconds"})
    assert refused.headers["Retry-After"] == "20" and refused.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/api/models").status_code == 200 and client.get("/").status_code == 200
    assert attend("192.0.2.7").status_code == 200  # another address
    assert attend("192.0.2.7", **{"X-Forwarded-For": "198.51.100.1"}).status_code == 200  # ignored: not a proxy
    assert [attend("192.0.2.7").status_code for _ in range(2)] == [200, 429]
    assert attend(**{"X-Forwarded-For": "198.51.100.1"}).status_code == 200  # forwarded by a trusted proxy


# --- a real server process -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("step", ["quantizing to int8", "writing the tokenizer and manifest"])
def test_an_export_killed_at_a_late_step_leaves_nothing_a_server_would_load(tmp_path, tiny_checkpoint, step):
    """tests/test_export.py kills an export as it starts; here SIGKILL lands in its last steps, int8 included."""
    models = tmp_path / "models"
    process = subprocess.Popen([sys.executable, "-m", "export", str(tiny_checkpoint), "--name", "tiny", "--int8",
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
    assert client.get("/api/models").json == {"models": [], "default": None}


def edit_manifest(model_dir: Path, **changes) -> None:
    path = model_dir / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def graph_without_attention(model_dir: Path) -> None:
    """A valid ONNX graph with the right input and no attention outputs (another model's export, say)."""
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Cast", ["input_ids"], ["logits"], to=TensorProto.FLOAT)], "other",
                              [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "sequence"])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model_dir / "model.onnx")
    edit_manifest(model_dir, model_sha256=file_sha256(model_dir / "model.onnx"))


def truncated_graph(model_dir: Path) -> None:
    data = (model_dir / "model.onnx").read_bytes()
    (model_dir / "model.onnx").write_bytes(data[: len(data) // 3])
    edit_manifest(model_dir, model_sha256=file_sha256(model_dir / "model.onnx"))


def tokenizer_of_another_model(model_dir: Path) -> None:
    from tokenizers import AddedToken, Tokenizer
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.add_special_tokens([AddedToken("<|pad|>", special=True)])
    tokenizer.save(str(model_dir / "tokenizer.json"))


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
FIX = "re-export it with `python -m export`"


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
    assert message in response.json["error"] and "re-export it with `python -m export`" in response.json["error"]


def test_a_missing_models_directory_is_one_clear_line_and_a_503(tmp_path):
    with ServerProcess(tmp_path / "nowhere", env=SERVER_ENV) as server:
        status, _, body = server.request("POST", "/api/attention", {"text": "hello"})
        assert status == 503 and "no model is ready in" in json.loads(body)["error"]
        stderr = server.stderr
    assert f"no model is ready in {tmp_path / 'nowhere'}; export one there with `python -m export`" in stderr
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
            server.process.send_signal(signal.SIGTERM)
            server.wait_for(lambda: any("Handling signal: term" in line for line in server.lines), 10, "to stop")
            time.sleep(0.3)  # the master passes SIGTERM on to the worker at once; give it the moment
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
    """8 clients for 8 s on loopback (benchmarks/soak.py runs 32 for 60 s): every request answered, and the
    worker's memory after warm-up stays within a few MB of where it was. The cache is small so it fills, and
    evicts, during warm-up."""
    shutil.copytree(tiny_model, tmp_path / "tiny")
    seconds, warmup = 8.0, 2.0
    with ServerProcess(tmp_path, env={**SERVER_ENV, "HEADS_CACHE_BYTES": str(256 * 1024)}) as server:
        result = run_load(server, clients=8, seconds=seconds, next_text=soak_text, payload_extra={"format": "packed"})
    assert result.errors == []
    assert result.requests > 200 and len(result.repeat_latencies) > 100
    assert sum(result.response_bytes.values()) > 2 * 256 * 1024  # more distinct answers than the cache holds
    third = (seconds - warmup) / 3
    first = result.rss_between(warmup, warmup + third)
    last = result.rss_between(warmup + 2 * third, seconds)
    assert first and last
    assert max(last) <= max(first) + 4096, (first, last)  # kB: leveled off, allowing allocator noise
