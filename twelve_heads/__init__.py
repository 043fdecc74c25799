"""Twelve Heads: look inside GPT-2, every attention head of a layer at once, each labelled with what it seems to do.

The installed package keeps the repository's layout under one name:

- `twelve_heads.export` (the repository's `export/`) turns a checkpoint into a model directory; it needs torch.
- `twelve_heads.server` (`server/`) reads model directories with onnxruntime, scores the heads, serves page and API.
- `twelve_heads.static` (`static/`) is the page.
- `twelve_heads.modeldir` is the model directory's contract that both sides share, `twelve_heads.errors` the
  one error type, `twelve_heads.cli` the `twelve-heads` command.

The stable Python API is `twelve_heads.server.engine.Engine` (`load`, `attend`, `attend_ids`), its result
`Attention`, and `twelve_heads.server.heads.label_heads` / `layer_counts`. Everything else may change.
"""

__version__ = "0.2.0"
