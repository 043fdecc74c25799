"""Twelve Heads' server: the torch-free engine, head scoring, and the Flask app that serves page and API.

    flask run                                     # development, in the project folder (.flaskenv)
    twelve-heads serve                            # gunicorn, for a class
    gunicorn 'twelve_heads.server:create_app()'   # the same, by hand
"""

import logging
import os
import threading
from pathlib import Path

from flask import Flask, request, send_from_directory
from werkzeug.exceptions import HTTPException

from twelve_heads.errors import HeadsError

from . import atlas_api, ratelimit
from .api import bp, error_response
from .cache import ByteLRU
from .compare import bp as compare_bp
from .config import DEFAULTS, from_environment
from .memory import limit_malloc_arenas
from .models import ModelRegistry

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
log = logging.getLogger(__name__)

# The page loads only its own files: no inline script, no remote origin, no framing.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'")


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__, static_folder=str(STATIC_DIR), static_url_path="/static")
    app.config.from_mapping(DEFAULTS)
    app.config.from_mapping(from_environment(os.environ))
    if test_config:
        app.config.from_mapping(test_config)
    app.json.sort_keys = False

    registry = ModelRegistry(app.config["MODELS_DIR"], app.config["DEFAULT_MODEL"],
                             max_tokens=app.config["MAX_TOKENS"], max_chars=app.config["MAX_TEXT_CHARS"],
                             threads=app.config["ORT_THREADS"],
                             long_sentence_tokens=app.config["LONG_SENTENCE_TOKENS"],
                             micro_batch=app.config["MICRO_BATCH"])
    log_to_stderr_unless_configured()
    limit_malloc_arenas()
    registry.load_all()
    report_models(registry)
    app.extensions["heads.models"] = registry
    app.extensions["heads.cache"] = ByteLRU(app.config["CACHE_BYTES"])
    app.extensions["heads.clean_passes"] = {}  # model name -> its ByteLRU (api.clean_passes)
    app.extensions["heads.long_sentences"] = threading.BoundedSemaphore(app.config["LONG_SENTENCE_CONCURRENCY"])

    app.register_blueprint(bp)
    app.register_blueprint(compare_bp)
    atlas_api.init_app(app)
    ratelimit.init_app(app)

    @app.get("/")
    def index():
        return send_from_directory(STATIC_DIR, "index.html")

    @app.errorhandler(HeadsError)
    def heads_error(err: HeadsError):
        return error_response(str(err), err.status)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        if err.code == 404:
            message = (f"nothing at {request.path[:200]}; the API is /api/models, /api/attention, /api/tokens, "
                       "/api/compare and /api/atlas")
        elif err.code == 405:
            allowed = sorted(set(getattr(err, "valid_methods", None) or []) - {"HEAD", "OPTIONS"})
            message = f"{request.method} is not allowed on {request.path[:200]}; use {' or '.join(allowed)}"
        elif err.code == 413:
            message = f"the request body is over {app.config['MAX_CONTENT_LENGTH']:,} bytes; send a shorter text"
        else:
            message = err.description
        return error_response(message, err.code)

    @app.errorhandler(Exception)
    def unexpected_error(err: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response("internal error: the server logged it; try again or report it", 500)

    @app.after_request
    def security_headers(response):
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    return app


def log_to_stderr_unless_configured() -> None:
    """Under gunicorn nothing configures Python logging: give the server's messages one line each on stderr
    (the journal, under systemd). Tests and embedding apps that configure logging keep theirs."""
    server_log = logging.getLogger(__name__)
    if server_log.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
                                           "%Y-%m-%d %H:%M:%S %z"))
    server_log.addHandler(handler)
    server_log.setLevel(logging.INFO)


def report_models(registry: ModelRegistry) -> None:
    """One line at start-up saying what is served, so a misconfigured VM is obvious in its log."""
    if registry.engines:
        log.info("serving %s from %s (default: %s)", ", ".join(sorted(registry.engines)),
                 registry.models_dir.resolve(), registry.default_name())
    else:
        log.error("no model is ready in %s; export one there with `twelve-heads export` (or `twelve-heads export "
                  "--demo` offline), or point HEADS_MODELS_DIR at a directory of exported models",
                  registry.models_dir.resolve())
