"""Find a GPT-2-style tokenizer in a directory and turn it into one HF `tokenizers` object.

Accepted layouts, first match wins:
- `tokenizer.json` (Hugging Face `tokenizers` format, as on the Hub),
- `vocab.json` + `merges.txt` (Hugging Face's names for GPT-2's BPE files),
- `encoder.json` + `vocab.bpe` (OpenAI's names, as in `export/assets/gpt2-tokenizer/`).
"""

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

from twelve_heads.errors import HeadsError

# GPT-2's vocabulary, shipped with the package (MIT, see the LICENSE beside it): the offline tokenizer.
GPT2_TOKENIZER_DIR = Path(__file__).parent / "assets" / "gpt2-tokenizer"

BPE_PAIRS = (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe"))


def find_tokenizer(directory: Path) -> Tokenizer | None:
    """The tokenizer in `directory`, or None when it holds none of the accepted layouts."""
    directory = Path(directory)
    if (directory / "tokenizer.json").is_file():
        try:
            return Tokenizer.from_file(str(directory / "tokenizer.json"))
        except Exception as err:  # tokenizers raises a bare Exception on a bad file
            raise HeadsError(f"{directory / 'tokenizer.json'} is not a valid tokenizer file ({err}); "
                             "replace it or pass --tokenizer with a good one") from None
    for vocab_name, merges_name in BPE_PAIRS:
        if (directory / vocab_name).is_file() and (directory / merges_name).is_file():
            return byte_level_bpe(directory / vocab_name, directory / merges_name)
    return None


def load_tokenizer(directory: Path) -> Tokenizer:
    tokenizer = find_tokenizer(directory)
    if tokenizer is None:
        raise HeadsError(f"no tokenizer in {directory}: expected tokenizer.json, vocab.json + merges.txt, "
                         "or encoder.json + vocab.bpe")
    return tokenizer


def byte_level_bpe(vocab_path: Path, merges_path: Path) -> Tokenizer:
    """GPT-2's tokenizer: byte-level BPE, no prefix space, offsets into the original text."""
    try:
        vocab = json.loads(Path(vocab_path).read_text(encoding="utf-8"))
        merges = [tuple(line.split(" ")) for line in Path(merges_path).read_text(encoding="utf-8").splitlines()
                  if line and not line.startswith("#version")]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HeadsError(f"could not read the tokenizer files {vocab_path} and {merges_path}: {err}") from None
    if any(len(merge) != 2 for merge in merges):
        raise HeadsError(f"{merges_path} is not a BPE merges file (each line must hold two symbols)")
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    if "<|endoftext|>" in vocab:
        tokenizer.add_special_tokens(["<|endoftext|>"])
    return tokenizer
