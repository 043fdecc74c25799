"""The `twelve-heads` command: `serve` the page and API with gunicorn, `export` a checkpoint into a model directory,
compute the head `atlas` of a model directory.

    twelve-heads serve [--models-dir DIR] [--host H] [--port N] [--workers N] [--threads N]
    twelve-heads export SOURCE [--name NAME] [--models-dir DIR] [--tokenizer DIR] [--int8] [--no-atlas] | --demo
    twelve-heads atlas MODEL_DIR [--threads N] [--quiet]

Every server setting still comes from the environment (HEADS_*, README: Configuration); the flags here only
set the ones a person types most.
"""

import argparse
import ipaddress
import os
import sys

DEFAULT_HOST = "127.0.0.1"  # loopback: a server is exposed only when someone asks for it
DEFAULT_PORT = 8000
DEFAULT_THREADS = 4  # per worker: cache hits and slow clients get through while one thread computes
EXPOSED_WARNING = (
    "twelve-heads: serving on {host} directly. gunicorn's threads can be held by slow clients (ten clients that "
    "send half a request block 2 workers x 4 threads); for a server others reach, put nginx in front "
    "(README: Deployment).")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="twelve-heads", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", metavar="{serve,export,atlas}")
    serve = commands.add_parser("serve", help="serve the page and the JSON API (gunicorn)",
                                description="Serve the page and the JSON API with gunicorn. Every HEADS_* "
                                            "setting in the environment applies (README: Configuration).")
    serve.add_argument("--models-dir", help="directory of exported models (default: $HEADS_MODELS_DIR or ./models)")
    serve.add_argument("--host", default=DEFAULT_HOST,
                       help=f"address to listen on (default: {DEFAULT_HOST}; 0.0.0.0 for every interface)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    serve.add_argument("--workers", type=positive, default=1,
                       help="worker processes (default: 1); each loads every model. Workers × HEADS_ORT_THREADS "
                            "≈ cores (set for you when HEADS_ORT_THREADS is unset)")
    serve.add_argument("--threads", type=positive, default=DEFAULT_THREADS,
                       help=f"request threads per worker (default: {DEFAULT_THREADS})")
    commands.add_parser("export", add_help=False, help="export a checkpoint into models/NAME (needs the export extra)")
    atlas = commands.add_parser(
        "atlas", help="compute what each head usually does over the reference corpus (atlas.json)",
        description="Run the model over the reference corpus (229 English items of nine kinds) and the induction "
                    "probe (repeated random tokens), label every head on every item, and write what each head "
                    "usually does to MODEL_DIR/atlas.json, with its checksum in the manifest. `twelve-heads export` "
                    "does this by default; this command is for a model directory that has no atlas (or an old one). "
                    "A running server picks the new atlas up by itself. Torch-free.")
    atlas.add_argument("model_dir", metavar="MODEL_DIR", help="an exported model directory, e.g. models/gpt2")
    atlas.add_argument("--threads", type=positive,
                       help="cores to use, one single-threaded onnxruntime run on each (default: every core)")
    atlas.add_argument("--quiet", action="store_true", help="no progress bar; print only the result or the error")
    if argv[:1] == ["export"]:  # the exporter parses its own flags, and its --help is its own
        return run_export(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "serve":
        return run_serve(args)
    if args.command == "atlas":
        return run_atlas(args)
    parser.print_help()
    return 2


def run_serve(args: argparse.Namespace) -> int:
    try:
        import gunicorn  # noqa: F401  (the runtime's own dependency; say so plainly if it is missing)
    except ImportError:
        print("twelve-heads: gunicorn is not installed; pip install twelve-heads", file=sys.stderr)
        return 2
    env = dict(os.environ)
    if args.models_dir:
        env["HEADS_MODELS_DIR"] = args.models_dir
    if args.workers > 1 and not env.get("HEADS_ORT_THREADS"):
        env["HEADS_ORT_THREADS"] = str(max(1, (os.cpu_count() or 1) // args.workers))
    if not is_loopback(args.host):
        print(EXPOSED_WARNING.format(host=args.host), file=sys.stderr)
    print(f"Twelve Heads: open http://{args.host}:{args.port}/", file=sys.stderr, flush=True)
    # No --preload: each worker opens its own onnxruntime session after the fork.
    command = [sys.executable, "-m", "gunicorn", "--workers", str(args.workers), "--threads", str(args.threads),
               "--bind", f"{args.host}:{args.port}", "--graceful-timeout", "30", "--no-control-socket",
               "twelve_heads.server:create_app()"]
    os.execve(sys.executable, command, env)
    return 0  # not reached: gunicorn replaces this process


def run_export(argv: list[str]) -> int:
    from twelve_heads.export.__main__ import main as export_main
    return export_main(argv, prog="twelve-heads export")


def run_atlas(args: argparse.Namespace) -> int:
    import time

    from twelve_heads.errors import HeadsError
    from twelve_heads.progress import ProgressBar
    from twelve_heads.server.atlas import atlas_engine, compute_atlas
    from twelve_heads.server.atlas_file import write_atlas

    started = time.perf_counter()
    try:
        engine, workers = atlas_engine(args.model_dir, args.threads)
        progress = None if args.quiet else ProgressBar(f"atlas of {engine.name}", "sentences")
        atlas = compute_atlas(engine, progress, workers)
        path = write_atlas(engine.path, atlas)
    except HeadsError as err:
        print(f"atlas: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("atlas: interrupted; nothing was written", file=sys.stderr)
        return 130
    summary = atlas["views"][0]["summary"]
    print(f"wrote {path}: {summary['usual_heads']} of {summary['heads']} heads have a usual job over the corpus "
          f"(median consensus {summary['median_share']:.0%}); {time.perf_counter() - started:.0f} s")
    return 0


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
