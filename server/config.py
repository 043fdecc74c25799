"""Every configuration key, its default, the environment variable that overrides it, and what it means.

`create_app(test_config)` starts from these defaults, applies the environment, then `test_config`. The README
lists each key (tests/test_api.py checks that it does).
"""

from dataclasses import dataclass

from twelve_heads.modeldir import DEFAULT_MODELS_DIR, MODELS_DIR_ENV


@dataclass(frozen=True)
class Setting:
    key: str
    default: object
    env: str
    help: str


SETTINGS = (
    Setting("MODELS_DIR", DEFAULT_MODELS_DIR, MODELS_DIR_ENV,
            "Directory holding exported models, one folder each (models/NAME/manifest.json, model.onnx, tokenizer.json)."),
    Setting("DEFAULT_MODEL", "gpt2", "HEADS_MODEL",
            "Model used when a request names none. If it is not exported, the first model that loads is used."),
    Setting("MAX_TOKENS", None, "HEADS_MAX_TOKENS",
            "Most tokens a sentence may have (the prepended <|endoftext|> included); empty means the model's own limit."),
    Setting("MAX_TEXT_CHARS", 20_000, "HEADS_MAX_TEXT_CHARS",
            "Most characters a sentence may have; checked before tokenizing."),
    Setting("MAX_CONTENT_LENGTH", 256 * 1024, "HEADS_MAX_CONTENT_LENGTH",
            "Largest request body in bytes; larger requests get 413."),
    Setting("MAX_JSON_ATTENTION_TOKENS", 128, "HEADS_MAX_JSON_ATTENTION_TOKENS",
            "Longest sentence for which format=json returns the full (L, H, T, T) attention as nested lists."),
    Setting("MAX_PACKED_ALL_LAYERS_TOKENS", 192, "HEADS_MAX_PACKED_ALL_LAYERS_TOKENS",
            "Longest sentence for which format=packed returns every layer in one response; longer ones are "
            "fetched one layer at a time (the page does this by itself)."),
    Setting("CACHE_BYTES", 256 * 1024 * 1024, "HEADS_CACHE_BYTES",
            "Memory for cached responses to repeated sentences, in bytes; 0 turns the cache off."),
    Setting("LONG_SENTENCE_TOKENS", 256, "HEADS_LONG_SENTENCE_TOKENS",
            "Sentences longer than this take LONG_SENTENCE_CONCURRENCY slots: at 1,024 tokens one request holds ~1 GB."),
    Setting("LONG_SENTENCE_CONCURRENCY", 1, "HEADS_LONG_SENTENCE_CONCURRENCY",
            "How many long sentences a worker computes at once; the others wait their turn, so memory stays bounded."),
    Setting("ORT_THREADS", None, "HEADS_ORT_THREADS",
            "onnxruntime intra-op threads per model; empty means one per core."),
    Setting("RATE_LIMIT_PER_MINUTE", 0, "HEADS_RATE_LIMIT_PER_MINUTE",
            "Most /api/attention and /api/compare requests one client address may make per minute (bursts up to that many), "
            "per worker process; over it they get 429. 0 turns the limit off."),
    Setting("TRUSTED_PROXIES", "", "HEADS_TRUSTED_PROXIES",
            "Comma-separated addresses or networks (127.0.0.1, 10.0.0.0/8) of reverse proxies whose "
            "X-Forwarded-For names the client for the rate limit; empty means the peer address is the client."),
)

DEFAULTS = {setting.key: setting.default for setting in SETTINGS}


def from_environment(environ) -> dict:
    """Settings given in the environment, converted to the default's type (ints stay ints)."""
    values = {}
    for setting in SETTINGS:
        raw = environ.get(setting.env)
        if raw is None or raw == "":
            continue
        integer = isinstance(setting.default, int) or setting.key in ("MAX_TOKENS", "ORT_THREADS")
        try:
            values[setting.key] = int(raw) if integer else raw
        except ValueError:
            raise SystemExit(f"{setting.env}={raw!r} must be a whole number ({setting.help})") from None
    return values
