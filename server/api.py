"""The JSON API: /api/models, /api/attention, /api/tokens, /healthz, and the one error body.

Input is validated where it enters: each endpoint's fields are a table (server/fields.py), parsed before the
model is asked for anything."""

import base64
import gzip
from dataclasses import replace

import numpy as np
import orjson
from flask import Blueprint, Response, current_app, jsonify, request

from twelve_heads.errors import InputError, ModelError
from twelve_heads.modeldir import BOS_TOKEN

from .atlas import can_show
from .cache import ByteLRU
from .config import WEIGHT_BYTES_PER_CLEAN_PASS_BYTE
from .engine import Attention
from .memory import release_freed_memory
from .fields import (Field, Fields, boolean, heads_of_model, knocked_out_heads, layer_of_model, model_intervenes,
                     model_name, one_of, optional_whole_number, query_boolean, query_json, query_whole_number,
                     sentence)
from .heads import LABEL_MEANINGS, LABELS, SCORE_MEANINGS, label_heads, layer_counts
from .intervene import intervene
from .scores import EMPTY_ROW_MASS, FIRST_SCORED_ROW

bp = Blueprint("api", __name__)

FORMATS = ("summary", "json", "packed")  # summary: labels only; json: + nested floats; packed: + uint16 for the page
# /api/attention's fields, in the order they are checked; the README's table lists each (a test checks).
ATTENTION_FIELDS = Fields(
    Field("text", sentence, None, "the sentence to look at"),
    Field("model", model_name, None, "a name from /api/models; DEFAULT_MODEL when absent"),
    Field("prepend_bos", boolean, False, f"put {BOS_TOKEN} first, as TransformerLens does",
          from_query=query_boolean),
    Field("sink_aware", boolean, False, "score heads with the first token's column removed and rows renormalised",
          from_query=query_boolean),
    Field("format", one_of(*FORMATS), "summary", "summary: labels only; json adds the attention as nested lists; "
                                                 "packed adds it compactly, for the page"),
    Field("layer", optional_whole_number, None, "with json or packed: only this layer's attention",
          from_query=query_whole_number, check=layer_of_model),
    Field("ablate", knocked_out_heads, [], "heads to knock out, [[layer, head], …]: their weighted values z become "
                                           "0 (the output projection's bias stays); attention and labels are then "
                                           "the run without them, and each head gets its change",
          from_query=query_json, check=heads_of_model),
    Field("predict", boolean, False, "add the 5 likeliest next tokens and each token's log-probability, with every "
                                     "head and without the knocked-out ones",
          from_query=query_boolean, check=model_intervenes),
)
# /api/tokens's fields: what decides how a text tokenizes, as /api/attention reads them.
TOKEN_FIELDS = Fields(*(field for field in ATTENTION_FIELDS.fields if field.name in ("text", "model", "prepend_bos")))
GZIP_LEVEL = 1  # the fastest: higher levels shrink this JSON of repeated keys only a little more
CHANGE_DIGITS = 6  # a total-variation distance in [0, 1]
PACKED_SCALE = 65535  # uint16: a probability is off by at most 1/131070 ≈ 7.6e-6


@bp.get("/healthz")
def healthz():
    registry = current_app.extensions["heads.models"]
    return {"ok": True, "models_loaded": sorted(registry.engines)}


@bp.get("/api/models")
def models():
    registry = current_app.extensions["heads.models"]
    summaries = registry.summaries()
    try:
        default = registry.default_name()
    except ModelError:  # none is ready; the summaries say why
        default = None
    return {"models": summaries, "default": default, **GLOSSARY}


# What the page shows beside the heads, from the one home of each fact: the labels and scores with their
# meanings, the token prepend_bos adds, the mass below which a sink-aware row counts as empty, and the fewest
# tokens that give a head a scored row (shorter, the page tags every head "too short" rather than a pure sink).
GLOSSARY = {
    "labels": [{"name": name, "meaning": LABEL_MEANINGS[name]} for name in LABELS],  # in the page's order
    "scores": [{"name": name, "meaning": meaning} for name, meaning in SCORE_MEANINGS.items()],
    "bos_token": BOS_TOKEN,
    "empty_row_mass": EMPTY_ROW_MASS,
    "scored_from_tokens": FIRST_SCORED_ROW + 1,  # rows count from 0, tokens from 1
}


@bp.route("/api/attention", methods=["GET", "POST"])
def attention():
    options = ATTENTION_FIELDS.parse()
    engine = current_app.extensions["heads.models"].get(options.model)
    key = replace(options, model=engine.name)  # the model it names, not how: absent and named share answers
    return cached_json(key, lambda: compute(engine, options))


