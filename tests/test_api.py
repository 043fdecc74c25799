"""The JSON API through Flask's test client, against real models exported in the test run."""

import base64
import gzip
import json
import re
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from conftest import REPO, TROPHY, CountedSlot
from twelve_heads.server import create_app
from twelve_heads.server.config import SETTINGS
from twelve_heads.server.engine import Engine
from twelve_heads.modeldir import BOS_TOKEN
from twelve_heads.server.heads import LABEL_MEANINGS, LABELS, SCORE_MEANINGS, SCORE_NAMES
from twelve_heads.server.scores import EMPTY_ROW_MASS, FIRST_SCORED_ROW


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, tiny_model, wide_model):
    models = tmp_path_factory.mktemp("served")
    shutil.copytree(tiny_model, models / "tiny")
    shutil.copytree(wide_model, models / "wide")
    return models


@pytest.fixture(scope="module")
def app(models_dir):
    return create_app({"MODELS_DIR": str(models_dir), "DEFAULT_MODEL": "wide"})  # conftest's `client` uses it


def unpack(packed: dict) -> np.ndarray:
    layers, heads, n, _ = packed["shape"]
    values = np.frombuffer(base64.b64decode(packed["data"]), dtype="<u2").reshape(layers, heads, -1)
    attention = np.zeros((layers, heads, n, n))
    rows, keys = np.tril_indices(n)
    attention[..., rows, keys] = values / packed["scale"]
    return attention


def test_models_lists_each_exported_model_with_its_shape(client):
    response = client.get("/api/models")
    assert response.status_code == 200
    models = {m["name"]: m for m in response.json["models"]}
    assert set(models) == {"tiny", "wide"}
    assert (models["wide"]["n_layer"], models["wide"]["n_head"], models["wide"]["synthetic"]) == (12, 12, False)
    assert models["tiny"]["error"] is None
    assert response.json["default"] == "wide"


def test_models_sends_the_glossary_the_page_shows(client):
    body = client.get("/api/models").json
    assert [label["name"] for label in body["labels"]] == list(LABELS)
    assert {label["name"]: label["meaning"] for label in body["labels"]} == LABEL_MEANINGS
    assert body["scores"] == [{"name": name, "meaning": SCORE_MEANINGS[name]} for name in SCORE_NAMES]
    assert all(entry["meaning"].strip() for entry in body["labels"] + body["scores"])
    assert body["bos_token"] == BOS_TOKEN == "<|endoftext|>"
    assert body["empty_row_mass"] == EMPTY_ROW_MASS == 1e-6
    assert body["scored_from_tokens"] == FIRST_SCORED_ROW + 1


def test_scored_from_tokens_is_the_shortest_sentence_whose_heads_are_scored(client):
    """The page tags every head "too short" below the glossary's scored_from_tokens: the server agrees."""
    needed = client.get("/api/models").json["scored_from_tokens"]
    ends = [end for _, end in client.post("/api/attention", json={"text": TROPHY}).json["offsets"]]

    def scored(n_tokens):  # for each head of the first n_tokens of TROPHY: whether any of its rows was scored
        body = client.post("/api/attention", json={"text": TROPHY[:ends[n_tokens - 1]]}).json
        assert body["n_tokens"] == n_tokens
        return [any(head["scores"].values()) for layer in body["heads"] for head in layer]

    assert not any(scored(needed - 1))
    assert all(scored(needed))


def test_every_score_a_head_gets_has_a_meaning(client):
    head = client.post("/api/attention", json={"text": TROPHY}).json["heads"][0][0]
    assert list(head["scores"]) == list(SCORE_NAMES) == list(SCORE_MEANINGS)


def test_readme_lists_every_label_with_its_meaning():
    """The README's "What the labels mean" says what LABEL_MEANINGS says, in the same order."""
    section = (REPO / "README.md").read_text().split("## What the labels mean")[1].split("\n## ")[0]
    listed = re.findall(r"^- \*\*([a-z-]+)\*\* — (.*?)(?=^- |^$)", section, flags=re.M | re.S)
    assert [(name, " ".join(meaning.split())) for name, meaning in listed] == list(LABEL_MEANINGS.items())


