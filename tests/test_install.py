"""The three ways Twelve Heads is run: a wheel on a VM (no torch, nothing from the checkout), `flask run` in the
project folder, and the Python API from a notebook.

The wheel is built once per run (`python -m build`) and installed into a fresh venv without torch; pip's own
cache keeps that install quick after the first run.
"""

import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from browser_support import free_port
from conftest import REPO
from server_process import ServerProcess

STATIC = REPO / "static"
INSTALL_TIMEOUT = 600  # s: a fresh venv's runtime from pip's cache (the first run on a machine downloads it)


@pytest.fixture(scope="session")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], check=True,
                   capture_output=True, timeout=INSTALL_TIMEOUT)
    return out


@pytest.fixture(scope="session")
def wheel(dist) -> Path:
    (path,) = dist.glob("twelve_heads-*.whl")
    return path


@pytest.fixture(scope="session")
def runtime_venv(tmp_path_factory, wheel) -> Path:
    """A fresh venv with only the wheel and its runtime dependencies: no torch, no checkout on the path."""
    venv = tmp_path_factory.mktemp("runtime") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    str(wheel)], check=True, capture_output=True, timeout=INSTALL_TIMEOUT)
    return venv


def outside_env() -> dict:
    """The environment of a user who never cloned the repository: no PYTHONPATH, no HEADS_* of ours."""
    return {key: value for key, value in os.environ.items()
            if not key.startswith(("HEADS_", "PYTHON", "VIRTUAL_ENV"))}


def test_the_wheel_holds_the_page_the_assets_and_one_import_name(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    page = {f"twelve_heads/static/{path.name}" for path in STATIC.iterdir() if path.is_file()}
    assert page <= set(names), sorted(page - set(names))
    assert "twelve_heads/export/assets/gpt2-tokenizer/encoder.json" in names
    assert "twelve_heads/export/assets/gpt2-tokenizer/vocab.bpe" in names
    top_level = {name.split("/")[0] for name in names if not name.startswith("twelve_heads-")}
    assert top_level == {"twelve_heads"}
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "twelve-heads = twelve_heads.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_sdist_holds_the_source_layout(dist):
    (sdist,) = dist.glob("twelve_heads-*.tar.gz")
    names = {name.split("/", 1)[1] for name in tarfile.open(sdist).getnames() if "/" in name}
    assert {"static/index.html", "static/app.js", "server/engine.py", "export/build.py", "twelve_heads/cli.py",
            "export/assets/gpt2-tokenizer/encoder.json", "README.md", "pyproject.toml"} <= names


def test_the_runtime_install_has_no_torch_and_imports_none(runtime_venv):
    python = str(runtime_venv / "bin" / "python")
    script = ("import sys, twelve_heads.server, twelve_heads.server.engine, twelve_heads.server.heads\n"
              "banned = [m for m in ('torch', 'transformers', 'optimum') if m in sys.modules]\n"
              "assert not banned, banned\n"
              "print(twelve_heads.server.__file__)")
    result = subprocess.run([python, "-c", script], cwd=runtime_venv, env=outside_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert str(runtime_venv) in result.stdout  # imported from the install, not the checkout
    assert subprocess.run([python, "-c", "import torch"], capture_output=True, timeout=60).returncode != 0


def test_export_without_the_extra_says_what_to_install_in_one_line(runtime_venv, tmp_path):
    result = subprocess.run([str(runtime_venv / "bin" / "twelve-heads"), "export", "--demo", "--models-dir",
                             str(tmp_path)], cwd=tmp_path, env=outside_env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "install the export extra: pip install 'twelve-heads[export]'" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["--help"], ["serve", "--help"], ["export", "--help"]])
def test_every_subcommand_has_help(runtime_venv, command):
    result = subprocess.run([str(runtime_venv / "bin" / "twelve-heads"), *command], env=outside_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: twelve-heads")


def test_a_server_from_the_wheel_serves_the_page_every_asset_and_the_api(runtime_venv, tiny_model, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(tiny_model, models / "tiny")
    command = [str(runtime_venv / "bin" / "twelve-heads"), "serve", "--models-dir", str(models), "--port", "0"]
    with ServerProcess(models, command=command, cwd=tmp_path, env=outside_env()) as server:
        status, _, page = server.request("GET", "/")
        assert status == 200 and b"<title>" in page
        for asset in page_assets(server):
            status, _, _ = server.request("GET", asset)
            assert status == 200, asset
        status, _, body = server.request("POST", "/api/attention", {"text": "Hello world"})
        assert status == 200 and b'"heads"' in body
        assert "open http://127.0.0.1:0/" in server.stderr  # the one line it prints, and no exposure warning
        assert "serving on" not in server.stderr


def test_serve_binds_loopback_unless_told_and_warns_when_exposed():
    from twelve_heads.cli import EXPOSED_WARNING, is_loopback
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1")
    assert "nginx" in EXPOSED_WARNING


def test_flask_run_in_the_project_folder_serves_the_page(tiny_model, tmp_path):
    project = tmp_path / "twelve-heads"
    shutil.copytree(REPO, project, ignore=shutil.ignore_patterns(".venv", ".git", "models", ".cache", "artifacts"))
    port = free_port()
    env = {**outside_env(), "HEADS_MODELS_DIR": str(tiny_model.parent)}
    process = subprocess.Popen([str(Path(sys.executable).parent / "flask"), "run", "--port", str(port)], cwd=project,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in process.stdout:  # Flask prints where it listens once the app has loaded
            lines.append(line)
            if "Running on" in line:
                break
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as response:
            assert response.status == 200 and b"<title>" in response.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/models", timeout=30) as response:
            assert b'"tiny"' in response.read()
    finally:
        process.terminate()
        process.wait(30)
    assert any("Running on http://127.0.0.1" in line for line in lines), "".join(lines)


def test_the_readme_python_api_runs(tiny_model, tmp_path):
    """The README's notebook snippet, run as written against an exported model."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## From Python and notebooks", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    script = snippet.replace('"models/gpt2"', repr(str(tiny_model)))
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "previous-token" in result.stdout  # the snippet labels a planted previous-token pattern


class AssetParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.assets = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if attrs.get(key, "").startswith("/static/"):
                self.assets.append(attrs[key])


def page_assets(server) -> list[str]:
    """Every file the page loads: what index.html names, and every module those modules import."""
    parser = AssetParser()
    parser.feed(server.request("GET", "/")[2].decode())
    seen, queue = set(), list(parser.assets)
    while queue:
        asset = queue.pop()
        if asset in seen:
            continue
        seen.add(asset)
        if asset.endswith(".js"):
            source = server.request("GET", asset)[2].decode()
            queue += ["/static/" + name for name in re.findall(r'from\s+"\./([\w.-]+\.js)"', source)]
    assert len(seen) >= 5, seen
    return sorted(seen)
