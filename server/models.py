"""The models a server offers: found by scanning MODELS_DIR, each loaded on first use and kept.

A request names a model; the name is looked up among the directories found by the scan, never joined to a
path, so no request can reach outside MODELS_DIR. A model that fails to load is reported (with the engine's
message) and skipped; the others keep serving. The failure is remembered until the model's directory changes
(a re-export, a repaired file): a request naming a broken model is answered at once, without hashing its
graph again, and a repaired one is picked up without a restart.
"""

import json
import logging
import threading
from pathlib import Path

from twelve_heads.errors import InputError, ModelError
from twelve_heads.modeldir import MANIFEST, SUMMARY_KEYS, intervenes

from .engine import Engine

log = logging.getLogger(__name__)


class ModelRegistry:
    def __init__(self, models_dir, default: str, **engine_options):
        self.models_dir = Path(models_dir)
        self.preferred = default
        self.engine_options = engine_options  # Engine.load's: max_tokens, max_chars, threads, long_sentence_tokens, micro_batch
        self.engines: dict[str, Engine] = {}
        self.failures: dict[str, str] = {}
        self.failed_as: dict[str, tuple] = {}  # name -> the directory's fingerprint when it failed
        self.lock = threading.Lock()

    def names(self) -> list[str]:
        """Model directories; hidden ones (builds in progress, replaced models) are not models. A folder without a
        manifest is listed too, so that it is reported as broken rather than silently ignored."""
        if not self.models_dir.is_dir():
            return []
        return sorted(path.name for path in self.models_dir.iterdir() if path.is_dir() and not path.name.startswith("."))

    def load_all(self) -> None:
        """Load every model now (at start-up), logging and remembering the ones that fail."""
        for name in self.names():
            try:
                self.get(name)
            except ModelError:
                log.error("model %s is unusable and will be skipped: %s", name, self.failures[name])

    def get(self, name: str | None = None) -> Engine:
        name = self.default_name() if name is None else name
        engine = self.engines.get(name)
        if engine is not None:
            return engine
        if not isinstance(name, str) or name not in self.names():
            shown = name if isinstance(name, str) and len(name) <= 100 and name.isprintable() else "(invalid name)"
            available = ", ".join(self.names()) or "none: export one with `twelve-heads export`"
            raise InputError(f"no model named {shown!r}; available: {available}", status=404)
        with self.lock:
            if name not in self.engines:
                path = self.models_dir / name
                if name in self.failed_as and self.failed_as[name] == fingerprint(path):
                    raise ModelError(f"model {name!r} cannot be used: {self.failures[name]}")
                try:
                    self.engines[name] = Engine.load(path, **self.engine_options)
                    self.failures.pop(name, None)
                    self.failed_as.pop(name, None)
                except ModelError as err:
                    self.failures[name], self.failed_as[name] = str(err), fingerprint(path)
                    raise ModelError(f"model {name!r} cannot be used: {err}") from None
            return self.engines[name]

    def default_name(self) -> str:
        names = self.names()
        if self.preferred in names and self.preferred not in self.failures:
            return self.preferred
        usable = [name for name in names if name not in self.failures]
        if not usable:
            raise ModelError(f"no model is ready in {self.models_dir}; export one with `twelve-heads export` "
                             "(or `twelve-heads export --demo` offline)")
        return usable[0]

    def summaries(self) -> list[dict]:
        summaries = []
        for name in self.names():
            try:
                manifest = json.loads((self.models_dir / name / MANIFEST).read_text(encoding="utf-8"))
                summary = {key: manifest.get(key) for key in SUMMARY_KEYS}
                summary["can_intervene"] = intervenes(manifest)  # as Engine.load decides it
            except (OSError, ValueError) as err:
                summary = {"name": name}
                self.failures.setdefault(name, f"manifest.json is unreadable ({err})")
            summary["name"] = name
            summary["error"] = self.failures.get(name)
            summaries.append(summary)
        return summaries


def fingerprint(path: Path) -> tuple:
    """What changes when a model directory is replaced or any file in it is written: inodes, sizes, times."""
    try:
        stats = [(entry.name, entry.stat()) for entry in path.iterdir()]
        directory = path.stat()
    except OSError:
        return ()
    return (directory.st_ino, directory.st_mtime_ns,
            tuple(sorted((name, stat.st_ino, stat.st_size, stat.st_mtime_ns) for name, stat in stats)))
