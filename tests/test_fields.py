"""Request fields: one table per endpoint, parsed into one frozen options object, refused before any work.

Against real models exported in the test run (conftest's app: tiny, 2 layers and 40 positions, is the default).
The common bad inputs and their messages are in tests/test_api.py and tests/test_hardening.py."""

import dataclasses

import pytest

from conftest import REPO, CountedSlot
from twelve_heads.errors import InputError
from twelve_heads.server import create_app
from twelve_heads.server.api import ATTENTION_FIELDS
from twelve_heads.server.fields import Field, Fields, boolean, query_boolean, sentence


@pytest.fixture
def forward_passes(app, monkeypatch):
    """How often the real engine of tiny runs its graph (each call still runs it)."""
    engine = app.extensions["heads.models"].get("tiny")
    calls, run = [], engine.run
    monkeypatch.setattr(engine, "run", lambda ids, *rest: calls.append(len(ids)) or run(ids, *rest))
    return calls


LONG = " ".join(["word"] * 30)  # 30 tokens: over the JSON limit set below, inside tiny's 40 positions


@pytest.mark.parametrize("payload, message", [
    ({"text": "a", "layer": 2}, "layer must be between 0 and 1 for model 'tiny', not 2"),
    ({"text": "a", "layer": -1}, "layer must be between 0 and 1 for model 'tiny', not -1"),
    ({"text": LONG, "layer": 7, "format": "packed"}, "layer must be between 0 and 1 for model 'tiny', not 7"),
    ({"text": LONG, "format": "json"}, "format=json returns L×H×T×T numbers; it is limited to 20 tokens and this "
                                       "sentence has 30. Shorten it, ask for one layer, or use format=packed"),
    ({"text": LONG, "format": "json", "prepend_bos": True},
     "format=json returns L×H×T×T numbers; it is limited to 20 tokens and this sentence has 31. Shorten it, ask "
     "for one layer, or use format=packed"),
])
def test_what_needs_the_model_is_refused_before_the_forward_pass(app, forward_passes, payload, message):
    app.config["MAX_JSON_ATTENTION_TOKENS"] = 20  # module-scoped app: put back below
    try:
        response = app.test_client().post("/api/attention", json=payload)
    finally:
        app.config["MAX_JSON_ATTENTION_TOKENS"] = 128
    assert (response.status_code, response.json) == (400, {"error": message})
    assert forward_passes == []


def test_a_long_bad_request_never_takes_the_long_sentence_slot(models_dir):
    app = create_app({"MODELS_DIR": str(models_dir), "DEFAULT_MODEL": "tiny", "LONG_SENTENCE_TOKENS": 10})
    slot = app.extensions["heads.long_sentences"] = CountedSlot(app.extensions["heads.long_sentences"])
    client = app.test_client()
    assert client.post("/api/attention", json={"text": LONG, "layer": 5}).status_code == 400
    assert slot.reached == 0
    assert client.post("/api/attention", json={"text": LONG, "layer": 1}).status_code == 200
    assert slot.reached == 1  # the same sentence, asked for rightly, does take it


def test_a_good_request_runs_the_graph_once_and_a_repeat_not_at_all(app, forward_passes):
    client = app.test_client()
    for _ in range(2):
        assert client.post("/api/attention", json={"text": "counted once", "layer": 1}).status_code == 200
    assert len(forward_passes) == 1


VARIANTS = {"text": "another sentence", "model": "tiny", "prepend_bos": True, "sink_aware": True,
            "format": "packed", "layer": 1, "ablate": [[0, 1]], "predict": True}


def test_every_field_has_a_variant_here():
    assert set(VARIANTS) == set(ATTENTION_FIELDS.names)


@pytest.mark.parametrize("name", ATTENTION_FIELDS.names)
def test_the_cache_key_holds_every_field(app, name):
    """A field that changes the answer changes the key: the key is the parsed options themselves."""
    client, cache = app.test_client(), app.extensions["heads.cache"]
    base = {"text": f"the key holds {name}", "format": "json"}
    first = client.post("/api/attention", json=base)
    entries = len(cache.entries)
    second = client.post("/api/attention", json={**base, name: VARIANTS[name]})
    assert first.status_code == second.status_code == 200
    if name == "model":  # naming the default model is the same request
        assert len(cache.entries) == entries and second.data == first.data
    else:
        assert len(cache.entries) == entries + 1 and second.data != first.data


def test_readme_documents_every_field_of_attention_and_compare():
    from twelve_heads.server.compare import COMPARE_FIELDS

    api = (REPO / "README.md").read_text().split("## JSON API")[1].split("\n## ")[0]
    tables = [[line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| `")]
              for table in api.split("\n\n")]
    assert [rows for rows in tables if rows] == [[f"`{name}`" for name in fields.names]
                                                  for fields in (ATTENTION_FIELDS, COMPARE_FIELDS)]


# --- a table of its own, as issue 14's and issue 16's fields will be added ----------------------------------------

def pairs(field, value):
    """[[layer, head], ...] -> a tuple of pairs: hashable, so the options stay a cache key."""
    if not isinstance(value, list) or not all(isinstance(pair, list) and len(pair) == 2 for pair in value):
        raise InputError(f'"{field.name}" must be a list of [layer, head] pairs')
    return tuple(map(tuple, value))


EXTENDED = Fields(Field("a", sentence, None, "the first sentence"), Field("b", sentence, None, "the second one"),
                  Field("ablate", pairs, [], "heads to knock out"),
                  Field("predict", boolean, False, "add the prediction", from_query=query_boolean))


def parse(app, **request):
    with app.test_request_context("/", **request):
        return EXTENDED.parse()


def test_a_new_table_parses_into_a_frozen_hashable_options_object(app):
    options = parse(app, method="POST", json={"a": "one", "b": "two", "ablate": [[0, 1]]})
    assert (options.a, options.b, options.ablate, options.predict) == ("one", "two", ((0, 1),), False)
    assert hash(options) == hash(parse(app, method="POST", json={"b": "two", "a": "one", "ablate": [[0, 1]]}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.a = "changed"
    assert parse(app, query_string="a=x&b=y&predict=yes").predict is True


@pytest.mark.parametrize("payload, message", [
    ({"b": "two"}, '"a" is required: the first sentence'),
    ({"a": "one", "b": 2}, '"b" must be a string, not a number'),
    ({"a": "x", "b": "y", "ablate": [0, 1]}, '"ablate" must be a list of [layer, head] pairs'),
    ({"a": "x", "b": "y", "predict": "yes"}, '"predict" must be true or false, not a string'),
    ({"a": "x", "b": "y", "text": "z"}, "unknown field 'text'; the fields are: a, b, ablate, predict"),
])
def test_a_new_table_refuses_with_its_own_names(app, payload, message):
    with pytest.raises(InputError) as raised:
        parse(app, method="POST", json=payload)
    assert str(raised.value) == message
