"""twelve-heads export SOURCE [--name NAME] [--models-dir DIR] [--tokenizer DIR] [--int8] [--no-atlas]
twelve-heads export --demo

(`python -m twelve_heads.export` is the same command.)

Turn a GPT-2-family checkpoint (a Hugging Face Hub id such as gpt2, distilgpt2, gpt2-medium, or a local
directory with config.json and weights) into models/NAME/: model.onnx whose outputs are every layer's
attention probabilities, tokenizer.json, manifest.json and atlas.json (what each head usually does over the
reference corpus; --no-atlas leaves it out, `twelve-heads atlas` adds it later). `--demo` builds the
planted-heads model instead (synthetic weights whose heads have known roles; no download). Exit status: 0
written, 2 not written.
"""

import argparse
import importlib.util
import logging
import os
import signal
import sys
from pathlib import Path

from twelve_heads.errors import HeadsError
from twelve_heads.modeldir import default_models_dir

from .tokenizer import GPT2_TOKENIZER_DIR

DEFAULT_SOURCE = "gpt2"
DEMO_NAME = "demo"
EXPORT_EXTRA = "pip install 'twelve-heads[export]' (first pip install torch==2.13.0 for a CPU build)"
EXPORT_MODULES = ("torch", "transformers", "optimum", "onnx")  # what the export extra installs


def parse_args(argv: list[str] | None, prog: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", default=None,
                        help=f"Hub id or local checkpoint directory (default: {DEFAULT_SOURCE})")
    parser.add_argument("--name", help="folder name under --models-dir (default: the source's last path part)")
    parser.add_argument("--models-dir", type=Path, default=default_models_dir(os.environ),
                        help="where models live (default: $HEADS_MODELS_DIR or ./models)")
    parser.add_argument("--tokenizer", type=Path,
                        help="tokenizer directory when the checkpoint has none: tokenizer.json, vocab.json + "
                             f"merges.txt, or encoder.json + vocab.bpe (GPT-2's: {GPT2_TOKENIZER_DIR})")
    parser.add_argument("--int8", action="store_true", help="also quantize the weights to int8 (dynamic)")
    parser.add_argument("--no-atlas", action="store_true",
                        help="skip the head atlas (atlas.json: each head's usual job over the reference corpus); "
                             "`twelve-heads atlas MODEL_DIR` computes it later")
    parser.add_argument("--demo", action="store_true",
                        help="build the synthetic planted-heads GPT-2 (no download) as models/demo")
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    args = parser.parse_args(argv)
    if args.demo and args.source:
        parser.error("--demo builds its own checkpoint; give no SOURCE with it")
    return args


def main(argv: list[str] | None = None, prog: str = "twelve-heads export") -> int:
    args = parse_args(argv, prog)
    missing = [name for name in EXPORT_MODULES if importlib.util.find_spec(name) is None]
    if missing:  # before any work, so that the one line is all the user sees
        print(f"export: {missing[0]} is missing; install the export extra: {EXPORT_EXTRA}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    quiet_libraries()
    # SIGTERM unwinds like Ctrl-C, so the half-built directory is removed on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        from .build import export_demo, export_model
        if args.demo:
            path = export_demo(args.models_dir, name=args.name or DEMO_NAME, int8=args.int8, atlas=not args.no_atlas)
        else:
            source = args.source or DEFAULT_SOURCE
            name = args.name or Path(source.rstrip("/")).name
            path = export_model(source, name, args.models_dir, args.tokenizer, int8=args.int8, atlas=not args.no_atlas)
    except HeadsError as err:
        print(f"export: {err}", file=sys.stderr)
        return 2
    except ImportError as err:
        print(f"export: {err.name or err} is missing; install the export extra: {EXPORT_EXTRA}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("export: interrupted; nothing was written", file=sys.stderr)
        return 130
    print(f"wrote {path}")
    return 0


def quiet_libraries() -> None:
    """The tracer's warnings are about code paths a fixed-shape GPT-2 never takes; they bury the progress."""
    import warnings
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("optimum", "transformers", "torch", "torch.onnx"):
        logging.getLogger(name).setLevel(logging.ERROR)


if __name__ == "__main__":
    sys.exit(main())
