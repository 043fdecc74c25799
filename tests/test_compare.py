"""POST /api/compare through Flask's test client, against a 12 × 12 model exported in the test run.

Every expected number is computed here from two plain /api/attention answers for the same sentences, with the
definitions written out in the test (not the server's code): parity, not a copy of the implementation.
"""

import json
import shutil

import numpy as np
import pytest

from conftest import TROPHY
from twelve_heads.server import create_app
from twelve_heads.server.compare import align

SMALL = TROPHY.replace("big", "small")  # the Winograd pair: the same 14 tokens but one
FAR = TROPHY.replace("too big", "far too big")  # one token inserted
GARGANTUAN = TROPHY.replace("big", "gargantuan")  # one token replaced by three
SHE, HE = ("Alice gave Bob the book because she had finished reading it.",
           "Alice gave Bob the book because he had finished reading it.")
PACKED_ATOL = 0.5 / 65535 + 1e-7


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, tiny_model, wide_model):
    models = tmp_path_factory.mktemp("served")
    shutil.copytree(tiny_model, models / "tiny")
    shutil.copytree(wide_model, models / "wide")
    return models


@pytest.fixture(scope="module")
def app(models_dir):
    return create_app({"MODELS_DIR": str(models_dir), "DEFAULT_MODEL": "wide"})


def compare(client, a, b, **options):
    response = client.post("/api/compare", json={"a": a, "b": b, **options})
    assert response.status_code == 200, response.json
    return response.json


def attention(client, text, **options):
    """(ids, tokens, (L, H, T, T) float64) from a plain /api/attention request."""
    body = client.post("/api/attention", json={"text": text, "format": "json", **options}).json
    return body["ids"], body["tokens"], np.array(body["attention"])


def row_distance(row_a, row_b, query_a, query_b, alignment):
    """Total variation of two aligned rows: ½ (Σ over aligned keys |a − b| + the mass each row puts on keys the
    other sentence does not have)."""
    keys = [(ka, kb) for ka, kb in alignment["pairs"] if ka <= query_a]
    return 0.5 * (sum(abs(row_a[ka] - row_b[kb]) for ka, kb in keys)
                  + sum(row_a[k] for k in alignment["unmatched_a"] if k <= query_a)
                  + sum(row_b[k] for k in alignment["unmatched_b"] if k <= query_b))


def expected_changes(attention_a, attention_b, alignment):
    """Mean total variation per head over the aligned rows from the first difference on, row by row."""
    compared = alignment["pairs"][alignment["first_difference"]:]
    n_layer, n_head = attention_a.shape[:2]
    changes = np.zeros((n_layer, n_head))
    for layer in range(n_layer):
        for head in range(n_head):
            distances = [row_distance(attention_a[layer, head, query_a], attention_b[layer, head, query_b],
                                      query_a, query_b, alignment) for query_a, query_b in compared]
            changes[layer, head] = np.mean(distances) if distances else 0.0
    return changes


@pytest.mark.parametrize("a, b", [(TROPHY, SMALL), (SHE, HE)])
def test_both_sentences_are_answered_exactly_as_api_attention_answers_them(client, a, b):
    body = compare(client, a, b, prepend_bos=True)
    for name, text in (("a", a), ("b", b)):
        plain = client.post("/api/attention", json={"text": text, "format": "packed", "prepend_bos": True}).json
        assert body[name] == plain
    assert (body["model"], body["n_layer"], body["n_head"], body["prepend_bos"]) == ("wide", 12, 12, True)


@pytest.mark.parametrize("a, b", [(TROPHY, SMALL), (SHE, HE), (TROPHY, FAR), (TROPHY, GARGANTUAN), (FAR, TROPHY)])
def test_each_heads_change_is_the_mean_total_variation_of_two_plain_attention_results(client, a, b):
    body = compare(client, a, b)
    _, _, attention_a = attention(client, a)
    _, _, attention_b = attention(client, b)
    expected = expected_changes(attention_a, attention_b, body["alignment"])
    changes = np.array([[head["change"] for head in layer] for layer in body["heads"]])
    np.testing.assert_allclose(changes, expected, atol=1e-5)
    assert changes.max() > 0.01, "a random model's heads do react to a changed word"


