"""The ONNX graph: GPT-2 with every layer's attention probabilities as outputs, and its validation.

The stock optimum export of GPT-2 has no attention outputs. `AttentionOnnxConfig` asks for `attentions.0` …
`attentions.{L-1}` (shape (batch, H, T, T)) and nothing else: with `last_hidden_state` gone, the exporter
drops everything after the last layer's attention (the last MLP, the final LayerNorm), work the page never
shows. The only input is `input_ids`; positions are 0 … T-1 and the mask is causal, as in one unpadded
sentence.
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
    """Run the graph and the PyTorch model on random sentences; return the worst difference, or raise."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = np.random.default_rng(VALIDATION_SEED)
    vocab_size = model.config.vocab_size
    worst = 0.0
    for length in lengths:
        started = time.perf_counter()
        ids = generator.integers(0, vocab_size, size=(1, length), dtype=np.int64)
        onnx_attention = session.run(None, {INPUT_IDS: ids})
        with torch.no_grad():
            reference = model(torch.from_numpy(ids), output_attentions=True).attentions
        for layer, (ours, theirs) in enumerate(zip(onnx_attention, reference, strict=True)):
            difference = np.abs(ours - theirs.numpy())
            # NaN compares false with everything: count it as an infinite difference.
            layer_worst = float(np.nanmax(difference)) if not np.isnan(difference).any() else float("inf")
            if not layer_worst <= atol:
                raise HeadsError(
                    f"validation failed: at T={length}, layer {layer}'s attention differs from PyTorch by "
                    f"{layer_worst:.2e} (allowed {atol:.0e}); nothing was written")
            worst = max(worst, layer_worst)
        log.info("  validated T=%d: max |onnx - torch| = %.2e (%.1fs)", length, worst, time.perf_counter() - started)
    return worst
