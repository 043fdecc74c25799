"""GET /api/atlas?model=NAME[&prepend_bos=1][&sink_aware=1]: what each head of a model usually does over the
reference corpus (server/atlas.py), one view at a time, from the model directory's verified atlas.json.

A model without an atlas still serves everything else; here it gets 404 with the command that makes one.
"""

import gzip
import logging
import threading
from pathlib import Path

import orjson
from flask import Blueprint, Response, current_app, request

from twelve_heads.errors import HeadsError, InputError
from twelve_heads.modeldir import ATLAS, BOS_TOKEN, MANIFEST

from .api import GZIP_LEVEL
from .atlas_file import NoAtlas, atlas_view, read_atlas
from .atlas_view import served_view
from .fields import Field, Fields, boolean, model_name, query_boolean

bp = Blueprint("atlas", __name__)
log = logging.getLogger(__name__)

# /api/atlas's fields; the README's table lists each.
ATLAS_FIELDS = Fields(
    Field("model", model_name, None, "a name from /api/models; DEFAULT_MODEL when absent"),
    Field("prepend_bos", boolean, False, f"the view computed with {BOS_TOKEN} first", from_query=query_boolean),
    Field("sink_aware", boolean, False, "the view computed with the first token's column set aside",
          from_query=query_boolean),
)


@bp.get("/api/atlas")
def atlas():
    options = ATLAS_FIELDS.parse()
    engine = current_app.extensions["heads.models"].get(options.model)
    body = current_app.extensions["heads.atlases"].body(engine, options.prepend_bos, options.sink_aware)
    if "gzip" in request.accept_encodings:
        response = Response(body, mimetype="application/json")
        response.headers["Content-Encoding"] = "gzip"
    else:
        response = Response(gzip.decompress(body), mimetype="application/json")
    response.vary.add("Accept-Encoding")
    return response


class AtlasStore:
    """Each model's atlas, read (and verified) on first use and again whenever its atlas.json or manifest changes
    (`twelve-heads atlas` on a served model is picked up without a restart); each view's response body kept
    gzipped. A failure is remembered the same way, so a broken atlas is not re-hashed on every request."""

    def __init__(self):
        self.entries: dict[Path, tuple] = {}  # model path -> (fingerprint, atlas or (error type, message, status), bodies)
        self.lock = threading.Lock()

    def atlas(self, engine) -> tuple[dict, dict]:
        """(the atlas, its cache of response bodies), or the HeadsError that says why there is none."""
        key = fingerprint(engine.path)
        with self.lock:
            entry = self.entries.get(engine.path)
            if entry is None or entry[0] != key:
                try:
                    entry = (key, read_atlas(engine.path, engine.name), {})
                except HeadsError as err:
                    entry = (key, (type(err), str(err), err.status), {})
                self.entries[engine.path] = entry
        _, atlas, bodies = entry
        if isinstance(atlas, tuple):
            error_type, message, status = atlas
            raise error_type(message, status=status)
        return atlas, bodies

    def body(self, engine, prepend_bos: bool, sink_aware: bool) -> bytes:
        atlas, bodies = self.atlas(engine)
        settings = (prepend_bos, sink_aware)
        if settings not in bodies:
            view = atlas_view(atlas, prepend_bos, sink_aware)
            if view is None:
                raise InputError(f"model {engine.name!r} has no {BOS_TOKEN} token to prepend; turn prepend_bos off")
            served = served_view(atlas, view, engine.manifest, engine.name)
            bodies[settings] = gzip.compress(orjson.dumps(served), compresslevel=GZIP_LEVEL, mtime=0)
        return bodies[settings]


def fingerprint(path: Path) -> tuple:
    """What changes when atlas.json or the manifest is written or replaced."""
    stats = []
    for name in (ATLAS, MANIFEST):
        try:
            stat = (path / name).stat()
            stats.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
        except OSError:
            stats.append(None)
    return tuple(stats)


def init_app(app) -> None:
    """Register /api/atlas and say in the log, once per model, whether it has an atlas."""
    store = AtlasStore()
    app.extensions["heads.atlases"] = store
    app.register_blueprint(bp)
    for engine in app.extensions["heads.models"].engines.values():
        try:
            store.atlas(engine)
        except NoAtlas as err:
            log.info("%s", err)
        except HeadsError as err:
            log.error("the atlas of model %s is unusable (the model still serves): %s", engine.name, err)