@pytest.mark.parametrize("a, b", [(TROPHY, SMALL), (TROPHY, FAR), (TROPHY, GARGANTUAN)])
def test_rows_before_the_first_difference_are_identical_by_causality(client, a, b):
    alignment = compare(client, a, b)["alignment"]
    ids_a, _, attention_a = attention(client, a)
    ids_b, _, attention_b = attention(client, b)
    first = alignment["first_difference"]
    assert ids_a[:first] == ids_b[:first] and ids_a[first] != ids_b[first]
    assert alignment["pairs"][:first] == [[index, index] for index in range(first)]
    prefix_a, prefix_b = attention_a[:, :, :first, :first], attention_b[:, :, :first, :first]
    np.testing.assert_allclose(prefix_a, prefix_b, atol=1e-6)  # every head, every layer, every row before it
    assert np.abs(attention_a[:, :, first, :first] - attention_b[:, :, first, :first]).max() > 0.01, \
        "the first differing row does change: the prefix rows are equal because of causality, not by accident"


def test_the_peak_names_the_aligned_row_that_changed_most(client):
    body = compare(client, TROPHY, FAR)
    _, _, attention_a = attention(client, TROPHY)
    _, _, attention_b = attention(client, FAR)
    alignment = body["alignment"]
    peak = body["heads"][11][3]["peak"]
    assert [peak["query_a"], peak["query_b"]] in alignment["pairs"][alignment["first_difference"]:]
    distances = {(query_a, query_b): row_distance(attention_a[11, 3, query_a], attention_b[11, 3, query_b],
                                                  query_a, query_b, alignment)
                 for query_a, query_b in alignment["pairs"][alignment["first_difference"]:]}
    assert max(distances, key=distances.get) == (peak["query_a"], peak["query_b"])
    assert peak["distance"] == pytest.approx(max(distances.values()), abs=1e-5)


def test_an_inserted_token_is_unmatched_and_the_rest_align_by_id(client):
    body = compare(client, TROPHY, FAR)
    alignment = body["alignment"]
    tokens_b, ids_a, ids_b = body["b"]["tokens"], body["a"]["ids"], body["b"]["ids"]
    assert alignment["same_positions"] is False and alignment["n_tokens"] == [len(ids_a), len(ids_b)]
    assert alignment["unmatched_a"] == [] and alignment["unmatched_b"] == [tokens_b.index(" far")]
    assert alignment["first_difference"] == tokens_b.index(" far")
    assert [a for a, _ in alignment["pairs"]] == list(range(len(ids_a)))
    assert all(ids_a[a] == ids_b[b] for a, b in alignment["pairs"])
    assert alignment["compared_rows"] == len(ids_a) - alignment["first_difference"]


def test_a_word_replaced_by_more_tokens_leaves_both_sides_unmatched(client):
    body = compare(client, TROPHY, GARGANTUAN)
    alignment, tokens_a, tokens_b = body["alignment"], body["a"]["tokens"], body["b"]["tokens"]
    big = tokens_a.index(" big")
    assert alignment["unmatched_a"] == [big]
    assert [tokens_b[b] for b in alignment["unmatched_b"]] == [" garg", "ant", "uan"]
    assert [[tokens_a[a], tokens_b[b]] for a, b in alignment["pairs"][big:]] == [[".", "."]]
    assert alignment["first_difference"] == big and alignment["compared_rows"] == 1


def test_a_replaced_word_of_one_token_pairs_with_its_replacement(client):
    alignment = compare(client, TROPHY, SMALL)["alignment"]
    assert alignment["same_positions"] is True and alignment["unmatched_a"] == alignment["unmatched_b"] == []
    assert alignment["pairs"] == [[index, index] for index in range(14)]
    assert alignment["compared_rows"] == 14 - alignment["first_difference"] == 2


