"""The JSON API: /api/models, /api/attention, /healthz. Input is validated here, where it enters."""

import base64
import gzip
from urllib.parse import unquote_to_bytes

import numpy as np
import orjson
from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from twelve_heads.errors import InputError, ModelError

from .engine import release_freed_memory
from .heads import label_heads, layer_counts
from .intervene import Pass, intervene

bp = Blueprint("api", __name__)

FORMATS = ("summary", "json", "packed")  # summary: labels only; json: + nested floats; packed: + uint16 for the page
FIELDS = ("text", "model", "prepend_bos", "sink_aware", "format", "layer", "ablate", "predict")
ABLATE_EXAMPLE = "[[4, 11], [5, 1]]"
GZIP_LEVEL = 1  # the page's 16-token answer: 48 KB in 1.0 ms; level 5 saves 2 KB for half a millisecond more
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
    return {"models": summaries, "default": default}


@bp.route("/api/attention", methods=["GET", "POST"])
def attention():
    options = parse_request()
    cache = current_app.extensions["heads.cache"]
    registry = current_app.extensions["heads.models"]
    engine = registry.get(options["model"])
    check_intervention(engine, options)
    key = (engine.name, options["text"], options["prepend_bos"], options["sink_aware"], options["format"],
           options["layer"], options["ablate"], options["predict"])
    body = cache.get(key)  # kept gzipped: cheaper to send, and four times as many fit in CACHE_BYTES
    if body is None:
        # orjson: the 144 heads' JSON in 0.05 ms where the standard library takes 0.5 (and the numpy array of
        # format=json directly, without a list of millions of floats first).
        body = gzip.compress(orjson.dumps(compute(engine, options), option=orjson.OPT_SERIALIZE_NUMPY),
                             compresslevel=GZIP_LEVEL, mtime=0)
        cache.put(key, body)
    if "gzip" in request.accept_encodings:
        response = Response(body, mimetype="application/json")
        response.headers["Content-Encoding"] = "gzip"
    else:
        response = Response(gzip.decompress(body), mimetype="application/json")
    response.vary.add("Accept-Encoding")
    return response


def compute(engine, options) -> dict:
    ids, offsets = engine.tokenize(options["text"], prepend_bos=options["prepend_bos"])
    if len(ids) <= current_app.config["LONG_SENTENCE_TOKENS"]:
        return describe(engine, options, ids, offsets)
    with current_app.extensions["heads.long_sentences"]:  # (L, H, T, T) at T = 1,024 is 600 MB: one at a time
        try:
            return describe(engine, options, ids, offsets)
        finally:  # the activations and the attention array are freed by now; without this glibc keeps them
            release_freed_memory()


def describe(engine, options, ids, offsets) -> dict:
    layer = options["layer"]
    if layer is not None and not 0 <= layer < engine.n_layer:
        raise InputError(f"layer must be between 0 and {engine.n_layer - 1} for model {engine.name!r}, not {layer}")
    intervention = run_intervention(engine, options, ids)
    attention = engine.run(ids) if intervention is None else intervention.attention
    n_layer, n_head, n_tokens, _ = attention.shape
    heads = label_heads(attention, ids, sink_aware=options["sink_aware"])
    response = {
        "model": engine.name,
        "synthetic": engine.synthetic,
        "tokens": [engine.display(i) for i in ids],
        "ids": ids,
        "offsets": [list(span) for span in offsets],
        "n_layer": n_layer,
        "n_head": n_head,
        "n_tokens": n_tokens,
        "prepend_bos": options["prepend_bos"],
        "sink_aware": options["sink_aware"],
        "ablate": [list(pair) for pair in options["ablate"]],
        "heads": heads,
        "layers": [{"counts": counts} for counts in layer_counts(heads)],
    }
    if intervention is not None:
        describe_intervention(engine, options, intervention, response)
    attention = attention if layer is None else attention[layer:layer + 1]
    if options["format"] != "summary":
        response["attention_layers"] = list(range(n_layer)) if layer is None else [layer]
    if options["format"] == "json":
        limit = current_app.config["MAX_JSON_ATTENTION_TOKENS"]
        if n_tokens > limit:
            raise InputError(f"format=json returns L×H×T×T numbers; it is limited to {limit} tokens and this "
                             f"sentence has {n_tokens}. Shorten it, ask for one layer, or use format=packed")
        response["attention"] = np.round(attention.astype(np.float64), 7)
    elif options["format"] == "packed":
        if layer is None and n_tokens > current_app.config["MAX_PACKED_ALL_LAYERS_TOKENS"]:
            # All layers of a long sentence are megabytes; the page asks for the layer it shows instead.
            response["attention_layers"] = []
            response["attention_per_layer"] = True
        else:
            response["attention_packed"] = pack(attention)
    return response


