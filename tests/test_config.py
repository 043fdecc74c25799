"""Settings are typed data: each is read from the environment as its type, and the engine's defaults are theirs."""

import pytest

from twelve_heads.server import create_app, engine
from twelve_heads.server.config import DEFAULTS, SETTINGS, from_environment

BY_KEY = {setting.key: setting for setting in SETTINGS}


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda setting: setting.key)
def test_every_default_is_of_its_settings_type_or_unset(setting):
    assert setting.type in (int, str)
    assert setting.default is None or type(setting.default) is setting.type


def test_the_environment_is_read_as_each_settings_type():
    environ = {"HEADS_MAX_TOKENS": "512", "HEADS_ORT_THREADS": "1", "HEADS_CACHE_BYTES": "0",
               "HEADS_MODEL": "demo", "HEADS_TRUSTED_PROXIES": "127.0.0.1", "HEADS_MODELS_DIR": "/srv/models",
               "HEADS_RATE_LIMIT_PER_MINUTE": "", "UNRELATED": "x"}  # empty means unset
    assert from_environment(environ) == {"MAX_TOKENS": 512, "ORT_THREADS": 1, "CACHE_BYTES": 0,
                                         "DEFAULT_MODEL": "demo", "TRUSTED_PROXIES": "127.0.0.1",
                                         "MODELS_DIR": "/srv/models"}


@pytest.mark.parametrize("key", [setting.key for setting in SETTINGS if setting.type is int])
def test_a_whole_number_setting_that_is_not_one_stops_the_server_with_its_name(key):
    setting = BY_KEY[key]
    with pytest.raises(SystemExit) as raised:
        from_environment({setting.env: "lots"})
    assert str(raised.value) == f"{setting.env}='lots' must be a whole number ({setting.help})"


def test_the_engine_alone_behaves_as_the_server_by_default():
    """The engine's own defaults are the settings' defaults: one home, in the engine, which runs without Flask."""
    assert DEFAULTS["MAX_TEXT_CHARS"] == engine.MAX_TEXT_CHARS
    assert DEFAULTS["LONG_SENTENCE_TOKENS"] == engine.LONG_SENTENCE_TOKENS


def test_the_settings_reach_every_engine(models_dir):
    app = create_app({"MODELS_DIR": str(models_dir), "DEFAULT_MODEL": "tiny", "MAX_TOKENS": 12,
                      "MAX_TEXT_CHARS": 300, "LONG_SENTENCE_TOKENS": 7})
    tiny = app.extensions["heads.models"].get("tiny")
    assert (tiny.max_tokens, tiny.max_chars, tiny.long_sentence_tokens) == (12, 300, 7)
    assert tiny.is_long(8) and not tiny.is_long(7)
