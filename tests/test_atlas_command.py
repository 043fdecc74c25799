"""`twelve-heads atlas MODEL_DIR` and `twelve-heads export --no-atlas`, run as a user runs them."""

import json
import shutil
import subprocess
import sys

import pytest

from conftest import GPT2_TOKENIZER, REPO, run_export
from test_export import MODEL_FILES
from twelve_heads.modeldir import ATLAS, GRAPH, MANIFEST, file_sha256
from twelve_heads.server.atlas_file import read_atlas


def run_atlas(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "twelve_heads.cli", "atlas", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def bare_model(tmp_path_factory, tiny_checkpoint):
    """tiny exported with --no-atlas."""
    models = tmp_path_factory.mktemp("models")
    run_export(tiny_checkpoint, "--name", "tiny", "--models-dir", models, "--tokenizer", GPT2_TOKENIZER, "--no-atlas")
    return models / "tiny"


def test_export_without_an_atlas_writes_none(bare_model):
    assert sorted(path.name for path in bare_model.iterdir()) == [name for name in MODEL_FILES if name != "atlas.json"]
    assert ATLAS not in json.loads((bare_model / MANIFEST).read_text())["files"]


def test_the_atlas_command_adds_a_verified_atlas_to_a_model_directory(tmp_path, bare_model, tiny_model):
    model = tmp_path / "tiny"
    shutil.copytree(bare_model, model)
    before = json.loads((model / MANIFEST).read_text())
    result = run_atlas(model)
    assert result.returncode == 0, result.stderr
    after = json.loads((model / MANIFEST).read_text())
    assert after == {**before, "files": {**before["files"], ATLAS: file_sha256(model / ATLAS)}}
    atlas = read_atlas(model)
    summary = atlas["views"][0]["summary"]
    assert result.stdout.startswith(f"wrote {model / ATLAS}: {summary['usual_heads']} of 8 heads have a usual job")
    total = sum(view["items"] for view in atlas["views"] if not view["sink_aware"])  # each item run with and without BOS
    assert f"atlas of tiny: {total}/{total} sentences (100%)" in result.stderr  # the progress, one line a tenth
    assert result.stderr.count("atlas of tiny: ") == 10
    # The same checkpoint gives the same atlas, whether the export or the command computed it.
    assert atlas["graph_sha256"] == after["files"][GRAPH]
    exported = read_atlas(tiny_model)
    assert {**atlas, "graph_sha256": None} == {**exported, "graph_sha256": None}


def test_the_atlas_command_refuses_a_damaged_model_and_writes_nothing(tmp_path, bare_model):
    model = tmp_path / "tiny"
    shutil.copytree(bare_model, model)
    with open(model / GRAPH, "ab") as graph:
        graph.write(b"\0")
    manifest = (model / MANIFEST).read_bytes()
    result = run_atlas(model)
    assert result.returncode == 2
    assert result.stderr == (f"atlas: {model / GRAPH} does not match the checksum in its manifest (damaged or "
                             "replaced); re-export it with `twelve-heads export`\n")
    assert not (model / ATLAS).exists() and (model / MANIFEST).read_bytes() == manifest


def test_the_atlas_command_names_a_missing_directory(tmp_path):
    result = run_atlas(tmp_path / "nowhere")
    assert result.returncode == 2
    assert result.stderr == (f"atlas: model directory {tmp_path / 'nowhere'} does not exist; export one with "
                             "`twelve-heads export`\n")


def test_the_atlas_command_explains_itself():
    result = subprocess.run([sys.executable, "-m", "twelve_heads.cli", "atlas", "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "usage: twelve-heads atlas [-h] [--threads THREADS] [--quiet] MODEL_DIR" in result.stdout
    assert "reference corpus" in result.stdout and "atlas.json" in result.stdout