def run_intervention(engine, options, ids):
    """The clean and ablated passes, or None for a plain request of a model that cannot intervene. The clean
    pass of a sentence is kept in the response cache (under its own key, counted in CACHE_BYTES): knocking
    heads out after looking, or knocking out one more, computes only the ablated pass."""
    limit = current_app.config["MAX_PACKED_ALL_LAYERS_TOKENS"]  # a clean pass of 192 tokens is 21 MB
    if options["ablate"] and len(ids) > limit:
        raise InputError(f'"ablate" works on sentences of up to {limit} tokens (it runs the sentence twice); this '
                         f"one has {len(ids)}. Shorten it")
    if not engine.can_intervene or (len(ids) > limit and not options["predict"]):
        return None
    cache = current_app.extensions["heads.cache"]
    key = ("clean pass", engine.name, tuple(ids))
    cached = cache.get(key)
    result = intervene(engine, ids, options["ablate"], options["predict"], cached)
    if result.clean is not cached and len(ids) <= limit:
        for array in (result.clean.attention, result.clean.residual):
            array.flags.writeable = False  # shared by the requests that find it
        cache.put(key, result.clean, size=result.clean.nbytes)
    return result


def describe_intervention(engine, options, intervention, response: dict) -> None:
    """Add what knocking heads out changed: each head's `change` and `knocked_out`, and `prediction`."""
    if options["ablate"]:
        knocked_out = set(options["ablate"])
        for layer, heads in enumerate(response["heads"]):
            for head, description in enumerate(heads):
                description["change"] = round(float(intervention.change[layer, head]), 6)
                description["knocked_out"] = (layer, head) in knocked_out
    if options["predict"]:
        clean, ablated = intervention.clean.prediction, intervention.prediction
        response["prediction"] = {"top": top_tokens(engine, clean), "top_ablated": top_tokens(engine, ablated),
                                  "logprob": np.round(clean.next_logprob.astype(np.float64), 5).tolist(),
                                  "logprob_ablated": np.round(ablated.next_logprob.astype(np.float64), 5).tolist()}


def top_tokens(engine, prediction) -> list[dict]:
    return [{"id": int(token), "token": engine.display(int(token)), "p": round(float(np.exp(logprob)), 6)}
            for token, logprob in zip(prediction.top_ids, prediction.top_logprob)]


def pack(attention: np.ndarray) -> dict:
    """(L, H, T, T) → each head's lower triangle (row by row, keys 0..i) as little-endian uint16, base64."""
    n_tokens = attention.shape[-1]
    rows, keys = np.tril_indices(n_tokens)
    quantized = np.rint(attention[..., rows, keys] * PACKED_SCALE).astype("<u2")  # (L, H, T(T+1)/2)
    return {"encoding": "uint16-tril-base64", "scale": PACKED_SCALE, "shape": list(attention.shape),
            "data": base64.b64encode(quantized.tobytes()).decode("ascii")}


