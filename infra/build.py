"""`make build`: `sam build` of template.yaml without a container, then the artifacts' bytecode.

SAM builds with the functions' runtime interpreter (python3.13), found on PATH or in pyenv. The
bytecode is compiled by that same interpreter as unchecked-hash .pyc files, so a cold start on
Lambda (read-only /var/task and /opt) imports compiled modules instead of compiling them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from infra.tables import TEMPLATE, load_template

ROOT = TEMPLATE.parent
DEFAULT_BUILD_DIR = ROOT / ".aws-sam" / "build"


def sam_executable() -> str | None:
    """The venv's `sam` (aws-sam-cli is in the dev extra), else one on PATH."""
    beside_python = Path(sys.executable).parent / "sam"
    return str(beside_python) if beside_python.is_file() else shutil.which("sam")


def _works(python: Path) -> bool:
    try:
        return subprocess.run([python, "-m", "pip", "--version"], capture_output=True, timeout=60).returncode == 0
    except OSError:
        return False


def runtime_python(runtime: str) -> Path | None:
    """A working `python3.X` for the runtime: on PATH, else a pyenv installation. (A pyenv shim on
    PATH exists for every installed version but fails unless that version is selected, hence the
    check that it runs.)"""
    candidates: list[Path] = []
    on_path = shutil.which(runtime)
    if on_path:
        candidates.append(Path(on_path))
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    version = runtime.removeprefix("python")
    candidates += sorted(pyenv_root.glob(f"versions/{version}.*/bin/{runtime}"), reverse=True)
    return next((candidate for candidate in candidates if _works(candidate)), None)


def function_runtime() -> str:
    return str(load_template()["Globals"]["Function"]["Runtime"])


def build(build_dir: Path = DEFAULT_BUILD_DIR, *, cached: bool = True) -> subprocess.CompletedProcess[str]:
    runtime = function_runtime()
    sam = sam_executable()
    python = runtime_python(runtime)
    if sam is None:
        raise SystemExit("no `sam`: run `make deps` (aws-sam-cli is in the dev extra)")
    if python is None:
        raise SystemExit(f"sam build needs a working {runtime} on PATH (or in pyenv) for the functions' runtime")
    env = {**os.environ, "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}", "SAM_CLI_TELEMETRY": "0"}
    command = [sam, "build", "--template", str(TEMPLATE), "--build-dir", str(build_dir), "--no-use-container"]
    command.append("--cached" if cached else "--no-cached")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=840)
    if result.returncode != 0:
        return result
    compiled = subprocess.run(
        [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(build_dir)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return subprocess.CompletedProcess(command, compiled.returncode, result.stdout + compiled.stdout, compiled.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD_DIR)
    args = parser.parse_args(argv)
    result = build(args.build_dir)
    print(result.stdout, end="")
    print(result.stderr, end="", file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
