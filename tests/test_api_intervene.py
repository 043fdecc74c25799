"""`ablate` and `predict` on /api/attention: validated before any work, and equal to the engine's passes."""

import json
import shutil

import numpy as np
import onnx
import pytest

from conftest import TROPHY
from test_api import unpack
from twelve_heads.modeldir import LAST_LOGPROB, PREDICT_GRAPH, record_file
from twelve_heads.server import create_app
from twelve_heads.server.config import WEIGHT_BYTES_PER_CLEAN_PASS_BYTE
from twelve_heads.server.engine import Engine
from twelve_heads.server.intervene import intervene

HEADS_OF_TINY = 2 * 4


def post(client, **fields):
    return client.post("/api/attention", data=json.dumps(fields), content_type="application/json")


def test_ablate_describes_the_run_without_those_heads(client, models_dir):
    body = post(client, text=TROPHY, model="wide", ablate=[[3, 2], [1, 0]], predict=True, format="packed").json
    engine = Engine.load(models_dir / "wide")
    expected = intervene(engine, engine.tokenize(TROPHY)[0], [(1, 0), (3, 2)], predict=True)
    assert body["ablate"] == [[1, 0], [3, 2]]  # sorted
    np.testing.assert_allclose(unpack(body["attention_packed"]), expected.attention, atol=0.5 / 65535 + 1e-7)
    change = np.array([[head["change"] for head in layer] for layer in body["heads"]])
    np.testing.assert_allclose(change, expected.change, atol=1e-6)
    assert not change[:2].any() and (change[2:] > 0).all()  # layer 1 is the first with a head out
    assert [(l, h) for l, layer in enumerate(body["heads"]) for h, head in enumerate(layer) if head["knocked_out"]] == [
        (1, 0), (3, 2)]
    prediction = body["prediction"]
    assert set(prediction) == {"top", "top_ablated", "logprob", "logprob_ablated"}
    assert len(prediction["logprob"]) == len(prediction["logprob_ablated"]) == body["n_tokens"] - 1
    np.testing.assert_allclose(prediction["logprob_ablated"], expected.prediction.next_logprob, atol=1e-5)
    np.testing.assert_allclose(prediction["logprob"], expected.clean.prediction.next_logprob, atol=1e-5)
    assert [top["id"] for top in prediction["top_ablated"]] == expected.prediction.top_ids.tolist()
    assert [top["id"] for top in prediction["top"]] == expected.clean.prediction.top_ids.tolist()
    # Each side's top tokens, looked up in the other run's whole distribution: probability and rank (1 = its best).
    for entries, other, name in ((prediction["top"], expected.prediction, "ablated"),
                                 (prediction["top_ablated"], expected.clean.prediction, "clean")):
        assert all(set(top) == {"id", "token", "p", f"p_{name}", f"rank_{name}"} and 0 < top["p"] <= 1
                   for top in entries)
        for top in entries:
            logprob = other.last_logprob[top["id"]]
            np.testing.assert_allclose(top[f"p_{name}"], np.exp(logprob), atol=1e-5)
            assert top[f"rank_{name}"] == 1 + np.count_nonzero(other.last_logprob > logprob)
    assert prediction["top"][0]["p_ablated"] != prediction["top"][0]["p"]  # the other run's, not a copy
    assert prediction["top"][0]["token"] == engine.display(prediction["top"][0]["id"])
    assert prediction["top"] != prediction["top_ablated"]


def test_a_model_exported_without_every_tokens_logprob_answers_without_the_look_ups(tmp_path, models_dir, client):
    """predict.onnx of exports before last_logprob: the same prediction, top tokens without p_clean or p_ablated."""
    shutil.copytree(models_dir / "wide", tmp_path / "older")
    graph = onnx.load(str(tmp_path / "older" / PREDICT_GRAPH), load_external_data=False)
    kept = [output for output in graph.graph.output if output.name != LAST_LOGPROB]
    del graph.graph.output[:]
    graph.graph.output.extend(kept)
    onnx.save(graph, str(tmp_path / "older" / PREDICT_GRAPH))
    record_file(tmp_path / "older", PREDICT_GRAPH)  # the manifest's checksum: the file is the export's, altered
    older = create_app({"MODELS_DIR": str(tmp_path)}).test_client()
    body = post(older, text=TROPHY, model="older", ablate=[[3, 2]], predict=True).json
    current = post(client, text=TROPHY, model="wide", ablate=[[3, 2]], predict=True).json
    for side in ("top", "top_ablated"):
        assert body["prediction"][side] == [{key: top[key] for key in ("id", "token", "p")}
                                            for top in current["prediction"][side]]
    assert body["prediction"]["logprob_ablated"] == current["prediction"]["logprob_ablated"]