def parse_request() -> dict:
    if request.method == "POST":
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        if request.content_length is None and len(request.get_data(cache=True)) >= limit:
            raise RequestEntityTooLarge()  # a chunked body has no length to refuse up front; Werkzeug cuts it here
        try:
            payload = request.get_json(silent=True)
        except RecursionError:
            raise InputError("the request body nests too deeply; send a flat object like "
                             '{"text": "Hello world"}') from None
        if payload is None:
            raise InputError('the request body must be JSON (UTF-8) like {"text": "Hello world"}, '
                             "sent with Content-Type: application/json")
        if not isinstance(payload, dict):
            raise InputError(f'the request body must be a JSON object like {{"text": "Hello world"}}, '
                             f"not {json_type(payload)}")
    else:
        try:
            unquote_to_bytes(request.query_string.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("the query string is not valid UTF-8; percent-encode the text as UTF-8") from None
        payload = {key: request.args.get(key) for key in request.args}
        for key in ("prepend_bos", "sink_aware"):
            if key in payload:
                payload[key] = query_bool(key, payload[key])
        if "layer" in payload:
            payload["layer"] = query_int("layer", payload["layer"])
        if "predict" in payload:
            payload["predict"] = query_bool("predict", payload["predict"])
        if "ablate" in payload:
            payload["ablate"] = query_json("ablate", payload["ablate"])
    unknown = sorted(set(payload) - set(FIELDS))
    if unknown:
        shown = unknown[0] if len(unknown[0]) <= 40 else unknown[0][:40] + "…"
        raise InputError(f"unknown field {shown!r}; the fields are: {', '.join(FIELDS)}")
    options = {
        "text": payload.get("text"),
        "model": payload.get("model"),
        "prepend_bos": payload.get("prepend_bos", False),
        "sink_aware": payload.get("sink_aware", False),
        "format": payload.get("format", "summary"),
        "layer": payload.get("layer"),
        "ablate": parse_ablate(payload.get("ablate", [])),
        "predict": payload.get("predict", False),
    }
    if options["text"] is None:
        raise InputError('"text" is required: the sentence to look at')
    if not isinstance(options["text"], str):
        raise InputError(f'"text" must be a string, not {json_type(options["text"])}')
    if options["model"] is not None and not isinstance(options["model"], str):
        raise InputError(f'"model" must be a string (a name from /api/models), not {json_type(options["model"])}')
    for key in ("prepend_bos", "sink_aware", "predict"):
        if not isinstance(options[key], bool):
            raise InputError(f'"{key}" must be true or false, not {json_type(options[key])}')
    if options["format"] not in FORMATS:
        raise InputError(f'"format" must be one of {", ".join(FORMATS)}')
    if options["layer"] is not None and (isinstance(options["layer"], bool) or not isinstance(options["layer"], int)):
        raise InputError(f'"layer" must be a whole number, not {json_type(options["layer"])}')
    return options


def parse_ablate(value) -> tuple[tuple[int, int], ...]:
    """`ablate` as sorted (layer, head) pairs, its types checked; the model's ranges are check_intervention's."""
    if not isinstance(value, list):
        raise InputError(f'"ablate" must be a list of [layer, head] pairs like {ABLATE_EXAMPLE}, not {json_type(value)}')
    pairs = []
    for index, pair in enumerate(value):
        if isinstance(pair, list) and any(isinstance(number, bool) for number in pair):
            raise InputError(f'"ablate" item {index} holds true or false; a head is [layer, head], two whole '
                             f"numbers like {ABLATE_EXAMPLE}")
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(number, int) for number in pair)):
            flat = isinstance(pair, list) and len(pair) <= 4 and all(isinstance(n, (int, float)) for n in pair)
            shown = orjson.dumps(pair).decode() if flat else json_type(pair)
            raise InputError(f'"ablate" item {index} must be a [layer, head] pair of two whole numbers like '
                             f"{ABLATE_EXAMPLE}, not {shown}")
        pairs.append((pair[0], pair[1]))
    return tuple(sorted(pairs))


def check_intervention(engine, options) -> None:
    """`ablate` and `predict` against the model, before anything is computed."""
    pairs = options["ablate"]
    if (pairs or options["predict"]) and not engine.can_intervene:
        raise InputError(f"model {engine.name!r} was exported before heads could be knocked out; re-export it "
                         "with `twelve-heads export` to use ablate and predict")
    if len(pairs) > engine.n_layer * engine.n_head:
        raise InputError(f'"ablate" lists {len(pairs):,} heads; model {engine.name!r} has {engine.n_layer * engine.n_head} '
                         "(list each head once)")
    for layer, head in pairs:
        if not (0 <= layer < engine.n_layer and 0 <= head < engine.n_head):
            raise InputError(f'"ablate" names head [{layer}, {head}]; model {engine.name!r} has layers 0–'
                             f"{engine.n_layer - 1} and heads 0–{engine.n_head - 1}")
    for previous, pair in zip(pairs, pairs[1:]):
        if previous == pair:
            raise InputError(f'"ablate" lists head [{pair[0]}, {pair[1]}] twice; list each head once')


def query_json(key: str, value: str):
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise InputError(f'"{key}" must be JSON like {ABLATE_EXAMPLE}, not {value[:40]!r}') from None


def query_bool(key: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise InputError(f'"{key}" must be true or false, not {value[:40]!r}')


def query_int(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InputError(f'"{key}" must be a whole number, not {value[:40]!r}') from None


def json_type(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)
