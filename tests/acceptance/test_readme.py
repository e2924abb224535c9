"""The README, walked as a new user would: its install line in a fresh virtualenv, then its snippets in order.

Blocks marked `<!-- readme-run: KIND -->` run as they are written, extracted from README.md so the two cannot
drift: `bash` blocks in bash, `python` blocks with the virtualenv's python, `background` blocks as a process
left running (the README's webhook), `pytest` blocks as a user's test file. The environment plays the part
of a user's shell: the virtualenv first on PATH, and free ports through the `COMMGRID_*` and `PORT` variables
the README's commands and snippets read.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import clean_env, free_ports

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"<!-- readme-run: (\w+) -->\n```\w+\n(.*?)```", re.S)
INSTALL = re.compile(r"^(python3 -m pip install -e '\.\[sdk\]') && commgrid serve$", re.M)


def blocks() -> list[tuple[str, str]]:
    return BLOCK.findall(README.read_text())


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Iterator[Path]:
    """A fresh virtualenv with commgrid installed by the README's own install line."""
    found = INSTALL.search(README.read_text())
    assert found, "the README's start command must install with the sdk extra"
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=120)
    env = clean_env(PATH=f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}", VIRTUAL_ENV=str(root))
    for command in (found.group(1), "python3 -m pip install -q pytest"):
        done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, f"{command}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    yield root


def test_the_readme_works_from_a_fresh_virtualenv(venv: Path, tmp_path) -> None:
    http, https, webhook = free_ports(3)
    env = clean_env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", VIRTUAL_ENV=str(venv),
                    COMMGRID_DATA_DIR=str(tmp_path / "data"), COMMGRID_PORT=str(http),
                    COMMGRID_TLS_PORT=str(https), PORT=str(webhook))
    found = blocks()
    assert [kind for kind, _ in found] == ["bash", "python", "background", "bash", "pytest", "python"]
    left_running: list[subprocess.Popen] = []
    try:
        for n, (kind, code) in enumerate(found):
            if kind == "background":
                script = tmp_path / f"block{n}.py"
                script.write_text(code)
                left_running.append(subprocess.Popen([str(venv / "bin" / "python3"), str(script)], env=env,
                                                     cwd=tmp_path, start_new_session=True))
                _wait_for_port(int(env["PORT"]))
                continue
            done = _run(kind, code, n, venv, env, tmp_path, left_running)
            assert done.returncode == 0, f"README block {n} ({kind}) failed:\n{code}\n{done.stdout}\n{done.stderr}"
            if n == 0:
                _wait_for_port(int(env["COMMGRID_PORT"]))
    finally:
        for process in left_running:
            with contextlib.suppress(ProcessLookupError):  # a group whose processes all ended
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)


def _run(kind: str, code: str, n: int, venv: Path, env: dict[str, str], cwd: Path,
         left_running: list[subprocess.Popen]) -> subprocess.CompletedProcess:
    if kind == "bash":
        # A block that starts the server leaves it running (its `&`): its process group is ended at the end.
        # Output goes to files: a server left running would hold a pipe open.
        out, err = cwd / f"block{n}.out", cwd / f"block{n}.err"
        with out.open("w") as stdout, err.open("w") as stderr:
            process = subprocess.Popen(["bash", "-e", "-c", code], env=env, cwd=cwd, start_new_session=True,
                                       stdout=stdout, stderr=stderr)
            left_running.append(process)
            process.wait(120)
        return subprocess.CompletedProcess(process.args, process.returncode, out.read_text(), err.read_text())
    if kind == "pytest":
        test_file = cwd / f"test_readme_block{n}.py"
        test_file.write_text(code)
        return subprocess.run([str(venv / "bin" / "python3"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               str(test_file)], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    return subprocess.run([str(venv / "bin" / "python3"), "-c", code], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def _wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # something answers HTTP there
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing answered on port {port} within {timeout}s")
