"""GET /api/atlas through Flask's test client, against models exported in the test run (with the atlas the export
wrote), copies of them without an atlas or with a broken one, and copies that say they are GPT-2 small."""

import gzip
import json
import shutil

import pytest

from conftest import REPO, TROPHY
from twelve_heads.modeldir import ATLAS, MANIFEST, file_sha256
from twelve_heads.server import create_app
from twelve_heads.server.atlas import LONG_RANGE_MIN_TOKENS, RULES, WHY_NOT_HERE, compute_atlas
from twelve_heads.server.atlas_api import ATLAS_FIELDS
from twelve_heads.server.atlas_file import read_atlas, write_atlas
from twelve_heads.server.atlas_view import LITERATURE_PATH
from twelve_heads.server.engine import Engine
from twelve_heads.server.heads import LABELS

BROKEN = ("damaged", "unlisted", "foreign")


def edit_manifest(directory, change) -> None:
    manifest = json.loads((directory / MANIFEST).read_text())
    change(manifest)
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def without_atlas(directory) -> None:
    (directory / ATLAS).unlink()
    edit_manifest(directory, lambda manifest: manifest["files"].pop(ATLAS))


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, tiny_model, wide_model):
    models = tmp_path_factory.mktemp("served")
    shutil.copytree(wide_model, models / "wide")
    for source in ("gpt2", "openai-community/gpt2"):  # GPT-2 small's own weights, as far as the manifest says
        name = source.replace("/", "-")
        shutil.copytree(wide_model, models / name)
        edit_manifest(models / name, lambda manifest: manifest.update(source=source))
    for name in ("bare", *BROKEN):
        shutil.copytree(tiny_model, models / name)
    without_atlas(models / "bare")
    with open(models / "damaged" / ATLAS, "ab") as atlas:
        atlas.write(b" ")
    edit_manifest(models / "unlisted", lambda manifest: manifest["files"].pop(ATLAS))
    foreign = read_atlas(models / "foreign")
    write_atlas(models / "foreign", {**foreign, "graph_sha256": "0" * 64})
    return models


@pytest.fixture(scope="module")
def app(models_dir):
    return create_app({"MODELS_DIR": str(models_dir), "DEFAULT_MODEL": "wide"})


def available(models_dir) -> str:
    return ", ".join(sorted(path.name for path in models_dir.iterdir()))


def test_the_atlas_holds_every_head_of_the_default_model(client, models_dir):
    response = client.get("/api/atlas")
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.json
    assert (body["model"], body["prepend_bos"], body["sink_aware"], body["literature"]) == ("wide", False, False, None)
    assert body["labels"] == list(LABELS) and body["corpus"]["items"] == 229
    assert len(body["heads"]) == 12 and all(len(layer) == 12 for layer in body["heads"])
    for head in (head for layer in body["heads"] for head in layer):
        assert head["consensus"] in LABELS and 0 <= head["consensus_share"] <= 1
        assert 0 <= head["induction_score"] <= 1 and head["usually"].count("%") == 1
    assert len(body["layers"]) == 12
    assert all(0 <= layer["broadcasters"]["min"] <= layer["broadcasters"]["max"] <= 12 for layer in body["layers"])


@pytest.mark.parametrize("query, prepend_bos, sink_aware", [
    ("", False, False), ("&prepend_bos=1", True, False), ("&sink_aware=true", False, True),
    ("&prepend_bos=yes&sink_aware=on", True, True), ("&prepend_bos=0&sink_aware=false", False, False)])
def test_each_view_is_the_one_in_atlas_json(client, models_dir, query, prepend_bos, sink_aware):
    body = client.get(f"/api/atlas?model=wide{query}").json
    [view] = [view for view in read_atlas(models_dir / "wide")["views"]
              if (view["prepend_bos"], view["sink_aware"]) == (prepend_bos, sink_aware)]
    assert (body["prepend_bos"], body["sink_aware"]) == (prepend_bos, sink_aware)
    assert [[{k: v for k, v in head.items() if k != "usually"} for head in layer] for layer in body["heads"]] == \
        view["heads"]
    assert (body["layers"], body["can_show"], body["summary"]) == (view["layers"], view["can_show"], view["summary"])