@pytest.mark.parametrize("ids_a, ids_b, pairs", [
    # The shared prefix is paired position by position even where difflib alone would slide it onto a later
    # copy ([1, 2, 3, 4, 5] is the longest match at B's 3, which would pair A's 0..2 with B's 3..5).
    ([1, 2, 3, 4, 5], [1, 2, 3, 1, 2, 3, 4, 5], [[0, 0], [1, 1], [2, 2], [3, 6], [4, 7]]),
    ([7, 8, 9], [7, 8, 9], [[0, 0], [1, 1], [2, 2]]),
    ([7, 8, 9], [7, 8, 9, 10], [[0, 0], [1, 1], [2, 2]]),
    ([5, 1, 2], [6, 1, 2], [[0, 0], [1, 1], [2, 2]]),
    ([5, 1, 2], [6, 6, 1, 2], [[1, 2], [2, 3]]),
    ([1, 2], [3, 4, 5], []),
])
def test_alignment_of_token_ids_of_different_lengths(ids_a, ids_b, pairs):
    alignment = align(ids_a, ids_b)
    assert alignment["pairs"] == pairs
    assert alignment["unmatched_a"] == sorted(set(range(len(ids_a))) - {a for a, _ in pairs})
    assert alignment["unmatched_b"] == sorted(set(range(len(ids_b))) - {b for _, b in pairs})


def test_a_long_common_run_is_aligned_whatever_its_length(client):
    """difflib's autojunk would treat tokens repeated in over 1% of a 200-token sentence as noise."""
    base = " the cat" * 120
    ids = list(range(1, 241))
    alignment = align(ids, ids[:100] + [999] + ids[100:])
    assert alignment["unmatched_b"] == [100] and len(alignment["pairs"]) == 240
    body = compare(client, base + " sat.", base + " ran.")
    assert body["alignment"]["compared_rows"] == 2 and body["a"]["attention_per_layer"] is True


def test_the_same_sentence_twice_changes_nothing(client):
    body = compare(client, TROPHY, TROPHY)
    assert body["alignment"]["compared_rows"] == 0 and body["alignment"]["first_difference"] == 14
    assert all(head == {"change": 0.0, "peak": None} for layer in body["heads"] for head in layer)


def test_a_sentence_that_only_ends_earlier_changes_nothing(client):
    body = compare(client, TROPHY, TROPHY + " It was.")
    assert body["alignment"]["compared_rows"] == 0
    assert {head["change"] for layer in body["heads"] for head in layer} == {0.0}


def test_prepend_bos_puts_the_document_token_first_in_both(client):
    body = compare(client, TROPHY, SMALL, prepend_bos=True)
    assert body["a"]["tokens"][0] == body["b"]["tokens"][0] == "<|endoftext|>"
    assert body["alignment"]["first_difference"] == 13


def test_repeated_comparisons_come_from_the_cache(app, client, monkeypatch):
    engine = app.extensions["heads.models"].get()
    runs, run = [], engine.run
    monkeypatch.setattr(engine, "run", lambda ids, *rest: runs.append(ids) or run(ids, *rest))
    first = client.post("/api/compare", json={"a": "one two three", "b": "one two four"})
    second = client.post("/api/compare", json={"a": "one two three", "b": "one two four"})
    assert len(runs) == 2 and first.data == second.data  # A and B once each; the repeat ran nothing
    swapped = compare(client, "one two four", "one two three")
    assert [h["change"] for h in swapped["heads"][0]] == [h["change"] for h in first.json["heads"][0]]


def test_an_empty_list_of_knocked_out_heads_is_no_knock_out(client):
    assert compare(client, TROPHY, SMALL, ablate=[])["heads"] == compare(client, TROPHY, SMALL)["heads"]


