"""A model directory's tokenizer, checked against its manifest, and what each GPT-2 token stands for as text."""

from functools import lru_cache
from pathlib import Path

from tokenizers import Tokenizer

from twelve_heads.errors import ModelError
from twelve_heads.modeldir import REEXPORT_HINT


def open_tokenizer(tokenizer_path: Path, manifest: dict) -> Tokenizer:
    try:
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
    except Exception as err:  # tokenizers raises a bare Exception for missing and malformed files alike
        missing = "is missing" if not tokenizer_path.exists() else f"is not a valid tokenizer ({str(err)[:200]})"
        raise ModelError(f"{tokenizer_path} {missing}; {REEXPORT_HINT}") from None
    if tokenizer.get_vocab_size() > manifest["vocab_size"]:
        raise ModelError(f"{tokenizer_path} has {tokenizer.get_vocab_size():,} tokens but the model has "
                         f"{manifest['vocab_size']:,} embeddings: it belongs to another model; {REEXPORT_HINT}")
    return tokenizer


@lru_cache(maxsize=1)
def byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, inverted: each of 256 printable characters stands for one byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    characters, extra = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            characters.append(256 + extra)
            extra += 1
    return {chr(character): byte for byte, character in zip(printable, characters)}


def token_display(token: str | None) -> str:
    """What a token stands for, as text: ' world'; a fragment of a multi-byte character shows its bytes."""
    if token is None:
        return "�"
    decoder = byte_decoder()
    if not all(character in decoder for character in token):
        return token  # a special token such as <|endoftext|>, or a non-byte-level vocabulary
    raw = bytes(decoder[character] for character in token)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(chr(b) if b < 0x80 else f"\\x{b:02x}" for b in raw)