def test_attention_summary_labels_every_head(client, models_dir):
    response = client.post("/api/attention", json={"text": TROPHY})
    assert response.status_code == 200
    body = response.json
    assert body["model"] == "wide" and body["n_layer"] == 12 and body["n_head"] == 12
    assert body["tokens"][:2] == ["The", " trophy"] and body["n_tokens"] == 14
    assert len(body["heads"]) == 12 and all(len(layer) == 12 for layer in body["heads"])
    assert all(head["label"] in LABELS and 0 <= head["confidence"] <= 1 for layer in body["heads"] for head in layer)
    assert all(sum(layer["counts"].values()) == 12 for layer in body["layers"])
    assert "attention" not in body and "attention_packed" not in body


def test_json_format_returns_the_engines_attention(client, models_dir):
    body = client.post("/api/attention", json={"text": TROPHY, "model": "tiny", "format": "json",
                                               "prepend_bos": True}).json
    expected = Engine.load(models_dir / "tiny").attend(TROPHY, prepend_bos=True).attention
    np.testing.assert_allclose(np.array(body["attention"]), expected, atol=1e-7)
    assert body["tokens"][0] == "<|endoftext|>" and body["attention_layers"] == [0, 1]


def test_packed_format_decodes_to_the_attention_within_quantisation(client, models_dir):
    body = client.post("/api/attention", json={"text": TROPHY, "format": "packed"}).json
    expected = Engine.load(models_dir / "wide").attend(TROPHY).attention
    np.testing.assert_allclose(unpack(body["attention_packed"]), expected, atol=0.5 / 65535 + 1e-7)


def test_one_layer_can_be_asked_for(client, models_dir):
    body = client.post("/api/attention", json={"text": TROPHY, "format": "packed", "layer": 11}).json
    expected = Engine.load(models_dir / "wide").attend(TROPHY).attention[11:12]
    assert body["attention_layers"] == [11]
    np.testing.assert_allclose(unpack(body["attention_packed"]), expected, atol=0.5 / 65535 + 1e-7)


def test_long_sentences_are_sent_one_layer_at_a_time(app, client):
    text = "the" + " the" * (app.config["MAX_PACKED_ALL_LAYERS_TOKENS"])
    body = client.post("/api/attention", json={"text": text, "format": "packed"}).json
    assert body["attention_per_layer"] is True and "attention_packed" not in body
    assert len(body["heads"]) == 12


def test_get_with_query_parameters_equals_post(client):
    posted = client.post("/api/attention", json={"text": "Hello world again", "prepend_bos": True,
                                                 "sink_aware": True}).json
    got = client.get("/api/attention?text=Hello%20world%20again&prepend_bos=true&sink_aware=1").json
    assert got == posted and got["sink_aware"] is True


def test_sink_aware_changes_the_scores_not_the_tokens(client):
    plain = client.post("/api/attention", json={"text": TROPHY}).json
    aware = client.post("/api/attention", json={"text": TROPHY, "sink_aware": True}).json
    assert plain["tokens"] == aware["tokens"]
    assert [h["scores"] for h in plain["heads"][5]] != [h["scores"] for h in aware["heads"][5]]


def test_repeated_sentences_come_from_the_cache(app, client, monkeypatch):
    engine = app.extensions["heads.models"].get("wide")
    runs, run = [], engine.run
    monkeypatch.setattr(engine, "run", lambda ids, *rest: runs.append(ids) or run(ids, *rest))
    first = client.post("/api/attention", json={"text": "a sentence for the cache"})
    second = client.post("/api/attention", json={"text": "a sentence for the cache"})
    assert len(runs) == 1  # the repeat ran nothing
    assert first.data == second.data


def test_cache_is_bounded_in_bytes(models_dir):
    app = create_app({"MODELS_DIR": str(models_dir), "DEFAULT_MODEL": "tiny", "CACHE_BYTES": 20_000})
    client = app.test_client()
    for n in range(30):
        assert client.post("/api/attention", json={"text": f"sentence number {n}", "format": "json"}).status_code == 200
    cache = app.extensions["heads.cache"]
    # Each entry is (value, its bytes).
    assert 0 < sum(size for _, size in cache.entries.values()) == cache.size <= 20_000 and len(cache.entries) < 30