def cached_json(key, make) -> Response:
    """The JSON of `make()`, from the cache when `key` was answered before; gzipped for clients that take it."""
    cache = current_app.extensions["heads.cache"]
    body = cache.get(key)  # kept gzipped: cheaper to send, and four times as many fit in CACHE_BYTES
    if body is None:
        # orjson serialises format=json's numpy array directly, without a list of millions of floats first.
        body = gzip.compress(orjson.dumps(make(), option=orjson.OPT_SERIALIZE_NUMPY),
                             compresslevel=GZIP_LEVEL, mtime=0)
        cache.put(key, body)
    return gzipped_json_response(body)


def gzipped_json_response(body: bytes) -> Response:
    """A gzipped JSON body as it is to a client that accepts gzip, unpacked for one that does not."""
    if "gzip" in request.accept_encodings:
        response = Response(body, mimetype="application/json")
        response.headers["Content-Encoding"] = "gzip"
    else:
        response = Response(gzip.decompress(body), mimetype="application/json")
    response.vary.add("Accept-Encoding")
    return response


@bp.post("/api/tokens")
def tokens():
    """How many tokens a text is for a model, and the most it reads: the page's live count as the student types.
    A text over the token limit is counted, not refused; text that cannot be a sentence gets the usual 400."""
    options = TOKEN_FIELDS.parse()
    engine = current_app.extensions["heads.models"].get(options.model)
    ids, _ = engine.encode(options.text, prepend_bos=options.prepend_bos)
    return {"n_tokens": len(ids), "max_tokens": engine.max_tokens}


def error_response(message: str, status: int) -> Response:
    """The one error body, {"error": message}: every failure the app reports is sent through here."""
    response = jsonify(error=message)
    response.status_code = status
    return response


def compute(engine, options) -> dict:
    """Everything that can be refused is refused here, after tokenizing (the length is known) and before the
    forward pass, so a bad request never holds the long-sentence slot."""
    ids, offsets = engine.tokenize(options.text, prepend_bos=options.prepend_bos)
    ATTENTION_FIELDS.check(options, engine)
    check_json_size(options, len(ids))
    check_ablate_size(options, len(ids))
    # A knock-out may run the sentence twice at once, and the engine counts that run by its size (Engine.is_long).
    if not engine.is_long(len(ids), 2 if options.ablate else 1):
        return describe(engine, options, ids, offsets)
    with current_app.extensions["heads.long_sentences"]:  # (L, H, T, T) at T = 1,024 is 600 MB: one at a time
        try:
            return describe(engine, options, ids, offsets)
        finally:  # the activations and the attention array are freed by now; without this glibc keeps them
            release_freed_memory()


def check_json_size(options, n_tokens: int) -> None:
    limit = current_app.config["MAX_JSON_ATTENTION_TOKENS"]
    if options.format == "json" and n_tokens > limit:
        raise InputError(f"format=json returns L×H×T×T numbers; it is limited to {limit} tokens and this "
                         f"sentence has {n_tokens}. Shorten it, ask for one layer, or use format=packed")


def check_ablate_size(options, n_tokens: int) -> None:
    limit = current_app.config["MAX_PACKED_ALL_LAYERS_TOKENS"]  # the clean pass of 192 tokens is 21 MB
    if options.ablate and n_tokens > limit:
        raise InputError(f'"ablate" works on sentences of up to {limit} tokens (it runs the sentence twice); this '
                         f"one has {n_tokens}. Shorten it")


def describe(engine, options, ids, offsets) -> dict:
    intervention = run_intervention(engine, options, ids)
    if intervention is None:
        return respond(engine, options, engine.attend_ids(ids, offsets))
    result = Attention([engine.display(i) for i in ids], ids, offsets, intervention.attention)
    response = respond(engine, options, result)
    describe_intervention(engine, options, intervention, response)
    return response


def run_intervention(engine, options, ids):
    """The clean and ablated passes, or None where a plain run does. The clean pass of a sentence (up to
    MAX_PACKED_ALL_LAYERS_TOKENS) is kept apart, in the model's clean_passes, from any request that computed it, a
    plain one included: knocking heads out after looking, or knocking out one more, runs only the ablated pass. A
    pass larger than the model's whole cache is not kept (an int8 GPT-2 small's: sentences over ~115 tokens)."""
    if not engine.can_intervene:
        return None
    passes = clean_passes(engine)
    keep = passes.max_bytes > 0 and len(ids) <= current_app.config["MAX_PACKED_ALL_LAYERS_TOKENS"]
    if not (options.ablate or options.predict or keep):
        return None
    key = tuple(ids)
    cached = passes.get(key)
    result = intervene(engine, ids, options.ablate, options.predict, cached)
    if result.clean is not cached and keep:
        prediction = result.clean.prediction
        for array in (result.clean.attention, result.clean.residual, *(() if prediction is None else (
                prediction.next_logprob, prediction.top_ids, prediction.top_logprob, prediction.last_logprob))):
            if array is not None:
                array.flags.writeable = False  # shared by every request that finds it
        passes.put(key, result.clean, size=result.clean.nbytes)
    return result


