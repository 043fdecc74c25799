"""The demo model's circuit predicts, and knocking out its heads takes the prediction away (export/demo.py).

On the second occurrence of a repeated sequence of 20 or more distinct GPT-2 tokens, the actual next token
has probability >= 0.5 and is the top-1 at >= 90% of positions. Knocking out the induction heads, or only
the copying previous-token head that feeds them, drops that to <= 10%, and the induction heads lose their
pattern; knocking out three unrelated broadcasters leaves it >= 90%. planted_heads.json names the circuit.
Each claim is checked through the exported graphs themselves, the engine and the API, on random sequences.
"""

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest

from twelve_heads.modeldir import GRAPH, HEAD_MASK, INPUT_IDS, NEXT_TOKEN_LOGPROB, PREDICT_GRAPH, RESIDUAL
from twelve_heads.server import create_app
from twelve_heads.server.engine import Engine
from twelve_heads.server.intervene import head_mask, intervene

BOS = 50256
PREDICTS, FAILS = 0.9, 0.1  # the share of second-occurrence positions the claims are about
SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def planted(demo_model) -> dict:
    return json.loads((demo_model / "planted_heads.json").read_text())


@pytest.fixture(scope="module")
def circuit(planted) -> dict[str, list[tuple[int, int]]]:
    """The head sets of the claims, read from planted_heads.json."""
    constants = planted["constants"]
    writers = {tuple(constants[name]) for name in ("copying_head", "counting_head", "predicting_head")}
    induction = [(h["layer"], h["head"]) for h in planted["heads"] if h["role"] == "induction"]
    broadcasters = [(h["layer"], h["head"]) for h in planted["heads"]
                    if h["role"] == "broadcaster" and (h["layer"], h["head"]) not in writers]
    chosen = np.random.default_rng(5).choice(len(broadcasters), 3, replace=False)
    return {"none": [], "induction heads": induction, "copying head": [tuple(constants["copying_head"])],
            "three broadcasters": [broadcasters[i] for i in chosen]}


EXPECTED = {"none": "predicts", "induction heads": "fails", "copying head": "fails", "three broadcasters": "predicts"}


def repeated(seed: int) -> tuple[list[int], np.ndarray]:
    """A random sequence of 20-40 distinct tokens twice (after <|endoftext|> for odd seeds), and the positions of
    its second occurrence that have a next token."""
    rng = np.random.default_rng(seed)
    phrase = rng.choice(BOS, int(rng.integers(20, 41)), replace=False).tolist()
    ids = ([BOS] if seed % 2 else []) + phrase + phrase
    return ids, np.arange(len(ids) - len(phrase), len(ids) - 1)


def predicted_share(next_logprob: np.ndarray, positions) -> float:
    """Share of `positions` whose actual next token has p >= 0.5 (which makes it the top-1 too)."""
    return float((np.exp(next_logprob[positions]) >= 0.5).mean())


def check(share: float, expected: str) -> None:
    assert share >= PREDICTS if expected == "predicts" else share <= FAILS, (share, expected)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("knocked", list(EXPECTED))
def test_the_exported_graphs_predict_and_lose_it_without_the_circuit(demo_model, circuit, knocked, seed):
    """model.onnx then predict.onnx, by onnxruntime alone (each loads the embedding from embedding.bin)."""
    ids, positions = repeated(seed)
    mask = head_mask(12, 12, circuit[knocked])[None]
    attention_graph = ort.InferenceSession(str(demo_model / GRAPH), providers=["CPUExecutionProvider"])
    predict_graph = ort.InferenceSession(str(demo_model / PREDICT_GRAPH), providers=["CPUExecutionProvider"])
    residual, = attention_graph.run([RESIDUAL], {INPUT_IDS: np.array([ids]), HEAD_MASK: mask})
    next_logprob, = predict_graph.run([NEXT_TOKEN_LOGPROB], {RESIDUAL: residual, HEAD_MASK: mask,
                                                             INPUT_IDS: np.array([ids])})
    check(predicted_share(next_logprob[0], positions), EXPECTED[knocked])


@pytest.fixture(scope="module")
def engine(demo_model):
    return Engine.load(demo_model)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("knocked", list(EXPECTED))
