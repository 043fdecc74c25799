"""Property: whatever arrives at /api/attention — any unicode, any JSON shape, any bytes, by POST or GET — the
answer is never a 5xx; a 4xx is always JSON {"error": "<a message>"}; a 200 is strict JSON with every head."""

import json
import shutil
from urllib.parse import quote_from_bytes, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twelve_heads.server import create_app
from twelve_heads.server.api import ATTENTION_FIELDS

# Derandomized, so every run tries the same examples (a failure reproduces; the suite is not flaky), and
# a few seconds per test. The odd cases that matter are also pinned in tests/test_hardening.py with their messages.
FUZZ = settings(max_examples=400, deadline=None, derandomize=True, database=None)


@pytest.fixture(scope="module")
def client(tmp_path_factory, tiny_model):
    models = tmp_path_factory.mktemp("fuzzed")
    shutil.copytree(tiny_model, models / "tiny")
    app = create_app({"MODELS_DIR": str(models), "DEFAULT_MODEL": "tiny", "CACHE_BYTES": 1 << 20})
    return app.test_client()


def check(response) -> None:
    assert response.status_code < 500, (response.status_code, response.data[:300])
    assert response.mimetype == "application/json", response.mimetype
    body = json.loads(response.data, parse_constant=lambda constant: pytest.fail(f"{constant} in the response"))
    if response.status_code >= 400:
        assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"], body
        assert "Traceback" not in body["error"]
    else:
        assert response.status_code == 200 and len(body["heads"]) == body["n_layer"]


# Any code point, surrogates included: json.dumps writes those as "\ud800" escapes, as a careless client might.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | any_text
# Shallow (max_leaves): nesting deep enough to overflow the JSON parser is its own test in test_hardening.py.
json_values = st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(any_text, children, max_size=4), max_leaves=12)
valid = {
    "model": st.just("tiny"),
    "prepend_bos": st.booleans(),
    "sink_aware": st.booleans(),
    "format": st.sampled_from(["summary", "json", "packed"]),
    "layer": st.integers(0, 1),
}
nearly_valid = {
    "model": st.sampled_from(["", "..", "../tiny", "/etc/passwd", "tiny\x00", "TINY", "tiny ", "tiny/"]) | any_text,
    "format": st.sampled_from(["", "JSON", "summary "]),
    "layer": st.integers(),
}
shapes = st.one_of(
    st.fixed_dictionaries({"text": any_text}, optional=valid),  # mostly computed: the whole path runs
    st.fixed_dictionaries({"text": any_text}, optional={field: st.one_of(strategy, nearly_valid.get(field, strategy),
                                                                         json_values)
                                                        for field, strategy in valid.items()}),
    st.fixed_dictionaries({}, optional={field: json_values for field in ATTENTION_FIELDS.names}),
    st.builds(lambda known, extra: {**extra, **known}, st.fixed_dictionaries({"text": any_text}, optional=valid),
              st.dictionaries(any_text, json_values, min_size=1, max_size=2)),
    json_values,
)


def splice(body: bytes, junk: bytes, at: int) -> bytes:
    at %= len(body) + 1
    return body[:at] + junk + body[at:]


@FUZZ
@given(payload=shapes)
def test_any_json_posted_never_gets_a_5xx(client, payload):
    body = json.dumps(payload)  # ensure_ascii: lone surrogates become \udXXX escapes
    check(client.post("/api/attention", data=body, content_type="application/json"))


@FUZZ
@given(text=any_text)
def test_any_text_never_gets_a_5xx(client, text):
    check(client.post("/api/attention", data=json.dumps({"text": text}), content_type="application/json"))


@FUZZ
@given(body=st.binary(max_size=200) | st.builds(splice, shapes.map(lambda p: json.dumps(p).encode()),
                                                st.binary(min_size=1, max_size=8), st.integers(0, 200)),
       content_type=st.sampled_from(["application/json", "application/json; charset=latin-1", "text/plain", ""]))
def test_any_bytes_posted_never_get_a_5xx(client, body, content_type):
    check(client.post("/api/attention", data=body, content_type=content_type))


utf8_text = st.text(max_size=40).map(str.encode)
query_values = st.one_of(utf8_text, any_text.map(lambda text: text.encode("utf-8", "surrogatepass")),
                         st.binary(max_size=40))


@FUZZ
@given(params=st.fixed_dictionaries({"text": utf8_text},  # mostly computed: the whole path runs
                                    optional={"prepend_bos": st.sampled_from([b"1", b"true", b"no", b""]),
                                              "format": st.sampled_from([b"summary", b"json", b"packed"])})
       | st.dictionaries(st.sampled_from(ATTENTION_FIELDS.names) | any_text.filter(bool), query_values, max_size=5),
       raw=st.booleans())
def test_any_query_string_never_gets_a_5xx(client, params, raw):
    """Parameters percent-encoded from any bytes (invalid UTF-8 and encoded surrogates too), or glued raw."""
    pairs = [(key.encode("utf-8", "surrogatepass"), value) for key, value in params.items()]
    if raw:
        query = b"&".join(key + b"=" + value for key, value in pairs)
        query = quote_from_bytes(query, safe="&=+%")  # the test client needs an ASCII request line
    else:
        query = urlencode(pairs)
    check(client.get(f"/api/attention?{query}"))
