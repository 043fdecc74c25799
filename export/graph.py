"""The ONNX graph: GPT-2 with every layer's attention probabilities as outputs, and its validation.

The stock optimum export of GPT-2 has no attention outputs. `AttentionOnnxConfig` asks for `attentions.0` …
`attentions.{L-1}` (shape (batch, H, T, T)) and nothing else: with `last_hidden_state` gone, the exporter
drops everything after the last layer's attention (the last MLP, the final LayerNorm), work the page never
shows. The only input is `input_ids`, (B, T): a batch of sentences padded on the right. Positions are
0 … T-1 in every row and the mask is causal, so a sentence's own attention rows never see its padding.
"""

import logging
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from optimum.exporters.onnx import export as optimum_export
from optimum.exporters.onnx.model_configs import GPT2OnnxConfig

from twelve_heads.errors import HeadsError
from twelve_heads.modeldir import INPUT_IDS, attention_output

OPSET = 17  # LayerNormalization is a single op from opset 17
VALIDATION_ATOL = 1e-4  # max |ONNX - PyTorch| over every attention probability; the bound
VALIDATION_SEED = 0
BATCH_CHECK_TOKENS = 64  # validation sentences up to this long are checked again as one right-padded batch

log = logging.getLogger("export")


class AttentionOnnxConfig(GPT2OnnxConfig):
    """GPT-2's ONNX config with input_ids in and every layer's attention probabilities out."""

    @property
    def inputs(self) -> dict[str, dict[int, str]]:
        return {INPUT_IDS: {0: "batch_size", 1: "sequence_length"}}

    @property
    def outputs(self) -> dict[str, dict[int, str]]:
        return {
            attention_output(layer): {0: "batch_size", 2: "sequence_length", 3: "sequence_length"}
            for layer in range(self._config.n_layer)
        }


def export_onnx(model: torch.nn.Module, path: Path) -> None:
    """Trace `model` (a GPT2Model with eager attention) into `path`."""
    config = AttentionOnnxConfig(model.config, task="feature-extraction")
    optimum_export(model, config, Path(path), opset=OPSET, model_kwargs={"output_attentions": True})


def validation_lengths(n_positions: int) -> list[int]:
    """Sentence lengths to compare at: the edges (1, 2, the model's limit) and a couple in between."""
    return sorted({min(length, n_positions) for length in (1, 2, 17, 64, n_positions)})


def validate_onnx(model: torch.nn.Module, path: Path, lengths: list[int], atol: float = VALIDATION_ATOL) -> float:
    """Run the graph and the PyTorch model on random sentences, each alone and then (those up to
    BATCH_CHECK_TOKENS long) as one right-padded batch; return the worst difference, or raise."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = np.random.default_rng(VALIDATION_SEED)
    vocab_size = model.config.vocab_size
    worst, batch = 0.0, []
    for length in lengths:
        started = time.perf_counter()
        ids = generator.integers(0, vocab_size, size=(1, length), dtype=np.int64)
        with torch.no_grad():
            reference = [layer.numpy() for layer in model(torch.from_numpy(ids), output_attentions=True).attentions]
        worst = max(worst, compare(session.run(None, {INPUT_IDS: ids}), reference, f"T={length}", atol))
        if length <= BATCH_CHECK_TOKENS:
            batch.append((ids[0], reference))
        log.info("  validated T=%d: max |onnx - torch| = %.2e (%.1fs)", length, worst, time.perf_counter() - started)
    if len(batch) > 1:
        # Padding on the right, with random tokens: under the causal mask they cannot reach a sentence's rows.
        padded = generator.integers(0, vocab_size, size=(len(batch), max(len(ids) for ids, _ in batch)), dtype=np.int64)
        for row, (ids, _) in enumerate(batch):
            padded[row, :len(ids)] = ids
        outputs = session.run(None, {INPUT_IDS: padded})
        for row, (ids, reference) in enumerate(batch):
            n = len(ids)
            ours = [output[row:row + 1, :, :n, :n] for output in outputs]
            worst = max(worst, compare(ours, reference, f"T={n} in a right-padded batch of {len(batch)}", atol))
        log.info("  validated a batch of %d (T = %s): max |onnx - torch| = %.2e", len(batch),
                 ", ".join(str(len(ids)) for ids, _ in batch), worst)
    return worst


def compare(ours: list[np.ndarray], reference: list[np.ndarray], where: str, atol: float) -> float:
    """The largest |ours - reference| over every layer's attention; HeadsError if one exceeds `atol`."""
    worst = 0.0
    for layer, (mine, theirs) in enumerate(zip(ours, reference, strict=True)):
        difference = np.abs(mine - theirs)
        # NaN compares false with everything: count it as an infinite difference.
        layer_worst = float(np.nanmax(difference)) if not np.isnan(difference).any() else float("inf")
        if not layer_worst <= atol:
            raise HeadsError(f"validation failed: at {where}, layer {layer}'s attention differs from PyTorch by "
                             f"{layer_worst:.2e} (allowed {atol:.0e}); nothing was written")
        worst = max(worst, layer_worst)
    return worst