def clean_passes(engine) -> ByteLRU:
    """The model's cache of sentences' runs with every head, made on its first use: at most CLEAN_PASS_BYTES, and at
    most 1/WEIGHT_BYTES_PER_CLEAN_PASS_BYTE of the model's weights, so that it costs an int8 model the share of its
    memory it costs fp32 (benchmarks/results/bench_intervene_memory.txt)."""
    caches = current_app.extensions["heads.clean_passes"]
    cache = caches.get(engine.name)
    if cache is None:
        budget = min(current_app.config["CLEAN_PASS_BYTES"], engine.weight_bytes // WEIGHT_BYTES_PER_CLEAN_PASS_BYTE)
        cache = caches.setdefault(engine.name, ByteLRU(budget))  # one cache even when two threads race here
    return cache


def describe_intervention(engine, options, intervention, response: dict) -> None:
    """What knocking heads out changed: each head's `change` and `knocked_out`, and `prediction`."""
    if options.ablate:
        knocked_out = set(options.ablate)
        for layer, heads in enumerate(response["heads"]):
            for head, description in enumerate(heads):
                description["change"] = round(float(intervention.change[layer, head]), CHANGE_DIGITS)
                description["knocked_out"] = (layer, head) in knocked_out
    if options.predict:
        clean, ablated = intervention.clean.prediction, intervention.prediction
        two_runs = intervention.ablated is not intervention.clean  # else nothing to look up in the other
        response["prediction"] = {"top": top_tokens(engine, clean, ablated if two_runs else None, "ablated"),
                                  "top_ablated": top_tokens(engine, ablated, clean if two_runs else None, "clean"),
                                  "logprob": np.round(clean.next_logprob.astype(np.float64), 5).tolist(),
                                  "logprob_ablated": np.round(ablated.next_logprob.astype(np.float64), 5).tolist()}


def top_tokens(engine, prediction, other, other_name: str) -> list[dict]:
    """The likeliest next tokens of one pass, each with its probability and rank in the `other` pass ("p_clean",
    "rank_clean" or "p_ablated", "rank_ablated") when there is another and both passes know every token's
    probability (exports with last_logprob)."""
    tokens = []
    for token, logprob in zip(prediction.top_ids.tolist(), prediction.top_logprob):
        entry = {"id": token, "token": engine.display(token), "p": round(float(np.exp(logprob)), 6)}
        if other is not None and prediction.last_logprob is not None and other.last_logprob is not None:
            # 6 significant digits, not decimals: a guess the other run all but rules out is the point
            entry[f"p_{other_name}"] = float(f"{np.exp(float(other.last_logprob[token])):.6g}")
            entry[f"rank_{other_name}"] = other.rank_of(token)
        tokens.append(entry)
    return tokens


def respond(engine, options, result) -> dict:
    """/api/attention's answer for one computed sentence (server/compare.py answers with two of them)."""
    n_layer, n_head, n_tokens, _ = result.attention.shape
    layer = options.layer
    heads = label_heads(result.attention, result.ids, sink_aware=options.sink_aware)
    response = {
        "model": engine.name,
        "synthetic": engine.synthetic,
        "tokens": result.tokens,
        "ids": result.ids,
        "offsets": [list(span) for span in result.offsets],
        "n_layer": n_layer,
        "n_head": n_head,
        "n_tokens": n_tokens,
        "prepend_bos": options.prepend_bos,
        "sink_aware": options.sink_aware,
        "ablate": [list(pair) for pair in options.ablate],
        "heads": heads,
        "layers": [{"counts": counts} for counts in layer_counts(heads)],
        "can_show": can_show(result.ids),  # whether a head's usual job could show on this sentence (the atlas's rule)
    }
    attention = result.attention if layer is None else result.attention[layer:layer + 1]
    if options.format != "summary":
        response["attention_layers"] = list(range(n_layer)) if layer is None else [layer]
    if options.format == "json":
        response["attention"] = np.round(attention.astype(np.float64), 7)
    elif options.format == "packed":
        if layer is None and n_tokens > current_app.config["MAX_PACKED_ALL_LAYERS_TOKENS"]:
            # All layers of a long sentence are megabytes; the page asks for the layer it shows instead.
            response["attention_layers"] = []
            response["attention_per_layer"] = True
        else:
            response["attention_packed"] = pack(attention)
    return response


def pack(attention: np.ndarray) -> dict:
    """(L, H, T, T) → each head's lower triangle (row by row, keys 0..i) as little-endian uint16, base64."""
    n_tokens = attention.shape[-1]
    rows, keys = np.tril_indices(n_tokens)
    quantized = np.rint(attention[..., rows, keys] * PACKED_SCALE).astype("<u2")  # (L, H, T(T+1)/2)
    return {"encoding": "uint16-tril-base64", "scale": PACKED_SCALE, "shape": list(attention.shape),
            "data": base64.b64encode(quantized.tobytes()).decode("ascii")}
