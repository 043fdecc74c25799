"""The model directory's contract: what `export` writes into `models/NAME/` and `server` reads from it.

One home for the file names, the graph's input and output names, the manifest's schema and version, and the
checksum, so that the two sides cannot drift apart. Imports the standard library only (no Flask, no torch,
no onnxruntime): both the exporter and the torch-free server import it.

    models/NAME/
        manifest.json   what the model is (MANIFEST_KEYS) and the sha256 of every other file (`files`)
        model.onnx      input_ids (B, T), B sentences padded on the right, and head_mask (B, L, H) in;
                        attentions.0 … attentions.{L-1}, each (B, H, T, T), and the residual stream entering
                        the last block (B, T, n_embd) out
        predict.onnx    the last block, the final LayerNorm and the tied LM head: residual, head_mask and
                        input_ids in; each actual next token's log-probability, and after the last position the
                        top 5 and every token's log-probability out (PREDICT_OUTPUTS)
        embedding.bin   the token embedding table, raw: both graphs reference it as external data, and the
                        server hands one copy in memory to both sessions (manifest["intervention"]["embedding"])
        tokenizer.json  Hugging Face `tokenizers` format
        planted_heads.json   (the demo model only) each head's planted role
        atlas.json      (optional) each head's usual job over the reference corpus (server/atlas.py)
"""

import hashlib
import json
import os
import tempfile
from pathlib import Path

from .errors import ModelError

MODELS_DIR_ENV = "HEADS_MODELS_DIR"  # where models live, for the exporter and the server alike
DEFAULT_MODELS_DIR = "models"

MANIFEST = "manifest.json"
GRAPH = "model.onnx"
TOKENIZER = "tokenizer.json"
PLANTED_HEADS = "planted_heads.json"
PREDICT_GRAPH = "predict.onnx"
EMBEDDING = "embedding.bin"
ATLAS = "atlas.json"

MANIFEST_VERSION = 2  # raised when a reader of an older version would misread a newer directory (2: head_mask)
INPUT_IDS = "input_ids"
# Knocking heads out (zero-ablation): 1 keeps a head, 0 multiplies its weighted values z by zero. (B, L, H) float.
HEAD_MASK = "head_mask"
RESIDUAL = "residual"  # model.onnx's output and predict.onnx's input: (B, T, n_embd) entering the last block
NEXT_TOKEN_LOGPROB = "next_token_logprob"  # predict.onnx: (B, T - 1), log p(token i + 1 | tokens 0 … i)
TOP_IDS, TOP_LOGPROB = "top_ids", "top_logprob"  # predict.onnx: (B, TOP_K) after the last position, best first
# predict.onnx: (B, V), log p of every token after the last position, so that a token likely in one pass can be
# looked up in the other. Exports before it lack it; the engine then answers without those look-ups.
LAST_LOGPROB = "last_logprob"
PREDICT_OUTPUTS = (NEXT_TOKEN_LOGPROB, TOP_LOGPROB, TOP_IDS, LAST_LOGPROB)  # predict.onnx's outputs, in its order
TOP_K = 5
# manifest["intervention"] (written when the export adds head masks and predict.onnx): "embedding" is
# {"file", "initializer", "dtype", "shape"}, the table both graphs read under that initializer name.
INTERVENTION = "intervention"
BOS_TOKEN = "<|endoftext|>"  # GPT-2's document token, prepended as TransformerLens does
REEXPORT_HINT = "re-export it with `twelve-heads export`"

# Keys a manifest must hold for the server to use it, with their types. The exporter writes more
# (see export/build.py: provenance, validation, graph rewrites), which readers treat as information.
MANIFEST_KEYS = {"manifest_version": int, "name": str, "n_layer": int, "n_head": int, "n_positions": int,
                 "vocab_size": int, "synthetic": bool, "files": dict}
# Optional: true when sentences may share one run of the graph, each getting its attention alone within 1e-6
# (fp32). Absent in exports older than batching, whose graph fixed the batch at 1, and false for int8, whose
# activations are quantized with one scale per run: a sentence's numbers would depend on its batch-mates.
BATCHABLE = "batchable"
# What /api/models shows of each manifest.
SUMMARY_KEYS = ("name", "source", "n_layer", "n_head", "n_positions", "vocab_size", "bos_token_id", "synthetic",
                "precision", "description")


def default_models_dir(environ) -> Path:
    return Path(environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR)


def attention_output(layer: int) -> str:
    """The graph output holding layer `layer`'s attention probabilities."""
    return f"attentions.{layer}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksums(directory: Path) -> dict[str, str]:
    """sha256 of every file in `directory` but the manifest: the manifest's `files`."""
    return {path.name: file_sha256(path) for path in sorted(Path(directory).iterdir())
            if path.is_file() and path.name != MANIFEST}


def write_manifest(directory: Path, manifest: dict) -> None:
    """Write `manifest` with the version and the checksums of the files now in `directory`."""
    manifest = {"manifest_version": MANIFEST_VERSION, **manifest, "files": checksums(directory)}
    (Path(directory) / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def record_file(directory: Path, name: str) -> None:
    """Put `name`'s checksum into the manifest of `directory`, leaving every other entry as it is (a file added
    to a finished model directory, such as its atlas). The other files are not re-hashed: a damaged graph must
    stay refused, not be blessed with a new checksum."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    manifest["files"] = {**manifest["files"], name: file_sha256(directory / name)}
    write_atomically(directory / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def write_atomically(path: Path, text: str) -> None:
    """Write `path` so that a reader sees the old file or the new one, never half of one (a server may be reading
    the model directory)."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def intervenes(manifest: dict) -> bool:
    """Whether the model can knock heads out: its manifest has "intervention" (head_mask and predict.onnx)."""
    return bool(manifest.get(INTERVENTION))


def read_manifest(directory: Path) -> dict:
    """The manifest of `directory`, checked against MANIFEST_KEYS; ModelError naming the file and the fix."""
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path} is missing; {REEXPORT_HINT}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{path} is not valid JSON ({err}); {REEXPORT_HINT}") from None
    if not isinstance(manifest, dict):
        raise ModelError(f"{path} must hold a JSON object; {REEXPORT_HINT}")
    for key, kind in MANIFEST_KEYS.items():
        value = manifest.get(key)
        if not isinstance(value, kind) or (kind is int and (isinstance(value, bool) or value < 1)):
            raise ModelError(f"{path} has no valid {key!r} (expected {kind.__name__}); {REEXPORT_HINT}")
    if manifest["manifest_version"] > MANIFEST_VERSION:
        raise ModelError(f"{path} is version {manifest['manifest_version']}, newer than this Twelve Heads reads "
                         f"({MANIFEST_VERSION}); upgrade twelve-heads, or {REEXPORT_HINT}")
    return manifest


def verify_files(directory: Path, manifest: dict, names: tuple[str, ...], hint: str = REEXPORT_HINT) -> None:
    """Each file in `names` exists and matches its checksum in the manifest: a damaged or partial copy of a model
    directory is refused, not served. `hint` says how to make the file again."""
    for name in names:
        path = Path(directory) / name
        expected = manifest["files"].get(name)
        if expected is None:
            raise ModelError(f"{Path(directory) / MANIFEST} has no checksum for {name}; {hint}")
        if not path.is_file():
            raise ModelError(f"{path} is missing; {hint}")
        if file_sha256(path) != expected:
            raise ModelError(f"{path} does not match the checksum in its manifest (damaged or replaced); {hint}")