def test_predict_alone_gives_the_same_prediction_twice(client):
    body = post(client, text=TROPHY, predict=True).json
    assert body["ablate"] == [] and "change" not in body["heads"][0][0]
    assert body["prediction"]["top"] == body["prediction"]["top_ablated"]
    assert set(body["prediction"]["top"][0]) == {"id", "token", "p"}  # one run: nothing to look up in another
    assert body["prediction"]["logprob"] == body["prediction"]["logprob_ablated"]
    plain = post(client, text=TROPHY).json
    assert "prediction" not in plain and plain["heads"] == body["heads"]


def test_the_labels_are_those_of_the_ablated_attention(client):
    plain = post(client, text=TROPHY, model="wide").json
    ablated = post(client, text=TROPHY, model="wide", ablate=[[0, h] for h in range(12)]).json
    assert plain["heads"][0] == [{k: v for k, v in head.items() if k not in ("change", "knocked_out")}
                                 for head in ablated["heads"][0]]
    assert [h["scores"] for h in plain["heads"][11]] != [h["scores"] for h in ablated["heads"][11]]


def counted_runs(app, monkeypatch, name: str) -> list:
    """The engine's forward passes from now on: each call of Engine.run appends its head mask (None: all heads)."""
    engine = app.extensions["heads.models"].get(name)
    runs, run = [], engine.run
    monkeypatch.setattr(engine, "run", lambda ids, mask=None, *rest: runs.append(mask) or run(ids, mask, *rest))
    return runs


def test_the_clean_pass_is_cached_and_each_ablation_has_its_own_response(app, client, monkeypatch):
    runs = counted_runs(app, monkeypatch, "wide")
    text = "A sentence seen first plainly, then with heads knocked out."
    post(client, text=text, model="wide")
    first = post(client, text=text, model="wide", ablate=[[2, 2]], predict=True).json
    # The clean pass came from the plain request: only the ablated one ran.
    assert len(runs) == 2 and runs[0] is None and runs[1][2, 2] == 0 and runs[1].sum() == 143
    second = post(client, text=text, model="wide", ablate=[[2, 3]], predict=True).json
    assert len(runs) == 3
    def clean_side(body):  # each token's p_ablated is the other ablation's: only the clean run's own numbers match
        return [{key: top[key] for key in ("id", "token", "p")} for top in body["prediction"]["top"]]

    assert clean_side(first) == clean_side(second)
    assert first["prediction"]["logprob_ablated"] != second["prediction"]["logprob_ablated"]
    again = post(client, text=text, model="wide", ablate=[[2, 2]], predict=True).json
    assert again == first and len(runs) == 3


