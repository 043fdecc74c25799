"""Shared fixtures: every model is built in the test run from a GPT2Config — nothing is downloaded."""

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from twelve_heads.server import create_app

REPO = Path(__file__).resolve().parents[1]
SHARED_TOKENIZER = REPO.parent / "shared" / "fixtures" / "gpt2-tokenizer"
VENDORED_TOKENIZER = REPO / "export" / "assets" / "gpt2-tokenizer"
# The issue names the shared fixture; a clone without shared/ beside it uses the identical vendored copy.
GPT2_TOKENIZER = SHARED_TOKENIZER if SHARED_TOKENIZER.is_dir() else VENDORED_TOKENIZER

TINY_POSITIONS = 40  # small so T = the model's limit is quick to test
TROPHY = "The trophy doesn't fit in the suitcase because it is too big."
TROPHY_IDS = [464, 16383, 1595, 470, 4197, 287, 262, 45391, 780, 340, 318, 1165, 1263, 13]


class CountedSlot:
    """The app's long-sentence semaphore, counting the requests that reached it (before waiting for it)."""

    def __init__(self, slot):
        self.slot, self.reached, self.changed = slot, 0, threading.Condition()

    def __enter__(self):
        with self.changed:
            self.reached += 1
            self.changed.notify_all()
        return self.slot.__enter__()

    def __exit__(self, *exc):
        return self.slot.__exit__(*exc)

    def wait_until_reached(self, count: int, timeout: float = 60) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.reached >= count, timeout)


def run_export(*args, env=None, check=True, timeout=600) -> subprocess.CompletedProcess:
    """`twelve-heads export ARGS` in a fresh process, as a user runs it; the Hub is made unreachable."""
    full_env = {**os.environ, **offline_hub_env(), **(env or {})}
    result = subprocess.run([sys.executable, "-m", "twelve_heads.export", *map(str, args)], cwd=REPO, env=full_env,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"export failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def offline_hub_env() -> dict[str, str]:
    # A closed loopback port: the same refused connection a machine without network gets, and never a download.
    return {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2"}


def save_random_gpt2(path: Path, seed: int = 0, **config) -> Path:
    """A random-initialised GPT-2 checkpoint. A wider init than GPT-2's 0.02 makes attention peaked, not
    near-uniform, so parity is tested on patterns with structure."""
    import torch
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(seed)
    settings = dict(n_layer=2, n_head=4, n_embd=64, n_positions=TINY_POSITIONS, initializer_range=0.15)
    GPT2Model(GPT2Config(**{**settings, **config})).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return save_random_gpt2(tmp_path_factory.mktemp("checkpoints") / "tiny")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_checkpoint) -> Path:
    """models/tiny exported through `twelve-heads export`, exactly as a user would."""
    models = tmp_path_factory.mktemp("models")
    run_export(tiny_checkpoint, "--name", "tiny", "--models-dir", models, "--tokenizer", GPT2_TOKENIZER)
    return models / "tiny"


@pytest.fixture(scope="session")
def wide_model(tmp_path_factory) -> Path:
    """A random model with GPT-2 small's layout of heads (12 layers × 12 heads) but narrow, so it is quick."""
    checkpoint = save_random_gpt2(tmp_path_factory.mktemp("checkpoints") / "wide", seed=1, n_layer=12, n_head=12,
                                  n_embd=96, n_positions=256)
    models = tmp_path_factory.mktemp("models")
    run_export(checkpoint, "--name", "wide", "--models-dir", models, "--tokenizer", GPT2_TOKENIZER)
    return models / "wide"


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory) -> Path:
    """models/demo: the planted-heads model, built and exported by `twelve-heads export --demo`."""
    models = tmp_path_factory.mktemp("models")
    run_export("--demo", "--models-dir", models)
    return models / "demo"


@pytest.fixture(scope="session")
def demo_int8_model(tmp_path_factory) -> Path:
    """The planted-heads model exported with --int8."""
    models = tmp_path_factory.mktemp("models")
    run_export("--demo", "--int8", "--name", "demo-int8", "--models-dir", models, "--no-atlas")  # no test reads its atlas
    return models / "demo-int8"


# The app over tiny + wide (and a build in progress, which is not a model), for the input and security tests.
# tests/test_api.py defines its own, with wide as the default.
@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, tiny_model, wide_model):
    models = tmp_path_factory.mktemp("served")
    shutil.copytree(tiny_model, models / "tiny")
    shutil.copytree(wide_model, models / "wide")
    shutil.copytree(tiny_model, models / ".building-tiny-1")  # an export in progress is not a model
    return models


@pytest.fixture(scope="module")
def app(models_dir):
    return create_app({"MODELS_DIR": str(models_dir), "DEFAULT_MODEL": "tiny"})


@pytest.fixture
def client(app):
    return app.test_client()
