"""Export GPT-2-family checkpoints to ONNX graphs that output every layer's attention probabilities.

Run `twelve-heads export --help`. Needs the `export` extra (torch, transformers, optimum-onnx); the server never
imports this package.
"""
