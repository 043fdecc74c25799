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

bp = Blueprint("api", __name__)

FORMATS = ("summary", "json", "packed")  # summary: labels only; json: + nested floats; packed: + uint16 for the page
FIELDS = ("text", "model", "prepend_bos", "sink_aware", "format", "layer")
TOKEN_FIELDS = ("text", "model", "prepend_bos")  # /api/tokens: what decides how a sentence tokenizes
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
    key = (engine.name, options["text"], options["prepend_bos"], options["sink_aware"], options["format"],
           options["layer"])
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


@bp.post("/api/tokens")
def tokens():
    """How many tokens a text is for a model, and the most it reads: the page's live count as the student types.
    A text over the token limit is counted, not refused; text that cannot be a sentence gets the usual 400."""
    options = parse_request(TOKEN_FIELDS)
    engine = current_app.extensions["heads.models"].get(options["model"])
    ids, _ = engine.encode(options["text"], prepend_bos=options["prepend_bos"])
    return {"n_tokens": len(ids), "max_tokens": engine.max_tokens}


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
    result = engine.attend_ids(ids, offsets)
    n_layer, n_head, n_tokens, _ = result.attention.shape
    layer = options["layer"]
    if layer is not None and not 0 <= layer < n_layer:
        raise InputError(f"layer must be between 0 and {n_layer - 1} for model {engine.name!r}, not {layer}")
    heads = label_heads(result.attention, result.ids, sink_aware=options["sink_aware"])
    response = {
        "model": engine.name,
        "synthetic": engine.synthetic,
        "tokens": result.tokens,
        "ids": result.ids,
        "offsets": [list(span) for span in result.offsets],
        "n_layer": n_layer,
        "n_head": n_head,
        "n_tokens": n_tokens,
        "prepend_bos": options["prepend_bos"],
        "sink_aware": options["sink_aware"],
        "heads": heads,
        "layers": [{"counts": counts} for counts in layer_counts(heads)],
    }
    attention = result.attention if layer is None else result.attention[layer:layer + 1]
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


def pack(attention: np.ndarray) -> dict:
    """(L, H, T, T) → each head's lower triangle (row by row, keys 0..i) as little-endian uint16, base64."""
    n_tokens = attention.shape[-1]
    rows, keys = np.tril_indices(n_tokens)
    quantized = np.rint(attention[..., rows, keys] * PACKED_SCALE).astype("<u2")  # (L, H, T(T+1)/2)
    return {"encoding": "uint16-tril-base64", "scale": PACKED_SCALE, "shape": list(attention.shape),
            "data": base64.b64encode(quantized.tobytes()).decode("ascii")}


def parse_request(fields: tuple[str, ...] = FIELDS) -> dict:
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
    unknown = sorted(set(payload) - set(fields))
    if unknown:
        shown = unknown[0] if len(unknown[0]) <= 40 else unknown[0][:40] + "…"
        raise InputError(f"unknown field {shown!r}; the fields are: {', '.join(fields)}")
    options = {
        "text": payload.get("text"),
        "model": payload.get("model"),
        "prepend_bos": payload.get("prepend_bos", False),
        "sink_aware": payload.get("sink_aware", False),
        "format": payload.get("format", "summary"),
        "layer": payload.get("layer"),
    }
    if options["text"] is None:
        raise InputError('"text" is required: the sentence to look at')
    if not isinstance(options["text"], str):
        raise InputError(f'"text" must be a string, not {json_type(options["text"])}')
    if options["model"] is not None and not isinstance(options["model"], str):
        raise InputError(f'"model" must be a string (a name from /api/models), not {json_type(options["model"])}')
    for key in ("prepend_bos", "sink_aware"):
        if not isinstance(options[key], bool):
            raise InputError(f'"{key}" must be true or false, not {json_type(options[key])}')
    if options["format"] not in FORMATS:
        raise InputError(f'"format" must be one of {", ".join(FORMATS)}')
    if options["layer"] is not None and (isinstance(options["layer"], bool) or not isinstance(options["layer"], int)):
        raise InputError(f'"layer" must be a whole number, not {json_type(options["layer"])}')
    return options


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