def test_the_atlas_comes_gzipped_to_a_client_that_accepts_it(client):
    response = client.get("/api/atlas", headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in response.headers["Vary"]
    assert json.loads(gzip.decompress(response.data)) == client.get("/api/atlas").json


def test_a_model_without_an_atlas_says_how_to_make_one_and_still_serves(client, models_dir):
    response = client.get("/api/atlas?model=bare")
    assert response.status_code == 404
    assert response.json == {"error": "model 'bare' has no atlas yet (what each head usually does over the reference "
                                      f"corpus); make one with `twelve-heads atlas {models_dir / 'bare'}`"}
    assert client.post("/api/attention", json={"text": TROPHY, "model": "bare"}).status_code == 200


@pytest.mark.parametrize("name, problem", [
    ("damaged", "{dir}/atlas.json does not match the checksum in its manifest (damaged or replaced)"),
    ("unlisted", "{dir}/atlas.json is not among the checksums of {dir}/manifest.json (copied in by hand?)"),
    ("foreign", "{dir}/atlas.json was computed for another model.onnx (its graph_sha256 is not the manifest's)"),
])
def test_an_atlas_that_cannot_be_trusted_is_refused_and_the_model_still_serves(client, models_dir, name, problem):
    directory = models_dir / name
    response = client.get(f"/api/atlas?model={name}")
    assert response.status_code == 503
    assert response.json == {"error": problem.format(dir=directory)
                             + f"; recompute it with `twelve-heads atlas {directory}`"}
    assert client.post("/api/attention", json={"text": TROPHY, "model": name}).status_code == 200


def test_an_atlas_made_while_the_server_runs_is_served_without_a_restart(tmp_path, tiny_model):
    shutil.copytree(tiny_model, tmp_path / "tiny")
    without_atlas(tmp_path / "tiny")
    client = create_app({"MODELS_DIR": str(tmp_path), "DEFAULT_MODEL": "tiny"}).test_client()
    assert client.get("/api/atlas").status_code == 404
    write_atlas(tmp_path / "tiny", compute_atlas(Engine.load(tmp_path / "tiny")))
    response = client.get("/api/atlas")
    assert response.status_code == 200 and len(response.json["heads"]) == 2
    with open(tmp_path / "tiny" / ATLAS, "ab") as atlas:  # and one damaged afterwards is refused again
        atlas.write(b"\n")
    assert client.get("/api/atlas").status_code == 503


BAD_QUERIES = [
    ("model=nope", 404, "no model named 'nope'; available: {available}"),
    ("model=../wide", 404, "no model named '../wide'; available: {available}"),
    ("model=%2e%2e%2fwide", 404, "no model named '../wide'; available: {available}"),
    ("model=wide%2f..%2f..%2fwide", 404, "no model named 'wide/../../wide'; available: {available}"),
    ("model=/etc/passwd", 404, "no model named '/etc/passwd'; available: {available}"),
    ("model=", 404, "no model named ''; available: {available}"),
    ("model=%00", 404, "no model named '(invalid name)'; available: {available}"),
    ("model=" + "a" * 101, 404, "no model named '(invalid name)'; available: {available}"),
    ("prepend_bos=maybe", 400, "\"prepend_bos\" must be true or false, not 'maybe'"),
    ("sink_aware=2", 400, "\"sink_aware\" must be true or false, not '2'"),
    ("sink_aware=" + "x" * 100, 400, f"\"sink_aware\" must be true or false, not '{'x' * 40}'"),
    ("text=hello", 400, "unknown field 'text'; the fields are: model, prepend_bos, sink_aware"),
    ("layer=1", 400, "unknown field 'layer'; the fields are: model, prepend_bos, sink_aware"),
    ("k" * 60 + "=1", 400, f"unknown field '{'k' * 40}…'; the fields are: model, prepend_bos, sink_aware"),
    ("model=%ff", 400, "the query string is not valid UTF-8; percent-encode the text as UTF-8"),
    ("%c3%28=1", 400, "the query string is not valid UTF-8; percent-encode the text as UTF-8"),
]


@pytest.mark.parametrize("query, status, message", BAD_QUERIES, ids=[query[:30] for query, _, _ in BAD_QUERIES])
def test_bad_input_gets_a_clear_error(client, models_dir, query, status, message):
    response = client.get(f"/api/atlas?{query}")
    assert response.status_code == status
    assert response.json == {"error": message.format(available=available(models_dir))}


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_the_atlas_is_only_read(client, method):
    response = getattr(client, method)("/api/atlas")
    assert response.status_code == 405
    assert response.json == {"error": f"{method.upper()} is not allowed on /api/atlas; use GET"}


@pytest.mark.parametrize("name", ["gpt2", "openai-community-gpt2"])
def test_gpt2_small_gets_the_literature_with_the_atlas_verdict_on_each_claim(client, name):
    body = client.get(f"/api/atlas?model={name}&prepend_bos=1").json
    literature = json.loads(LITERATURE_PATH.read_text())
    served = body["literature"]
    assert served["sources"] == literature["sources"]
    assert sum(served["verdicts"].values()) == len(literature["heads"])
    for claim in literature["heads"]:
        [entry] = [entry for entry in served["heads"][claim["layer"]][claim["head"]]
                   if (entry["role"], entry["source"]) == (claim["role"], claim["source"])]
        head = body["heads"][claim["layer"]][claim["head"]]
        assert entry["note"] == claim["note"] and entry["url"] == literature["sources"][claim["source"]]["url"]
        assert entry["checked"] == literature["sources"][claim["source"]]["checked"]
        if claim["role"] not in LABELS:
            assert entry["atlas"] == "not-checked" and "attention patterns alone cannot show it" in entry["comparison"]
        else:
            verdict = "agrees" if head["consensus"] == claim["role"] else "disagrees"
            assert entry["atlas"] == verdict
            assert entry["comparison"].startswith(f"the atlas {verdict}: {head['usually']}")
    ioi = served["heads"][4][11]
    assert {entry["citation"] for entry in ioi} == {"Wang et al. 2022", "TransformerLens contributors 2023"}


def test_only_gpt2_small_gets_the_literature(client):
    assert client.get("/api/atlas?model=wide").json["literature"] is None


def test_the_served_atlas_is_checked_against_its_file_once_per_change(client, models_dir):
    """A second request is answered from what the first read, not by re-hashing the file."""
    store = client.application.extensions["heads.atlases"]
    client.get("/api/atlas?model=wide")
    first = store.entries[models_dir / "wide"]
    client.get("/api/atlas?model=wide")
    assert store.entries[models_dir / "wide"] is first
    assert file_sha256(models_dir / "wide" / ATLAS) == json.loads(
        (models_dir / "wide" / MANIFEST).read_text())["files"][ATLAS]


@pytest.mark.parametrize("query", ["", "&prepend_bos=1", "&sink_aware=1", "&prepend_bos=1&sink_aware=1"])
def test_every_view_says_why_a_role_cannot_show_on_a_sentence_without_what_it_needs(client, models_dir, query):
    """why_not_here, beside rules: the server's reasons (server/atlas.py, their one home), one for each role that
    can_show judges, so the page keeps no copy. They speak of the page's sentence under the server's rule today,
    so they come from the server, not from atlas.json (an atlas written before them gets them too)."""
    body = client.get(f"/api/atlas?model=wide{query}").json
    assert "why_not_here" not in read_atlas(models_dir / "wide")
    assert body["why_not_here"] == WHY_NOT_HERE
    assert set(body["why_not_here"]) == set(client.post("/api/attention", json={"text": TROPHY}).json["can_show"])
    assert body["rules"] == RULES


def test_readme_documents_every_atlas_field():
    section = (REPO / "README.md").read_text().split("### `GET /api/atlas")[1].split("\n## ")[0]
    rows = [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| `")]
    assert rows == [f"`{name}`" for name in ATLAS_FIELDS.names]


@pytest.mark.parametrize("text, expected", [
    ("Alice saw the cat.", {"long-range": False, "duplicate-token": False, "induction": False}),
    (TROPHY, {"long-range": False, "duplicate-token": False, "induction": False}),
    ("the cat sat, the cat sat, the cat sat on the mat by the door", {"long-range": True, "duplicate-token": True,
                                                                      "induction": True}),
])
def test_each_sentence_says_which_usual_jobs_could_show_on_it(client, text, expected):
    """The rule the atlas counts by, for the sentence on the page: where a head's usual job cannot show."""
    body = client.post("/api/attention", json={"text": text}).json
    assert body["can_show"] == expected
    assert body["can_show"]["long-range"] == (body["n_tokens"] >= LONG_RANGE_MIN_TOKENS)
