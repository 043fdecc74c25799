"""Every configuration key, its type, its default, the environment variable that overrides it, and what it means.

`create_app(test_config)` starts from these defaults, applies the environment, then `test_config`. The README
lists each key (tests/test_api.py checks that it does). What the engine also does alone (the character limit,
what counts as a long sentence) takes its default from server/engine.py, which needs no server to run.
"""

from dataclasses import dataclass

from twelve_heads.modeldir import DEFAULT_MODELS_DIR, MODELS_DIR_ENV

from . import engine

# A model's clean passes take at most this share of its weights' bytes: the prediction path then adds to an int8
# model what it adds to fp32, a share of its memory (issue 14's bar: 15%), not a fixed amount.
WEIGHT_BYTES_PER_CLEAN_PASS_BYTE = 16


@dataclass(frozen=True)
class Setting:
    key: str
    type: type  # int or str: what the environment's text is read as
    default: object  # of that type, or None for an optional setting left unset
    env: str
    help: str

    def parse(self, raw: str):
        """The environment's text as this setting's type; SystemExit naming the variable when it is not one."""
        try:
            return self.type(raw)
        except ValueError:
            raise SystemExit(f"{self.env}={raw!r} must be a whole number ({self.help})") from None


SETTINGS = (
    Setting("MODELS_DIR", str, DEFAULT_MODELS_DIR, MODELS_DIR_ENV,
            "Directory holding exported models, one folder each (models/NAME/manifest.json, model.onnx, tokenizer.json)."),
    Setting("DEFAULT_MODEL", str, "gpt2", "HEADS_MODEL",
            "Model used when a request names none. If it is not exported, the first model that loads is used."),
    Setting("MAX_TOKENS", int, None, "HEADS_MAX_TOKENS",
            "Most tokens a sentence may have (the prepended <|endoftext|> included); empty means the model's own limit."),
    Setting("MAX_TEXT_CHARS", int, engine.MAX_TEXT_CHARS, "HEADS_MAX_TEXT_CHARS",
            "Most characters a sentence may have; checked before tokenizing."),
    Setting("MAX_CONTENT_LENGTH", int, 256 * 1024, "HEADS_MAX_CONTENT_LENGTH",
            "Largest request body in bytes; larger requests get 413."),
    Setting("MAX_JSON_ATTENTION_TOKENS", int, 128, "HEADS_MAX_JSON_ATTENTION_TOKENS",
            "Longest sentence for which format=json returns the full (L, H, T, T) attention as nested lists."),
    Setting("MAX_PACKED_ALL_LAYERS_TOKENS", int, 192, "HEADS_MAX_PACKED_ALL_LAYERS_TOKENS",
            "Longest sentence for which format=packed returns every layer in one response; longer ones are "
            "fetched one layer at a time (the page does this by itself)."),
    Setting("CACHE_BYTES", int, 256 * 1024 * 1024, "HEADS_CACHE_BYTES",
            "Memory for cached responses to repeated sentences, in bytes; 0 turns the cache off."),
    Setting("CLEAN_PASS_BYTES", int, 32 * 1024 * 1024, "HEADS_CLEAN_PASS_BYTES",
            "Memory for the sentences' runs with every head, kept so that knocking heads out after looking runs "
            "only the run without them (2.4 MB a sentence at 64 tokens, 2.6 MB with its prediction), in bytes, per "
            f"model; 0 keeps none. A model keeps at most 1/{WEIGHT_BYTES_PER_CLEAN_PASS_BYTE} of its weights' bytes."),
    Setting("LONG_SENTENCE_TOKENS", int, engine.LONG_SENTENCE_TOKENS, "HEADS_LONG_SENTENCE_TOKENS",
            "Sentences longer than this take LONG_SENTENCE_CONCURRENCY slots, and the memory they need is handed "
            "back when they are done: at 1,024 tokens one request holds ~1 GB."),
    Setting("LONG_SENTENCE_CONCURRENCY", int, 1, "HEADS_LONG_SENTENCE_CONCURRENCY",
            "How many long sentences a worker computes at once; the others wait their turn, so memory stays bounded."),
    Setting("ORT_THREADS", int, None, "HEADS_ORT_THREADS",
            "onnxruntime intra-op threads per model; empty means one per core."),
    Setting("MICRO_BATCH", int, 0, "HEADS_MICRO_BATCH",
            "Most concurrent plain requests of one worker that run as one batch (fp32 models; a request that "
            "finds the model idle runs at once). 0 or 1 runs each alone; benchmarks/bench_microbatch.py measures it."),
    Setting("RATE_LIMIT_PER_MINUTE", int, 0, "HEADS_RATE_LIMIT_PER_MINUTE",
            "Most /api/attention and /api/compare requests one client address may make per minute (bursts up to "
            "that many), "
            "per worker process; over it they get 429. 0 turns the limit off."),
    Setting("TRUSTED_PROXIES", str, "", "HEADS_TRUSTED_PROXIES",
            "Comma-separated addresses or networks (127.0.0.1, 10.0.0.0/8) of reverse proxies whose "
            "X-Forwarded-For names the client for the rate limit; empty means the peer address is the client."),
)

DEFAULTS = {setting.key: setting.default for setting in SETTINGS}


def from_environment(environ) -> dict:
    """Settings given in the environment (an empty variable counts as unset), each read as its type."""
    return {setting.key: setting.parse(environ[setting.env]) for setting in SETTINGS if environ.get(setting.env)}
