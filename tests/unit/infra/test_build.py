"""`sam build` of the real template, without a container (no Docker here): the layer gets
community_tracker and its arm64 dependencies under python/, each function its handler package.

Needs a python3.X interpreter matching the functions' runtime (SAM builds with it) and pip's
access to PyPI for the layer's manylinux aarch64 wheels.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.tables import TEMPLATE, load_template

ROOT = TEMPLATE.parent

pytestmark = pytest.mark.slow


def sam_executable() -> str | None:
    """The venv's `sam` (aws-sam-cli is in the dev extra), else one on PATH."""
    beside_python = Path(sys.executable).parent / "sam"
    return str(beside_python) if beside_python.is_file() else shutil.which("sam")


def _works(python: Path) -> bool:
    try:
        return subprocess.run([python, "-m", "pip", "--version"], capture_output=True, timeout=60).returncode == 0
    except OSError:
        return False


def runtime_python_dir(runtime: str) -> Path | None:
    """Directory of a working `python3.X` for the runtime: on PATH, else a pyenv installation.
    (A pyenv shim on PATH exists for every installed version but fails unless that version is
    selected, hence the check that it runs.)"""
    candidates: list[Path] = []
    on_path = shutil.which(runtime)
    if on_path:
        candidates.append(Path(on_path))
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    version = runtime.removeprefix("python")
    candidates += sorted(pyenv_root.glob(f"versions/{version}.*/bin/{runtime}"), reverse=True)
    for candidate in candidates:
        if _works(candidate):
            return candidate.parent
    return None


@pytest.mark.timeout(900)
def test_sam_build_makes_the_layer_and_the_functions(tmp_path: Path) -> None:
    template = load_template()
    runtime = template["Globals"]["Function"]["Runtime"]
    sam = sam_executable()
    if sam is None:
        pytest.skip("no `sam`: aws-sam-cli is in the dev extra, run `make deps`")
    python_dir = runtime_python_dir(runtime)
    if python_dir is None:
        pytest.skip(f"no working {runtime} on PATH or in pyenv: sam build needs the runtime's interpreter")

    build_dir = tmp_path / "build"
    env = {
        **os.environ,
        "PATH": f"{python_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "SAM_CLI_TELEMETRY": "0",
    }
    result = subprocess.run(
        [
            sam,
            "build",
            "--template",
            str(TEMPLATE),
            "--build-dir",
            str(build_dir),
            # Explicit, whatever samconfig.toml says: nothing written into the checkout, no Docker.
            "--no-cached",
            "--no-use-container",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    layer = build_dir / "SharedLayer" / "python"
    assert (layer / "community_tracker" / "tracker.py").is_file()
    assert list((layer / "community_tracker" / "lua").glob("*.lua")), "the Lua scripts are package data"
    assert (layer / "redis").is_dir()
    assert (layer / "aws_lambda_powertools").is_dir()
    assert (layer / "pydantic_core").is_dir()
    # Compiled dependencies are Graviton builds for the runtime's Python, not this machine's.
    extensions = [path.name for path in layer.rglob("*.so")]
    assert any("aarch64" in name for name in extensions)
    assert not [name for name in extensions if "x86_64" in name]
    assert any(f"cpython-{runtime.removeprefix('python').replace('.', '')}" in name for name in extensions)

    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        module_path = resource["Properties"]["Handler"].rpartition(".")[0].replace(".", "/") + ".py"
        assert (build_dir / logical_id / module_path).is_file(), f"{logical_id} lacks {module_path}"
