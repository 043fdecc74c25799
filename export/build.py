"""From a checkpoint (Hub id or local directory) to a complete `models/NAME/` directory, atomically.

Steps: resolve the source (download when it is a Hub id) → load it as a GPT2Model with eager attention →
trace to ONNX with attention outputs → validate against PyTorch → (optionally) quantize → add the head mask
and the prediction graph, validated under head masks (export/intervene.py) → write the tokenizer and manifest
→ compute the head atlas with the finished graph (unless told not to) → move the finished directory into
place. Everything is built in a hidden `models/.building-NAME-*` directory; only the final rename makes
`models/NAME` appear, and an existing model of that name is replaced only by a complete one.
"""

import json
import logging
import os
import platform
import shutil
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from twelve_heads.errors import HeadsError
from twelve_heads.modeldir import BATCHABLE, BOS_TOKEN, GRAPH, INTERVENTION, PLANTED_HEADS, TOKENIZER, write_manifest

from .tokenizer import GPT2_TOKENIZER_DIR, find_tokenizer, load_tokenizer

log = logging.getLogger("export")

HUB_WEIGHT_PATTERNS = (["model*.safetensors", "model.safetensors.index.json"], ["pytorch_model*.bin", "pytorch_model.bin.index.json"])
HUB_OTHER_PATTERNS = ["config.json", "tokenizer.json", "vocab.json", "merges.txt"]
LIBRARIES = ("torch", "transformers", "optimum-onnx", "onnx", "onnxruntime", "tokenizers", "numpy")
BUILDING_PREFIX = ".building-"
REPLACED_PREFIX = ".replaced-"


def export_demo(models_dir: Path, name: str = "demo", int8: bool = False, atlas: bool = True) -> Path:
    """The planted-heads model (export/demo.py): hand-set weights, GPT-2's tokenizer, no download."""
    from .demo import build_planted_checkpoint

    with tempfile.TemporaryDirectory(prefix="twelve-heads-demo-") as scratch:
        log.info("building the planted-heads checkpoint …")
        planted = build_planted_checkpoint(Path(scratch) / "checkpoint")
        return export_model(str(Path(scratch) / "checkpoint"), name, models_dir, GPT2_TOKENIZER_DIR, int8=int8,
                            atlas=atlas, synthetic=True, extra_files={PLANTED_HEADS: planted},
                            source_label="planted-heads demo",
                            description="Synthetic GPT-2-shaped model with planted heads (hand-set weights) — not GPT-2.")


def export_model(source: str, name: str, models_dir: Path, tokenizer_dir: Path | None = None,
                 int8: bool = False, atlas: bool = True, synthetic: bool = False,
                 extra_files: dict[str, object] | None = None, source_label: str | None = None,
                 description: str | None = None) -> Path:
    """Export `source` to `models_dir/name`; return that path. Raises HeadsError with what to do."""
    check_name(name)
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_builds(models_dir, name)
    checkpoint = resolve_source(source)
    building = Path(tempfile.mkdtemp(prefix=f"{BUILDING_PREFIX}{name}-", dir=models_dir))
    building.chmod(0o755)  # mkdtemp makes it private; a model directory is for whoever serves it
    try:
        manifest = build(checkpoint, source_label or source, name, building, tokenizer_dir, int8, synthetic)
        manifest["description"] = description
        for filename, content in (extra_files or {}).items():
            write_json(building / filename, content)
        write_manifest(building, manifest)
        if atlas:
            add_atlas(building)
        return install(building, models_dir / name)
    finally:
        shutil.rmtree(building, ignore_errors=True)


def check_name(name: str) -> None:
    if not name or name.startswith(".") or "/" in name or "\\" in name or "\0" in name or len(name) > 100:
        raise HeadsError(f"invalid model name {name!r}: use letters, digits, '-', '_' or '.', not starting with '.'")


def remove_stale_builds(models_dir: Path, name: str) -> None:
    """Leftovers of an export that was killed (SIGKILL gives no chance to clean up). One killed between the
    two renames of `install` left the old model aside and no new one: put the old one back first."""
    for replaced in sorted(models_dir.glob(f"{REPLACED_PREFIX}{name}-*")):
        if (replaced / "old").is_dir() and not (models_dir / name).exists():
            log.info("restoring %s, set aside by an interrupted export", models_dir / name)
            os.rename(replaced / "old", models_dir / name)
    for prefix in (BUILDING_PREFIX, REPLACED_PREFIX):
        for stale in models_dir.glob(f"{prefix}{name}-*"):
            log.info("removing %s, left by an interrupted export", stale)
            shutil.rmtree(stale, ignore_errors=True)


