"""The engine: loads only complete, consistent model directories, rejects bad text with a clear message,
never imports torch, and is safe to share between threads."""

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from conftest import REPO, TINY_POSITIONS, TROPHY
from twelve_heads.modeldir import checksums
from twelve_heads.server.engine import Engine
from twelve_heads.errors import InputError, ModelError


def test_importing_and_using_the_server_never_imports_torch(tiny_model):
    script = f"""
import sys
import twelve_heads.server, twelve_heads.server.engine, twelve_heads.server.heads
from twelve_heads.server.engine import Engine
result = Engine.load({str(tiny_model)!r}).attend("Hello world", prepend_bos=True)
assert result.attention.shape == (2, 4, 3, 3)
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'optimum'))
assert not heavy, heavy
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.fixture
def model_copy(tmp_path, tiny_model):
    """A private copy of models/tiny to damage."""
    return shutil.copytree(tiny_model, tmp_path / "tiny")


def edit_manifest(model_dir, **changes):
    path = model_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            manifest.pop(key)
        else:
            manifest[key] = value
    path.write_text(json.dumps(manifest))


def truncate_model(model_dir):
    data = (model_dir / "model.onnx").read_bytes()
    (model_dir / "model.onnx").write_bytes(data[: len(data) // 3])
    edit_manifest(model_dir, files=checksums(model_dir))


def other_tokenizer(model_dir):
    edit_manifest(model_dir, vocab_size=1000)


MODEL_FAULTS = [
    (lambda d: shutil.rmtree(d), "model directory {d} does not exist; export one with `twelve-heads export`"),
    (lambda d: (d / "manifest.json").unlink(), "{d}/manifest.json is missing; re-export it"),
    (lambda d: (d / "manifest.json").write_text("{not json"), "{d}/manifest.json is not valid JSON"),
    (lambda d: (d / "manifest.json").write_text("[1, 2]"), "{d}/manifest.json must hold a JSON object"),
    (lambda d: edit_manifest(d, n_head=None), "{d}/manifest.json has no valid 'n_head' (expected int)"),
    (lambda d: edit_manifest(d, n_layer="2"), "{d}/manifest.json has no valid 'n_layer' (expected int)"),
    (lambda d: (d / "model.onnx").unlink(), "{d}/model.onnx is missing; re-export it"),
    (lambda d: (d / "model.onnx").write_bytes((d / "model.onnx").read_bytes()[:-10]),
     "{d}/model.onnx does not match the checksum in its manifest (damaged or replaced)"),
    (truncate_model, "{d}/model.onnx could not be loaded ("),
    (lambda d: edit_manifest(d, n_layer=3), "{d}/model.onnx has no output 'attentions.2', but its manifest says 3 layers"),
    (lambda d: edit_manifest(d, n_head=12), "{d}/model.onnx output 'attentions.0' has shape ['batch_size', 4, "
                                            "'sequence_length', 'sequence_length'], but the manifest says 12 heads"),
    (lambda d: (d / "tokenizer.json").unlink(), "{d}/tokenizer.json is missing"),
    (lambda d: ((d / "tokenizer.json").write_text("{}"), edit_manifest(d, files=checksums(d))),
     "{d}/tokenizer.json is not a valid tokenizer"),
    (other_tokenizer, "{d}/tokenizer.json has 50,257 tokens but the model has 1,000 embeddings: it belongs to "
                      "another model"),
]


@pytest.mark.parametrize("damage, message", MODEL_FAULTS,
                         ids=["no-dir", "no-manifest", "manifest-not-json", "manifest-not-object", "manifest-key",
                              "manifest-type", "no-onnx", "checksum", "truncated-onnx", "missing-layer",
                              "head-mismatch", "no-tokenizer", "bad-tokenizer", "foreign-tokenizer"])
def test_load_names_the_file_and_the_fix(model_copy, damage, message):
    damage(model_copy)
    with pytest.raises(ModelError) as raised:
        Engine.load(model_copy)
    assert message.format(d=model_copy) in str(raised.value)


def long_text(n_words):
    return " ".join(["word"] * n_words)


@pytest.mark.parametrize("text, message", [
    ("", "the text is empty; type a sentence to look at"),
    ("   \n\t ", "the text is empty; type a sentence to look at"),
    (None, '"text" must be a string, not null'),  # the API's wording (InputError.wrong_type)
    (42, '"text" must be a string, not a number'),
    (["a"], '"text" must be a string, not a list'),
    (long_text(TINY_POSITIONS + 1), f"the sentence has {TINY_POSITIONS + 1:,} tokens; this model reads at most "
                                    f"{TINY_POSITIONS:,}. Shorten it"),
    ("a" * 20_001, f"the text has 20,001 characters; this model reads at most {TINY_POSITIONS} tokens (about 200 "
                    "characters of English). Shorten it"),
    ("ok \ud800 then", "the text has an invalid character at position 3 (a lone surrogate); remove it"),
], ids=["empty", "whitespace", "none", "int", "list", "too-many-tokens", "too-many-chars", "lone-surrogate"])
def test_attend_rejects_bad_text_with_a_message(tiny_model, text, message):
    engine = Engine.load(tiny_model)
    with pytest.raises(InputError) as raised:
        engine.attend(text)
    assert str(raised.value) == message


def test_token_limit_counts_the_prepended_bos(tiny_model):
    engine = Engine.load(tiny_model)
    assert engine.attend(long_text(TINY_POSITIONS)).attention.shape[-1] == TINY_POSITIONS
    with pytest.raises(InputError, match=f"has {TINY_POSITIONS + 1} tokens; this model reads at most {TINY_POSITIONS}"):
        engine.attend(long_text(TINY_POSITIONS), prepend_bos=True)


def test_configured_maximum_below_the_model_limit(tiny_model):
    engine = Engine.load(tiny_model, max_tokens=8)
    assert engine.max_tokens == 8
    with pytest.raises(InputError, match="the sentence has 9 tokens; this model reads at most 8"):
        engine.attend(long_text(9))


@pytest.mark.parametrize("text", [
    "a", "😀 emoji and a flag 🇫🇷", "e\u0301 combining", "שלום עולם right to left", "zero\u200bwidth\u200djoiner",
    "nul\x00 and \x07 bell", "<img src=x onerror=alert(1)>", "<|endoftext|> typed by hand",
], ids=["one-token", "emoji", "combining", "rtl", "zero-width", "control", "html", "special-token"])
def test_any_unicode_text_gives_a_causal_row_stochastic_attention(tiny_model, text):
    result = Engine.load(tiny_model).attend(text)
    n = len(result.ids)
    assert result.attention.shape == (2, 4, n, n) and len(result.tokens) == len(result.offsets) == n
    np.testing.assert_allclose(result.attention.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(result.attention, k=1) == 0)
    assert all(0 <= start <= end <= len(text) for start, end in result.offsets)
    assert all(isinstance(token, str) and token for token in result.tokens)


def test_multibyte_fragments_display_as_bytes(tiny_model):
    result = Engine.load(tiny_model).attend("🤗")
    assert result.tokens == ["\\xf0\\x9f", "\\xa4", "\\x97"]


def test_one_engine_serves_many_threads(tiny_model):
    engine = Engine.load(tiny_model)
    sentences = [TROPHY, "Hello world", "Alice met Bob and she smiled", long_text(TINY_POSITIONS)] * 8
    expected = {text: engine.attend(text).attention for text in set(sentences)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(engine.attend, sentences))
    for text, result in zip(sentences, results):
        np.testing.assert_array_equal(result.attention, expected[text])
