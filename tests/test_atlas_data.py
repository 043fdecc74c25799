"""Format checks for the head-atlas data files: the reference corpus and the GPT-2 small literature table."""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from twelve_heads.export.tokenizer import GPT2_TOKENIZER_DIR, load_tokenizer

DATA = Path(__file__).resolve().parents[1] / "server" / "data"

CORPUS_NAME = "atlas_corpus.json"
LITERATURE_NAME = "gpt2_small_literature.json"

KINDS = {"narrative", "dialogue", "list", "numbers-dates", "code", "coreference", "repeated", "names", "long"}
MIN_ITEMS = 200
MIN_PER_KIND = 20
MIN_TOKENS, MAX_TOKENS = 5, 120
LONG_MIN_TOKENS = 80
MIN_COREFERENCE_PAIRS = 10

ROLES = {"previous-token", "duplicate-token", "induction", "name-mover", "negative-name-mover",
         "s-inhibition", "backup-name-mover"}
N_LAYERS = N_HEADS = 12


def _load_json(name: str) -> dict:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(GPT2_TOKENIZER_DIR)


@pytest.fixture(scope="module")
def corpus() -> dict:
    return _load_json(CORPUS_NAME)


@pytest.fixture(scope="module")
def items(corpus) -> list[dict]:
    return corpus["items"]


@pytest.fixture(scope="module")
def literature() -> dict:
    return _load_json(LITERATURE_NAME)


def n_tokens(tokenizer, text: str) -> int:
    return len(tokenizer.encode(text).ids)


# ---------------------------------------------------------------------------------------------- corpus


def test_tokenizer_is_real_gpt2(tokenizer):
    # Known GPT-2 ids: a wrong or half-built tokenizer would make the length checks meaningless.
    assert tokenizer.encode("Hello world").ids == [15496, 995]
    assert tokenizer.encode("The trophy doesn't fit in the suitcase because it is too big.").ids == [
        464, 16383, 1595, 470, 4197, 287, 262, 45391, 780, 340, 318, 1165, 1263, 13]


def test_corpus_top_level(corpus):
    assert set(corpus) == {"description", "items"}
    description = corpus["description"]
    assert isinstance(description, str) and description.strip()
    assert "\n" not in description, "description must be one line"
    assert isinstance(corpus["items"], list)


def test_corpus_items_are_well_formed(items):
    bad = [(i, item) for i, item in enumerate(items)
           if not isinstance(item, dict) or set(item) != {"kind", "text"}
           or item["kind"] not in KINDS
           or not isinstance(item["text"], str) or not item["text"].strip() or item["text"] != item["text"].strip()]
    assert not bad, f"malformed items (need exactly kind+text, known kind, non-empty trimmed text): {bad[:5]}"


def test_corpus_has_enough_items(items):
    assert len(items) >= MIN_ITEMS


def test_every_kind_has_enough_items(items):
    counts = Counter(item["kind"] for item in items)
    short = {kind: counts.get(kind, 0) for kind in KINDS if counts.get(kind, 0) < MIN_PER_KIND}
    assert not short, f"kinds with fewer than {MIN_PER_KIND} items: {short}"


def test_token_counts_within_bounds(items, tokenizer):
    out_of_range = []
    for i, item in enumerate(items):
        n = n_tokens(tokenizer, item["text"])
        low = LONG_MIN_TOKENS if item["kind"] == "long" else MIN_TOKENS
        if not low <= n <= MAX_TOKENS:
            out_of_range.append((i, item["kind"], n, item["text"][:60]))
    assert not out_of_range, f"items outside {MIN_TOKENS}..{MAX_TOKENS} tokens (long: {LONG_MIN_TOKENS}..): " \
                             f"{out_of_range}"


def test_no_duplicate_texts(items):
    exact = Counter(item["text"] for item in items)
    assert not [t for t, c in exact.items() if c > 1], "exact duplicate texts"
    normalised = Counter(re.sub(r"\s+", " ", item["text"]).strip().casefold() for item in items)
    dupes = [t for t, c in normalised.items() if c > 1]
    assert not dupes, f"texts duplicated up to case/whitespace: {dupes[:3]}"


