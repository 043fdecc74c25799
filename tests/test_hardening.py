"""Whatever a class pastes into the box, and whatever happens to the machine, the server keeps serving.

Bad and odd input through the app, each with its exact status and message (tests/test_api.py has the common
ones), and the security defaults. The rate limit is in tests/test_ratelimit.py; faults against a real gunicorn
process in tests/test_faults.py.
"""

import json
import re

import pytest

from conftest import REPO
from twelve_heads.server import create_app

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
                           "layer, ablate, predict"),
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
     f"unknown field '{'y' * 40}…'; the fields are: text, model, prepend_bos, sink_aware, format, layer, "
     "ablate, predict"),
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
    assert response.json == {"error": "the text has 51 characters; this model reads at most 40 tokens (about 200 characters of English). Shorten it"}


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
    assert routes == {"/", "/static/<path:filename>", "/healthz", "/api/models", "/api/attention", "/api/tokens",
                      "/api/compare", "/api/atlas"}


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