def resolve_source(source: str) -> Path:
    """A local checkpoint directory, downloading `source` from the Hugging Face Hub first when it is an id."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise HeadsError(f"{path} has no config.json: pass a checkpoint directory (config.json + weights)")
        return path
    if path.exists():
        raise HeadsError(f"{path} is a file: pass a checkpoint directory (config.json + weights) or a Hub id")
    if source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise HeadsError(f"no such directory: {source}")
    return download(source)


def download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError)

    log.info("fetching %r from the Hugging Face Hub", repo_id)
    try:
        for weights in HUB_WEIGHT_PATTERNS:
            path = Path(snapshot_download(repo_id, allow_patterns=HUB_OTHER_PATTERNS + weights))
            if any(path.glob(weights[0])):
                return path
    except (RepositoryNotFoundError, GatedRepoError):
        raise HeadsError(f"no public model {repo_id!r} on the Hugging Face Hub; check the spelling, "
                         "or pass a local checkpoint directory") from None
    except (LocalEntryNotFoundError, OSError):
        raise HeadsError(f"could not reach the Hugging Face Hub to fetch {repo_id!r}; "
                         "pass a local checkpoint directory instead") from None
    raise HeadsError(f"{repo_id!r} on the Hub has no PyTorch weights (model.safetensors or pytorch_model.bin)")


def build(checkpoint: Path, source: str, name: str, out: Path, tokenizer_dir: Path | None,
          int8: bool, synthetic: bool) -> dict:
    import onnx
    import torch
    from transformers import AutoConfig, GPT2Model

    from .graph import VALIDATION_ATOL, export_onnx, validate_onnx, validation_lengths
    from .intervene import add_intervention
    from .optimize import drop_identity_casts, drop_repeated_causal_masks, fold_shape_arithmetic

    config = AutoConfig.from_pretrained(checkpoint)
    if config.model_type != "gpt2":
        raise HeadsError(f"{source} is a {config.model_type!r} checkpoint; Twelve Heads exports GPT-2-family "
                         "models (model_type 'gpt2': gpt2, distilgpt2, gpt2-medium, …)")
    tokenizer = load_tokenizer(tokenizer_dir) if tokenizer_dir else find_tokenizer(checkpoint)
    if tokenizer is None:
        raise HeadsError(f"{source} has no tokenizer files; pass --tokenizer DIR (for GPT-2's own vocabulary: "
                         f"--tokenizer {GPT2_TOKENIZER_DIR})")
    if tokenizer.get_vocab_size() > config.vocab_size:
        raise HeadsError(f"the tokenizer has {tokenizer.get_vocab_size():,} tokens but the model only "
                         f"{config.vocab_size:,} embeddings; pass the tokenizer that belongs to this checkpoint")
    bos_token_id = tokenizer.token_to_id(BOS_TOKEN)

    step = Step()
    step.begin("loading the checkpoint")
    torch.manual_seed(0)
    model = GPT2Model.from_pretrained(checkpoint, attn_implementation="eager", dtype=torch.float32).eval()
    step.begin(f"exporting to ONNX ({config.n_layer} layers × {config.n_head} heads)")
    onnx_path = out / GRAPH
    export_onnx(model, onnx_path)
    step.begin("folding shape arithmetic, identity casts and repeated causal masks out of the graph")
    graph = onnx.load(str(onnx_path))
    rewrites = {"shape_arithmetic": fold_shape_arithmetic(graph), "identity_casts_dropped": drop_identity_casts(graph),
                "repeated_causal_masks_dropped": drop_repeated_causal_masks(graph)}
    onnx.save(graph, str(onnx_path))
    del graph
    step.begin("validating the graph against PyTorch")
    worst = validate_onnx(model, onnx_path, validation_lengths(config.n_positions))
    quantization = None
    if int8:
        from .quantize import quantize_int8
        step.begin("quantizing to int8")
        quantization = quantize_int8(onnx_path)
    step.begin("adding head masks and the prediction graph (export/intervene.py)")
    intervention = add_intervention(model, out, int8, validation_lengths(config.n_positions))
    del model
    step.begin("writing the tokenizer and manifest")
    tokenizer.save(str(out / TOKENIZER))
    step.end()
    return {
        "name": name,
        "source": source,
        "synthetic": synthetic,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_embd": config.n_embd,
        "n_positions": config.n_positions,
        "vocab_size": config.vocab_size,
        "bos_token_id": bos_token_id,
        "precision": "int8" if int8 else "fp32",
        "quantization": quantization,
        BATCHABLE: not int8,
        "graph_rewrites": rewrites,
        "validation": {"max_abs_diff": worst, "atol": VALIDATION_ATOL, "lengths": validation_lengths(config.n_positions)},
        INTERVENTION: intervention,
        "versions": library_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def add_atlas(building: Path) -> None:
    """The head atlas (server/atlas.py), computed by the engine from the graph just written, as `twelve-heads
    atlas` would; imported here so that exporting without it never loads the server."""
    from twelve_heads.progress import ProgressBar
    from twelve_heads.server.atlas import atlas_engine, compute_atlas
    from twelve_heads.server.atlas_file import write_atlas

    step = Step()
    step.begin("computing the head atlas over the reference corpus")
    engine, workers = atlas_engine(building)
    progress = ProgressBar("  atlas", "sentences") if log.isEnabledFor(logging.INFO) else None
    write_atlas(building, compute_atlas(engine, progress, workers))
    del engine
    step.end()


def install(building: Path, target: Path) -> Path:
    """Move a complete build into place; an existing model is swapped out only after the new one is whole."""
    for path in building.iterdir():  # make the bytes durable before the rename makes them visible
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    if target.exists():
        replaced = Path(tempfile.mkdtemp(prefix=f"{REPLACED_PREFIX}{target.name}-", dir=target.parent))
        os.rename(target, replaced / "old")
        os.rename(building, target)
        shutil.rmtree(replaced, ignore_errors=True)
    else:
        os.rename(building, target)
    return target


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for library in LIBRARIES:
        try:
            versions[library] = metadata.version(library)
        except metadata.PackageNotFoundError:
            pass
    return versions


def write_json(path: Path, content: dict) -> None:
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


class Step:
    """One line of progress per long step, with how long the previous one took."""

    def __init__(self):
        self.name, self.started = None, None

    def begin(self, name: str) -> None:
        self.end()
        self.name, self.started = name, time.perf_counter()
        log.info("%s …", name)

    def end(self) -> None:
        if self.name is not None:
            log.info("  done: %s (%.1fs)", self.name, time.perf_counter() - self.started)
        self.name = None