BAD_COMPARISONS = [
    ({"b": SMALL}, 400, '"a" is required: the first sentence'),
    ({"a": TROPHY}, 400, '"b" is required: the sentence to compare it with'),
    ({"a": None, "b": SMALL}, 400, '"a" is required: the first sentence'),
    ({"a": "", "b": SMALL}, 400, '"a" is empty; type the first sentence'),
    ({"a": TROPHY, "b": " \n\t"}, 400, '"b" is empty; type the sentence to compare it with'),
    ({"a": 3, "b": SMALL}, 400, '"a" must be a string, not a number'),
    ({"a": TROPHY, "b": ["small"]}, 400, '"b" must be a string, not a list'),
    ({"a": TROPHY, "b": {"text": "x"}}, 400, '"b" must be a string, not an object'),
    ({"a": True, "b": SMALL}, 400, '"a" must be a string, not a boolean'),
    ({"a": TROPHY, "b": SMALL, "prepend_bos": "yes"}, 400, '"prepend_bos" must be true or false, not a string'),
    ({"a": TROPHY, "b": SMALL, "prepend_bos": None}, 400, '"prepend_bos" must be true or false, not null'),
    ({"a": TROPHY, "b": SMALL, "colour": "red"}, 400,
     "unknown field 'colour'; the fields are: a, b, model, prepend_bos, ablate"),
    ({"text": TROPHY, "b": SMALL}, 400, "unknown field 'text'; the fields are: a, b, model, prepend_bos, ablate"),
    ({"a": TROPHY, "b": SMALL, "x" * 60: 1}, 400,
     f"unknown field '{'x' * 40}…'; the fields are: a, b, model, prepend_bos, ablate"),
    ({"a": TROPHY, "b": SMALL, "model": "nope"}, 404, "no model named 'nope'; available: tiny, wide"),
    ({"a": TROPHY, "b": SMALL, "model": "../wide"}, 404, "no model named '../wide'; available: tiny, wide"),
    ({"a": TROPHY, "b": SMALL, "model": 7}, 400, '"model" must be a string (a name from /api/models), not a number'),
    ({"a": TROPHY, "b": "word " * 299 + "word"}, 400,
     "sentence b: the sentence has 300 tokens; this model reads at most 256. Shorten it"),
    ({"a": "x" * 20_001, "b": SMALL}, 400, "sentence a: the text has 20,001 characters; this model reads at most 256 "
                                           "tokens (about 1,200 characters of English). Shorten it"),
    ({"a": TROPHY, "b": "bad \ud800"}, 400,
     "sentence b: the text has an invalid character at position 4 (a lone surrogate); remove it"),
    ({"a": TROPHY, "b": SMALL, "ablate": [[0, 99]]}, 400,
     "\"ablate\" names head [0, 99]; model 'wide' has layers 0–11 and heads 0–11"),
    ({"a": TROPHY, "b": SMALL, "ablate": "0.0"}, 400,
     '"ablate" must be a list of [layer, head] pairs like [[4, 11], [5, 1]], not a string'),
]


@pytest.mark.parametrize("payload, status, message", BAD_COMPARISONS)
def test_bad_comparisons_get_a_clear_error(client, payload, status, message):
    response = client.post("/api/compare", data=json.dumps(payload), content_type="application/json")
    assert (response.status_code, response.json) == (status, {"error": message})


@pytest.mark.parametrize("body, message", [
    (b"{not json", 'the request body must be JSON (UTF-8) like {"a": "The trophy is too big.", '
                   '"b": "The trophy is too small."}, sent with Content-Type: application/json'),
    (b"[1, 2]", 'the request body must be a JSON object like {"a": "The trophy is too big.", '
                '"b": "The trophy is too small."}, not a list'),
])
def test_malformed_bodies_get_a_clear_error(client, body, message):
    response = client.post("/api/compare", data=body, content_type="application/json")
    assert (response.status_code, response.json) == (400, {"error": message})


def test_compare_is_post_only(client):
    response = client.get("/api/compare?a=x&b=y")
    assert (response.status_code, response.json) == (405, {"error": "GET is not allowed on /api/compare; use POST"})


def test_a_comparison_counts_against_the_rate_limit(models_dir):
    app = create_app({"MODELS_DIR": str(models_dir), "RATE_LIMIT_PER_MINUTE": 2})
    client = app.test_client()
    codes = [client.post("/api/compare", json={"a": "one", "b": "two"}).status_code for _ in range(2)]
    codes.append(client.post("/api/attention", json={"text": "one"}).status_code)
    assert codes == [200, 200, 429]


def test_long_sentences_take_their_turn_and_give_the_same_answer(models_dir, client):
    app = create_app({"MODELS_DIR": str(models_dir), "DEFAULT_MODEL": "wide", "LONG_SENTENCE_TOKENS": 4})
    assert compare(app.test_client(), TROPHY, SMALL)["heads"] == compare(client, TROPHY, SMALL)["heads"]
