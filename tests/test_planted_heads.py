"""Ground truth: every planted head of the exported demo model gets its planted label through the engine and
the scorer. The roles are known by construction (export/demo.py), so this tests the labels, not the model.

Two roles can only show on some sentences, and that is part of their definition, not an exception:
- long-range (key i-6, falling back to key 1 on rows 2..6): needs 13+ tokens, so that the rows it can reach
  are a majority of the scored rows 2..T-1;
- duplicate-token and induction: need a sentence where at least 3 tokens repeat an earlier one; without
  repeats they rest on the first token, as GPT-2's do, and are broadcasters by their attention.
"""

import json

import pytest

from conftest import TROPHY
from twelve_heads.server.engine import Engine
from twelve_heads.server.heads import label_heads, layer_counts
from twelve_heads.server.scores import MIN_REPEAT_ROWS

SENTENCES = {
    "short": "Alice saw the cat.",
    "coreference": TROPHY,
    "pronoun": "Alice gave Bob the book because she had finished reading it last night.",
    # Not "The cat sat on the mat. The cat sat on the mat.": its period of 7 tokens puts the token after each
    # earlier copy exactly 6 back, where the long-range heads look, and their attention is then induction's too.
    "repeated": "The cat sat on the mat, and the cat sat on the mat.",
    "long": ("In the morning the students walked to the lab, opened their laptops, and typed a sentence into the "
             "box. Then they moved the slider from the first layer to the last, watching the patterns change, "
             "and wrote down which heads looked back one token, which rested on the first token, and which "
             "reached far back into the sentence."),
    "repeated-random": "alpha bravo charlie delta echo foxtrot golf alpha bravo charlie delta echo foxtrot golf",
}
LONG_RANGE_MIN_TOKENS = 13
TOKEN_ROLES = ("duplicate-token", "induction")


@pytest.fixture(scope="module")
def engine(demo_model):
    return Engine.load(demo_model)


@pytest.fixture(scope="module")
def planted(demo_model):
    return json.loads((demo_model / "planted_heads.json").read_text())["heads"]


def repeat_rows(ids) -> int:
    return sum(token in ids[:i] for i, token in enumerate(ids))


def expected_label(role: str, ids: list[int]) -> str:
    if role in TOKEN_ROLES and repeat_rows(ids) < MIN_REPEAT_ROWS:
        return "broadcaster"
    return role


@pytest.mark.parametrize("prepend_bos", [False, True], ids=["plain", "bos"])
@pytest.mark.parametrize("sentence", SENTENCES.values(), ids=SENTENCES.keys())
def test_every_planted_head_gets_its_label(engine, planted, sentence, prepend_bos):
    result = engine.attend(sentence, prepend_bos=prepend_bos)
    labels = label_heads(result.attention, result.ids)
    checked, wrong = 0, []
    for head in planted:
        if head["role"] == "long-range" and len(result.ids) < LONG_RANGE_MIN_TOKENS:
            continue
        expected = expected_label(head["role"], result.ids)
        got = labels[head["layer"]][head["head"]]
        checked += 1
        if got["label"] != expected:
            wrong.append(f"{head['layer']}.{head['head']} planted {head['role']}: got {got['label']} ({got['reason']})")
        elif expected != "mixed":
            assert got["confidence"] > 0.6, (head, got)
    assert not wrong, "\n".join(wrong)
    n_long_range = sum(head["role"] == "long-range" for head in planted)
    assert checked == len(planted) - (n_long_range if len(result.ids) < LONG_RANGE_MIN_TOKENS else 0)


@pytest.mark.parametrize("sentence", ["repeated", "long", "pronoun"])
def test_int8_keeps_every_planted_label(demo_int8_model, planted, sentence):
    engine = Engine.load(demo_int8_model)
    result = engine.attend(SENTENCES[sentence], prepend_bos=True)
    labels = label_heads(result.attention, result.ids)
    wrong = [f"{h['layer']}.{h['head']} planted {h['role']}: got {labels[h['layer']][h['head']]['label']}"
             for h in planted if labels[h["layer"]][h["head"]]["label"] != expected_label(h["role"], result.ids)]
    assert not wrong, "\n".join(wrong)


def test_repeated_sentences_show_every_role(engine, planted):
    result = engine.attend(SENTENCES["repeated-random"], prepend_bos=True)
    labels = label_heads(result.attention, result.ids)
    roles = {head["role"] for head in planted}
    found = {labels[h["layer"]][h["head"]]["label"] for h in planted}
    assert roles == found == {"broadcaster", "diagonal", "previous-token", "local", "long-range",
                              "duplicate-token", "induction", "diffuse"}
    counts = layer_counts(labels)
    planted_counts = [sum(h["layer"] == layer and h["role"] == "broadcaster" for h in planted) for layer in range(12)]
    assert [c["broadcaster"] for c in counts] == planted_counts


def test_sink_aware_view_reveals_what_duplicate_heads_do_behind_the_sink(engine, planted):
    """Without repeats a duplicate-token head rests on the first token; sink-aware, it is not a broadcaster."""
    result = engine.attend(SENTENCES["pronoun"])
    aware = label_heads(result.attention, result.ids, sink_aware=True)
    for head in planted:
        if head["role"] == "broadcaster":
            assert aware[head["layer"]][head["head"]]["scores"]["first"] == 0


def test_the_demo_manifest_says_it_is_synthetic(demo_model):
    manifest = json.loads((demo_model / "manifest.json").read_text())
    assert manifest["synthetic"] is True and "not GPT-2" in manifest["description"]
    assert (manifest["n_layer"], manifest["n_head"], manifest["n_positions"]) == (12, 12, 1024)
    assert manifest["files"]["planted_heads.json"]


def test_the_demo_tokenizes_like_gpt2(engine):
    assert engine.attend("Hello world").ids == [15496, 995]