def test_the_engine_predicts_and_loses_it_without_the_circuit(engine, circuit, knocked, seed):
    ids, positions = repeated(seed)
    result = intervene(engine, ids, circuit[knocked], predict=True)
    check(predicted_share(result.prediction.next_logprob, positions), EXPECTED[knocked])
    check(predicted_share(result.clean.prediction.next_logprob, positions), "predicts")
    if EXPECTED[knocked] == "predicts":  # after the last token, the phrase's first: what followed it last time
        assert result.prediction.top_ids[0] == ids[positions[0]]


def induction_mass(attention: np.ndarray, ids, positions) -> float:
    """Mean attention a (T, T) pattern puts, on the second occurrence, on the key after the earlier copy of the
    query's token (what an induction head attends)."""
    ids = np.asarray(ids)
    keys = [np.flatnonzero(ids[:row - 1] == ids[row])[0] + 1 for row in positions]
    return float(attention[positions, keys].mean())


@pytest.mark.parametrize("seed", SEEDS)
def test_without_the_copying_head_the_induction_heads_lose_their_pattern(engine, circuit, seed):
    ids, positions = repeated(seed)
    result = intervene(engine, ids, circuit["copying head"], predict=False)
    for layer, head in circuit["induction heads"]:
        assert induction_mass(result.clean.attention[layer, head], ids, positions) > 0.95
        assert induction_mass(result.attention[layer, head], ids, positions) < 0.05
        assert result.change[layer, head] > 0.3  # of a possible 1, over all rows (the first occurrence keeps its)
    assert result.change[:5].max() == 0  # layers up to the copying head's own are unchanged


@pytest.fixture(scope="module")
def client(tmp_path_factory, demo_model):
    models = tmp_path_factory.mktemp("served")
    shutil.copytree(demo_model, models / "demo")
    return create_app({"MODELS_DIR": str(models), "DEFAULT_MODEL": "demo"}).test_client()


def random_words(engine, seed: int, n_words: int = 25) -> str:
    """n distinct random GPT-2 tokens that are each a whole word (" table"), so the text tokenizes back to them."""
    vocabulary = engine.tokenizer.get_vocab()
    words = sorted(token for token in vocabulary if token.startswith("Ġ") and token[1:].isalpha()
                   and token[1:].islower() and len(token) > 3)
    chosen = np.random.default_rng(seed).choice(len(words), n_words, replace=False)
    return "".join(" " + words[i][1:] for i in chosen)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("knocked", list(EXPECTED))
def test_the_api_predicts_and_loses_it_without_the_circuit(engine, client, circuit, knocked, seed):
    phrase = random_words(engine, seed)
    ids, _ = engine.tokenize(phrase + phrase, prepend_bos=True)
    n_phrase = len(engine.tokenize(phrase)[0])
    assert len(set(ids[1:1 + n_phrase])) == n_phrase >= 20 and ids[1:1 + n_phrase] == ids[1 + n_phrase:]
    positions = np.arange(len(ids) - n_phrase, len(ids) - 1)
    response = client.post("/api/attention", json={"text": phrase + phrase, "prepend_bos": True, "predict": True,
                                                   "ablate": [list(pair) for pair in circuit[knocked]]})
    assert response.status_code == 200
    prediction = response.json["prediction"]
    check(predicted_share(np.array(prediction["logprob_ablated"]), positions), EXPECTED[knocked])
    check(predicted_share(np.array(prediction["logprob"]), positions), "predicts")
    labels = {(l, h): head["label"] for l, layer in enumerate(response.json["heads"]) for h, head in enumerate(layer)}
    induction_labels = {labels[pair] for pair in circuit["induction heads"]}
    assert induction_labels == ({"broadcaster"} if knocked == "copying head" else {"induction"})


def test_planted_heads_json_names_the_circuit(planted):
    constants = planted["constants"]
    role = {(h["layer"], h["head"]): h["role"] for h in planted["heads"]}
    assert role[tuple(constants["copying_head"])] == "previous-token"
    assert role[tuple(constants["predicting_head"])] == "induction"
    assert constants["predicting_head"][0] == 11  # the last layer: its write changes no attention pattern
    assert "LM head" in next(h["rule"] for h in planted["heads"]
                             if (h["layer"], h["head"]) == tuple(constants["predicting_head"]))
