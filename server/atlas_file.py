"""atlas.json in a model directory: written with its checksum in the manifest, read back verified.

The atlas (server/atlas.py) belongs to one graph: it records the graph's sha256, and a reader refuses an atlas
computed for another graph, one whose checksum does not match the manifest, or one the manifest does not list.
A model without an atlas is a model like any other: `read_atlas` raises NoAtlas, whose message says how to make one.
"""

import json
from pathlib import Path

from twelve_heads.errors import HeadsError, ModelError
from twelve_heads.modeldir import ATLAS, GRAPH, read_manifest, record_file, verify_files, write_atomically

from .atlas import ATLAS_VERSION

BROKEN_STATUS = 503  # as for a model that cannot be used: the server's files are at fault, not the request


class NoAtlas(HeadsError):
    """The model directory has no atlas.json (an export with --no-atlas, or from before atlases)."""

    status = 404


def atlas_command(directory: Path) -> str:
    return f"twelve-heads atlas {directory}"


def write_atlas(directory: Path, atlas: dict) -> Path:
    """Write `directory`/atlas.json (atomically) and put its checksum into the manifest."""
    directory = Path(directory)
    write_atomically(directory / ATLAS, json.dumps(atlas, separators=(",", ":"), ensure_ascii=False) + "\n")
    record_file(directory, ATLAS)
    return directory / ATLAS


def read_atlas(directory: Path, name: str | None = None) -> dict:
    """The atlas of the model in `directory` (named `name` in messages), verified against its manifest; NoAtlas
    when there is none, ModelError (with the command that makes it again) when it cannot be trusted."""
    directory = Path(directory)
    name = name or directory.name
    path, hint = directory / ATLAS, f"recompute it with `{atlas_command(directory)}`"
    manifest = read_manifest(directory)
    if ATLAS not in manifest["files"]:
        if path.exists():
            raise ModelError(f"{path} is not among the checksums of {directory / 'manifest.json'} (copied in by "
                             f"hand?); {hint}", status=BROKEN_STATUS)
        raise NoAtlas(f"model {name!r} has no atlas yet (what each head usually does over the reference corpus); "
                      f"make one with `{atlas_command(directory)}`")
    try:
        verify_files(directory, manifest, (ATLAS,), hint=hint)
    except ModelError as err:
        raise ModelError(str(err), status=BROKEN_STATUS) from None
    try:
        atlas = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{path} is not valid JSON ({err}); {hint}", status=BROKEN_STATUS) from None
    problem = check_atlas(atlas, manifest)
    if problem:
        raise ModelError(f"{path} {problem}; {hint}", status=BROKEN_STATUS)
    return atlas


def check_atlas(atlas, manifest: dict) -> str | None:
    """What is wrong with `atlas` for the model of `manifest`, or None."""
    if not isinstance(atlas, dict) or not isinstance(atlas.get("atlas_version"), int):
        return "is not an atlas (no atlas_version)"
    if atlas["atlas_version"] > ATLAS_VERSION:
        return (f"is version {atlas['atlas_version']}, newer than this Twelve Heads reads ({ATLAS_VERSION}: "
                "upgrade twelve-heads)")
    if atlas["atlas_version"] < ATLAS_VERSION:
        return f"is version {atlas['atlas_version']}, older than this Twelve Heads reads ({ATLAS_VERSION})"
    if atlas.get("graph_sha256") != manifest["files"].get(GRAPH):
        return f"was computed for another {GRAPH} (its graph_sha256 is not the manifest's)"
    shape = (manifest["n_layer"], manifest["n_head"])
    views = atlas.get("views")
    if not isinstance(views, list) or not views or not all(
            isinstance(view, dict) and isinstance(view.get("heads"), list) and len(view["heads"]) == shape[0]
            and all(isinstance(layer, list) and len(layer) == shape[1] for layer in view["heads"])
            for view in views):
        return f"does not hold {shape[0]} layers x {shape[1]} heads in every view"
    return None


def atlas_view(atlas: dict, prepend_bos: bool, sink_aware: bool) -> dict | None:
    """The view computed with these settings, or None (a model without <|endoftext|> has no prepend_bos views)."""
    for view in atlas["views"]:
        if view["prepend_bos"] == prepend_bos and view["sink_aware"] == sink_aware:
            return view
    return None