def _differs_in_one_unit(a: list, b: list) -> bool:
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1


def test_coreference_items_are_minimal_pairs(items, tokenizer):
    positions = [i for i, item in enumerate(items) if item["kind"] == "coreference"]
    assert len(positions) % 2 == 0, "coreference items must come in pairs"
    assert len(positions) // 2 >= MIN_COREFERENCE_PAIRS
    problems = []
    for first, second in zip(positions[0::2], positions[1::2]):
        if second != first + 1:
            problems.append((first, second, "pair members are not consecutive items"))
            continue
        a, b = items[first]["text"], items[second]["text"]
        one_word = _differs_in_one_unit(a.split(), b.split())
        one_token = _differs_in_one_unit(tokenizer.encode(a).ids, tokenizer.encode(b).ids)
        if not (one_word or one_token):
            problems.append((first, second, f"{a!r} vs {b!r} differ in more than one word/token"))
    assert not problems, problems


# ------------------------------------------------------------------------------------------ literature


def test_literature_top_level(literature):
    assert set(literature) == {"model", "sources", "heads"}
    assert literature["model"] == "gpt2"
    assert isinstance(literature["sources"], dict) and literature["sources"]
    assert isinstance(literature["heads"], list) and literature["heads"]


def test_literature_sources_are_complete(literature):
    bad = {}
    for key, source in literature["sources"].items():
        if not isinstance(source, dict) or set(source) != {"title", "authors", "year", "url", "checked"}:
            bad[key] = "needs exactly title, authors, year, url, checked"
        elif not all(isinstance(source[f], str) and source[f].strip() for f in ("title", "authors", "url", "checked")):
            bad[key] = "title, authors, url and checked must be non-empty strings"
        elif not re.fullmatch(r"\d{4}-\d{2}-\d{2}, against .+", source["checked"]) and not re.fullmatch(
                r"\d{4}-\d{2}-\d{2}, each head against .+", source["checked"]):
            bad[key] = "checked says when (YYYY-MM-DD) and against what each claim was checked"
        elif not (isinstance(source["year"], int) and not isinstance(source["year"], bool)
                  and 2015 <= source["year"] <= 2100):
            bad[key] = f"implausible year {source['year']!r}"
        elif not source["url"].startswith("https://"):
            bad[key] = f"url is not https: {source['url']}"
    assert not bad, bad


def _is_index(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def test_literature_heads_are_valid(literature):
    sources = literature["sources"]
    bad = []
    for i, entry in enumerate(literature["heads"]):
        if not isinstance(entry, dict) or set(entry) != {"layer", "head", "role", "source", "note"}:
            bad.append((i, "needs exactly layer, head, role, source, note"))
            continue
        if not (_is_index(entry["layer"]) and 0 <= entry["layer"] < N_LAYERS):
            bad.append((i, f"layer {entry['layer']!r} not in 0..{N_LAYERS - 1}"))
        if not (_is_index(entry["head"]) and 0 <= entry["head"] < N_HEADS):
            bad.append((i, f"head {entry['head']!r} not in 0..{N_HEADS - 1}"))
        if entry["role"] not in ROLES:
            bad.append((i, f"unknown role {entry['role']!r}"))
        if entry["source"] not in sources:
            bad.append((i, f"source {entry['source']!r} is not defined in sources"))
        note = entry["note"]
        if not isinstance(note, str) or not note.strip() or "\n" in note:
            bad.append((i, "note must be a non-empty single line"))
    assert not bad, bad


def test_literature_has_no_duplicate_entries(literature):
    exact = Counter(json.dumps(entry, sort_keys=True) for entry in literature["heads"])
    assert not [e for e, c in exact.items() if c > 1], "exact duplicate entries"
    claims = Counter((e["layer"], e["head"], e["role"], e["source"]) for e in literature["heads"])
    repeated = [claim for claim, c in claims.items() if c > 1]
    assert not repeated, f"the same (layer, head, role, source) claim appears more than once: {repeated}"


def test_every_literature_source_is_cited(literature):
    cited = {entry["source"] for entry in literature["heads"]}
    assert set(literature["sources"]) <= cited, f"unused sources: {set(literature['sources']) - cited}"