BAD_REQUESTS = [
    ({"text": ""}, 400, "the text is empty; type a sentence to look at"),
    ({"text": "  \n"}, 400, "the text is empty; type a sentence to look at"),
    ({}, 400, '"text" is required: the sentence to look at'),
    ({"text": 3}, 400, '"text" must be a string, not a number'),
    ({"text": ["a"]}, 400, '"text" must be a string, not a list'),
    ({"text": None}, 400, '"text" is required: the sentence to look at'),
    ({"text": "a", "prepend_bos": "yes"}, 400, '"prepend_bos" must be true or false, not a string'),
    ({"text": "a", "sink_aware": 1}, 400, '"sink_aware" must be true or false, not a number'),
    ({"text": "a", "format": "xml"}, 400, '"format" must be one of summary, json, packed'),
    ({"text": "a", "layer": "3"}, 400, '"layer" must be a whole number, not a string'),
    ({"text": "a", "layer": 12}, 400, "layer must be between 0 and 11 for model 'wide', not 12"),
    ({"text": "a", "colour": "red"}, 400, "unknown field 'colour'; the fields are: text, model, prepend_bos, "
                                          "sink_aware, format, layer, ablate, predict"),
    ({"text": "a", "model": "nope"}, 404, "no model named 'nope'; available: tiny, wide"),
    ({"text": "a", "model": "../tiny"}, 404, "no model named '../tiny'; available: tiny, wide"),
    ({"text": "a", "model": "/etc"}, 404, "no model named '/etc'; available: tiny, wide"),
    ({"text": "a", "model": "tiny\x00"}, 404, "no model named '(invalid name)'; available: tiny, wide"),
    ({"text": "a", "model": 7}, 400, '"model" must be a string (a name from /api/models), not a number'),
    ({"text": "word " * 299 + "word"}, 400, "the sentence has 300 tokens; this model reads at most 256. Shorten it"),
    ({"text": "x" * 20_001}, 400, "the text has 20,001 characters; this model reads at most 256 tokens (about 1,200 "
                                  "characters of English). Shorten it"),
    ({"text": "bad \ud800"}, 400, "the text has an invalid character at position 4 (a lone surrogate); remove it"),
]


@pytest.mark.parametrize("payload, status, message", BAD_REQUESTS)
def test_bad_requests_get_a_clear_error(client, payload, status, message):
    response = client.post("/api/attention", data=json.dumps(payload), content_type="application/json")
    assert response.status_code == status
    assert response.json == {"error": message}


