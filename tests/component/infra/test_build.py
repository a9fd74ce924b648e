"""`sam build` of the real template, without a container (no Docker here): the layer gets
community_tracker and its arm64 dependencies under python/, each function its handler package.

Needs a python3.X interpreter matching the functions' runtime (SAM builds with it) and pip's
access to PyPI for the layer's manylinux aarch64 wheels.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.build import build, function_runtime, runtime_python, sam_executable
from infra.tables import load_template

pytestmark = pytest.mark.slow


@pytest.mark.timeout(900)
def test_sam_build_makes_the_layer_and_the_functions(tmp_path: Path) -> None:
    template = load_template()
    runtime = function_runtime()
    if sam_executable() is None:
        pytest.skip("no `sam`: aws-sam-cli is in the dev extra, run `make deps`")
    if runtime_python(runtime) is None:
        pytest.skip(f"no working {runtime} on PATH or in pyenv: sam build needs the runtime's interpreter")

    build_dir = tmp_path / "build"
    result = build(build_dir, cached=False)  # what `make build` runs, into a scratch directory
    assert result.returncode == 0, result.stdout + result.stderr

    layer = build_dir / "SharedLayer" / "python"
    assert (layer / "community_tracker" / "redis" / "live_state.py").is_file()
    assert list((layer / "community_tracker" / "redis" / "lua").glob("*.lua")), "the Lua scripts are package data"
    assert (layer / "redis").is_dir()
    assert (layer / "aws_lambda_powertools").is_dir()
    assert (layer / "pydantic_core").is_dir()
    # Compiled dependencies are Graviton builds for the runtime's Python, not this machine's.
    extensions = [path.name for path in layer.rglob("*.so")]
    assert any("aarch64" in name for name in extensions)
    assert not [name for name in extensions if "x86_64" in name]
    assert any(f"cpython-{runtime.removeprefix('python').replace('.', '')}" in name for name in extensions)
    # Bytecode compiled by the runtime's interpreter ships with the code (faster cold starts).
    tag = f"cpython-{runtime.removeprefix('python').replace('.', '')}"
    assert (layer / "community_tracker" / "redis" / "__pycache__" / f"live_state.{tag}.pyc").is_file()

    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        module_path = resource["Properties"]["Handler"].rpartition(".")[0].replace(".", "/") + ".py"
        assert (build_dir / logical_id / module_path).is_file(), f"{logical_id} lacks {module_path}"
        package = module_path.rpartition("/")[0]
        assert list((build_dir / logical_id / package / "__pycache__").glob(f"*.{tag}.pyc")), logical_id