@pytest.mark.parametrize("ceiling", [None, 64 * 1024])
def test_each_model_keeps_clean_passes_within_a_share_of_its_weights(models_dir, ceiling):
    """Each model has its own cache of clean passes, bounded by a share of its weights' bytes on disk (its graphs and
    embedding table) and by CLEAN_PASS_BYTES; sentences past the bound push the oldest out."""
    app = create_app({"MODELS_DIR": str(models_dir), **({"CLEAN_PASS_BYTES": ceiling} if ceiling else {})})
    client = app.test_client()
    weights = sum((models_dir / "wide" / name).stat().st_size for name in ("model.onnx", "predict.onnx", "embedding.bin"))
    assert app.extensions["heads.models"].get("wide").weight_bytes == weights
    sentences = [f"Sentence number {number} about the {word} is here." for number, word in enumerate(
        ["cat", "dog", "sun", "sea", "tree", "road", "book", "lamp"] * 40)]
    for text in sentences:
        assert post(client, text=text, model="wide").status_code == 200
    passes = app.extensions["heads.clean_passes"]["wide"]
    assert passes.max_bytes == min(app.config["CLEAN_PASS_BYTES"], weights // WEIGHT_BYTES_PER_CLEAN_PASS_BYTE)
    assert 0 < passes.size <= passes.max_bytes
    engine = app.extensions["heads.models"].get("wide")
    kept = set(passes.entries)
    newest, oldest = (tuple(engine.tokenize(text)[0]) for text in (sentences[-1], sentences[0]))
    assert newest in kept and oldest not in kept  # the bound was reached: the first sentence was pushed out
    assert set(app.extensions["heads.clean_passes"]) == {"wide"}  # made on first use: the other models have none


def test_get_takes_ablate_as_json(client):
    got = client.get('/api/attention?text=Hello%20world%20again&ablate=[[1,2]]&predict=true').json
    posted = post(client, text="Hello world again", ablate=[[1, 2]], predict=True).json
    assert got == posted


BAD_ABLATE = [
    ("5.1", '"ablate" must be a list of [layer, head] pairs like [[4, 11], [5, 1]], not a string'),
    ({"layer": 1}, '"ablate" must be a list of [layer, head] pairs like [[4, 11], [5, 1]], not an object'),
    (None, '"ablate" must be a list of [layer, head] pairs like [[4, 11], [5, 1]], not null'),
    ([1, 2], '"ablate" item 0 must be a [layer, head] pair of two whole numbers like [[4, 11], [5, 1]], not a number'),
    ([[1]], '"ablate" item 0 must be a [layer, head] pair of two whole numbers like [[4, 11], [5, 1]], not [1]'),
    ([[0, 1], [1, 2, 3]], '"ablate" item 1 must be a [layer, head] pair of two whole numbers like [[4, 11], [5, 1]], '
                          'not [1,2,3]'),
    ([[0, 1.5]], '"ablate" item 0 must be a [layer, head] pair of two whole numbers like [[4, 11], [5, 1]], not [0,1.5]'),
    ([["0", "1"]], '"ablate" item 0 must be a [layer, head] pair of two whole numbers like [[4, 11], [5, 1]], not a list'),
    ([[[[[0]]]]], '"ablate" item 0 must be a [layer, head] pair of two whole numbers like [[4, 11], [5, 1]], not a list'),
    ([[True, 1]], '"ablate" item 0 holds true or false; a head is [layer, head], two whole numbers like [[4, 11], [5, 1]]'),
    ([[0, False]], '"ablate" item 0 holds true or false; a head is [layer, head], two whole numbers like [[4, 11], [5, 1]]'),
    ([[2, 0]], "\"ablate\" names head [2, 0]; model 'tiny' has layers 0–1 and heads 0–3"),
    ([[0, 4]], "\"ablate\" names head [0, 4]; model 'tiny' has layers 0–1 and heads 0–3"),
    ([[-1, 0]], "\"ablate\" names head [-1, 0]; model 'tiny' has layers 0–1 and heads 0–3"),
    ([[0, 10 ** 30]], "\"ablate\" names head [0, 1000000000000000000000000000000]; model 'tiny' has layers 0–1 and heads 0–3"),
    ([[1, 1], [0, 2], [1, 1]], '"ablate" lists head [1, 1] twice; list each head once'),
    ([[0, 0]] * (HEADS_OF_TINY + 1), "\"ablate\" lists 9 heads; model 'tiny' has 8 (list each head once)"),
    ([[0, 0]] * 25_000, "\"ablate\" lists 25,000 heads; model 'tiny' has 8 (list each head once)"),
]


@pytest.mark.parametrize("ablate, message", BAD_ABLATE)
def test_bad_ablate_gets_a_clear_error_before_any_work(app, client, monkeypatch, ablate, message):
    runs = counted_runs(app, monkeypatch, "tiny")
    response = post(client, text="Hello world", ablate=ablate)
    assert response.status_code == 400
    assert response.json == {"error": message}
    assert runs == []


@pytest.mark.parametrize("query, message", [
    ("ablate=5.1", '"ablate" must be a list of [layer, head] pairs like [[4, 11], [5, 1]], not a number'),
    ("ablate=[[1,", "\"ablate\" must be JSON like [[4, 11], [5, 1]], not '[[1,'"),
    ("predict=maybe", "\"predict\" must be true or false, not 'maybe'"),
])
def test_bad_query_parameters_get_a_clear_error(client, query, message):
    response = client.get(f"/api/attention?text=Hello&{query}")
    assert response.status_code == 400 and response.json == {"error": message}


@pytest.mark.parametrize("predict, message", [
    ("yes", '"predict" must be true or false, not a string'),
    (1, '"predict" must be true or false, not a number'),
    (None, '"predict" must be true or false, not null'),
])
def test_predict_must_be_a_boolean(client, predict, message):
    response = post(client, text="Hello world", predict=predict)
    assert response.status_code == 400 and response.json == {"error": message}


def test_ablate_is_limited_to_sentences_sent_in_one_response(app, client):
    limit = app.config["MAX_PACKED_ALL_LAYERS_TOKENS"]
    response = post(client, text="the" + " the" * limit, model="wide", ablate=[[0, 0]])
    assert response.status_code == 400
    assert response.json["error"] == (f'"ablate" works on sentences of up to {limit} tokens (it runs the sentence '
                                      f"twice); this one has {limit + 1}. Shorten it")


def test_models_say_which_models_can_knock_heads_out(client, models_dir):
    """The page reads `can_intervene` to offer knock-outs; it is what Engine.load decides from the manifest."""
    models = {entry["name"]: entry for entry in client.get("/api/models").json["models"]}
    for name, entry in models.items():
        assert entry["can_intervene"] is Engine.load(models_dir / name).can_intervene is True