@pytest.mark.parametrize("body, message", [
    (b"{not json", 'the request body must be JSON (UTF-8) like {"text": "Hello world"}'),
    (b'{"text": "\xff\xfe"}', 'the request body must be JSON (UTF-8) like {"text": "Hello world"}'),
    (b"[1, 2]", 'the request body must be a JSON object like {"text": "Hello world"}, not a list'),
    (b'"text"', 'the request body must be a JSON object like {"text": "Hello world"}, not a string'),
])
def test_malformed_bodies_get_a_clear_error(client, body, message):
    response = client.post("/api/attention", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"].startswith(message)


def test_tokens_counts_a_text_as_the_attention_endpoint_tokenizes_it(client):
    for options in ({}, {"prepend_bos": True}, {"model": "tiny"}):
        attention = client.post("/api/attention", json={"text": TROPHY, **options}).json
        response = client.post("/api/tokens", json={"text": TROPHY, **options})
        assert response.status_code == 200
        expected_limit = 40 if options.get("model") == "tiny" else 256
        assert response.json == {"n_tokens": attention["n_tokens"], "max_tokens": expected_limit}


def test_tokens_counts_a_text_over_the_limit_instead_of_refusing_it(client):
    text = "word " * 299 + "word"
    assert client.post("/api/attention", json={"text": text}).status_code == 400
    response = client.post("/api/tokens", json={"text": text})
    assert response.status_code == 200 and response.json == {"n_tokens": 300, "max_tokens": 256}


BAD_TOKEN_REQUESTS = [
    ({}, 400, '"text" is required: the sentence to look at'),
    ({"text": None}, 400, '"text" is required: the sentence to look at'),
    ({"text": ""}, 400, "the text is empty; type a sentence to look at"),
    ({"text": 3}, 400, '"text" must be a string, not a number'),
    ({"text": {"a": 1}}, 400, '"text" must be a string, not an object'),
    ({"text": "a", "prepend_bos": "yes"}, 400, '"prepend_bos" must be true or false, not a string'),
    ({"text": "a", "prepend_bos": None}, 400, '"prepend_bos" must be true or false, not null'),
    ({"text": "a", "model": 7}, 400, '"model" must be a string (a name from /api/models), not a number'),
    ({"text": "a", "model": "../tiny"}, 404, "no model named '../tiny'; available: tiny, wide"),
    ({"text": "a", "model": "tiny\x00"}, 404, "no model named '(invalid name)'; available: tiny, wide"),
    ({"text": "a", "format": "packed"}, 400, "unknown field 'format'; the fields are: text, model, prepend_bos"),
    ({"text": "a", "sink_aware": True}, 400, "unknown field 'sink_aware'; the fields are: text, model, prepend_bos"),
    ({"text": "x" * 20_001}, 400, "the text has 20,001 characters; this model reads at most 256 tokens (about 1,200 "
                                  "characters of English). Shorten it"),
    ({"text": "x" * 20_001, "model": "tiny"}, 400, "the text has 20,001 characters; this model reads at most 40 "
                                                   "tokens (about 200 characters of English). Shorten it"),
    ({"text": "bad \ud800"}, 400, "the text has an invalid character at position 4 (a lone surrogate); remove it"),
]


@pytest.mark.parametrize("payload, status, message", BAD_TOKEN_REQUESTS)
def test_tokens_bad_requests_get_a_clear_error(client, payload, status, message):
    response = client.post("/api/tokens", data=json.dumps(payload), content_type="application/json")
    assert response.status_code == status
    assert response.json == {"error": message}


@pytest.mark.parametrize("body, message", [
    (b"{not json", 'the request body must be JSON (UTF-8) like {"text": "Hello world"}, sent with Content-Type: '
                   "application/json"),
    (b"[1, 2]", 'the request body must be a JSON object like {"text": "Hello world"}, not a list'),
])
def test_tokens_malformed_bodies_get_a_clear_error(client, body, message):
    response = client.post("/api/tokens", data=body, content_type="application/json")
    assert response.status_code == 400 and response.json == {"error": message}


def test_tokens_is_post_only(client):
    response = client.get("/api/tokens?text=hi")
    assert response.status_code == 405
    assert response.json == {"error": "GET is not allowed on /api/tokens; use POST"}


def test_huge_body_is_refused_before_reading(client):
    response = client.post("/api/attention", data=b"x" * (3 * 1024 * 1024), content_type="application/json")
    assert response.status_code == 413
    assert response.json == {"error": "the request body is over 262,144 bytes; send a shorter text"}


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_wrong_methods_get_405_as_json(client, method):
    response = getattr(client, method)("/api/attention")
    assert response.status_code == 405
    assert response.json == {"error": f"{method.upper()} is not allowed on /api/attention; use GET or POST"}


def test_unknown_paths_get_404_as_json(client):
    response = client.get("/api/nothing")
    assert response.status_code == 404
    assert "the API is /api/models, /api/attention, /api/tokens, /api/compare and /api/atlas" in response.json["error"]


def test_responses_carry_security_headers(client):
    for path in ("/", "/api/models", "/healthz"):
        headers = client.get(path).headers
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "Access-Control-Allow-Origin" not in headers


def test_a_broken_model_is_reported_and_the_others_still_serve(tmp_path, tiny_model):
    shutil.copytree(tiny_model, tmp_path / "good")
    shutil.copytree(tiny_model, tmp_path / "broken")
    (tmp_path / "broken" / "model.onnx").write_bytes(b"not onnx")
    client = create_app({"MODELS_DIR": str(tmp_path), "DEFAULT_MODEL": "broken"}).test_client()
    models = {m["name"]: m for m in client.get("/api/models").json["models"]}
    assert "does not match the checksum in its manifest" in models["broken"]["error"]
    assert models["good"]["error"] is None
    assert client.post("/api/attention", json={"text": "still serving"}).json["model"] == "good"
    response = client.post("/api/attention", json={"text": "x", "model": "broken"})
    assert response.status_code == 503 and "model 'broken' cannot be used" in response.json["error"]


def test_a_broken_model_is_not_loaded_again_until_its_directory_changes(tmp_path, tiny_model, monkeypatch):
    """Each load hashes the whole graph (0.3 s at GPT-2 size): a client naming a broken model over and over must
    not make the server do that over and over. A repaired model is served without a restart."""
    shutil.copytree(tiny_model, tmp_path / "good")
    shutil.copytree(tiny_model, tmp_path / "broken")
    (tmp_path / "broken" / "model.onnx").write_bytes(b"not onnx")
    loads = []
    real_load = Engine.load.__func__
    monkeypatch.setattr(Engine, "load", classmethod(lambda cls, path, **kw: loads.append(path.name) or
                                                    real_load(cls, path, **kw)))
    client = create_app({"MODELS_DIR": str(tmp_path), "DEFAULT_MODEL": "good"}).test_client()
    assert sorted(loads) == ["broken", "good"]  # at start-up
    for _ in range(3):
        response = client.post("/api/attention", json={"text": "x", "model": "broken"})
        assert response.status_code == 503 and "does not match the checksum" in response.json["error"]
    assert sorted(loads) == ["broken", "good"]  # the failure was remembered, not re-derived
    shutil.copyfile(tiny_model / "model.onnx", tmp_path / "broken" / "model.onnx")  # repaired in place
    response = client.post("/api/attention", json={"text": "x", "model": "broken"})
    assert response.status_code == 200 and response.json["model"] == "broken"
    assert loads.count("broken") == 2


def test_no_models_gives_a_clear_error(tmp_path):
    client = create_app({"MODELS_DIR": str(tmp_path / "empty")}).test_client()
    body = client.get("/api/models").json
    assert (body["models"], body["default"]) == ([], None)
    response = client.post("/api/attention", json={"text": "hello"})
    assert response.status_code == 503
    assert "no model is ready" in response.json["error"] and "twelve-heads export --demo" in response.json["error"]


def test_healthz(client):
    assert client.get("/healthz").json["ok"] is True


def test_readme_documents_every_configuration_key():
    readme = (REPO / "README.md").read_text()
    for setting in SETTINGS:
        assert f"`{setting.key}`" in readme and f"`{setting.env}`" in readme, setting.key


def test_responses_are_gzipped_for_clients_that_accept_it(client):
    plain = client.post("/api/attention", json={"text": TROPHY, "format": "packed"})
    zipped = client.post("/api/attention", json={"text": TROPHY, "format": "packed"},
                         headers={"Accept-Encoding": "gzip, deflate"})
    assert "Content-Encoding" not in plain.headers and zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert len(zipped.data) < len(plain.data) / 2
    assert json.loads(gzip.decompress(zipped.data)) == plain.json


def test_long_sentences_are_computed_one_at_a_time(models_dir):
    """At 1,024 tokens one request holds ~1 GB; concurrent long ones must queue, short ones must not."""
    app = create_app({"MODELS_DIR": str(models_dir), "DEFAULT_MODEL": "tiny", "CACHE_BYTES": 0,
                      "LONG_SENTENCE_TOKENS": 10, "LONG_SENTENCE_CONCURRENCY": 1})
    slot = app.extensions["heads.long_sentences"] = CountedSlot(app.extensions["heads.long_sentences"])
    engine = app.extensions["heads.models"].get("tiny")
    running, peak, lock, real_run = [0], {"long": 0, "short": 0}, threading.Lock(), engine.run
    shorts_meet = threading.Barrier(2, timeout=60)  # two short runs at the same time, or it breaks

    def observed_run(ids, *args):
        kind = "long" if engine.is_long(len(ids)) else "short"
        with lock:
            running[0] += 1
            peak[kind] = max(peak[kind], running[0])
        try:
            if kind == "long":  # run only once all six have reached the slot: the others are queued, or inside
                assert slot.wait_until_reached(6)
            else:
                shorts_meet.wait()
            return real_run(ids, *args)
        finally:
            with lock:
                running[0] -= 1

    engine.run = observed_run

    def post(text):
        return app.test_client().post("/api/attention", json={"text": text}).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        long_codes = list(pool.map(post, [f"word {n} " * 8 for n in range(6)]))
    with ThreadPoolExecutor(max_workers=6) as pool:
        short_codes = list(pool.map(post, [f"short {n}" for n in range(6)]))
    assert long_codes == short_codes == [200] * 6
    assert peak["long"] == 1 and peak["short"] >= 2
