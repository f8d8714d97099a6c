"""``pip install ./bindings/python`` gives a working, typed package.

scripts/test installs the package into its virtual environment
(target/py-venv) and sets UTP_PY_INSTALLED=1; these tests then check the
installed copy, from outside the source tree. Run without that variable
(plain pytest in a checkout), they are skipped with the reason.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("UTP_PY_INSTALLED") != "1",
    reason="the package is not installed here (scripts/test installs it into target/py-venv)",
)


def run_outside(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with tempfile.TemporaryDirectory() as elsewhere:
        return subprocess.run(args, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_the_installed_package_is_imported_not_the_checkout():
    result = run_outside(sys.executable, "-c", "import utp; print(utp.__file__)")
    assert result.returncode == 0, result.stderr
    location = Path(result.stdout.strip())
    assert "site-packages" in location.parts, location
    assert (location.parent / "py.typed").is_file(), "the package is typed (PEP 561)"


def test_the_installed_package_frames_and_calculates():
    code = (
        "from utp import frame, evaluate\n"
        "data = frame.encode(frame.REQUEST, b'ADD 10 20', sequence=1)\n"
        "print(frame.decode(data).payload.decode(), evaluate(b'ADD 10 20'))\n"
    )
    result = run_outside(sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ADD 10 20 OK 30\n"


def test_the_utp_py_command_is_installed():
    command = shutil.which("utp-py", path=str(Path(sys.executable).parent))
    assert command, "pip installs the utp-py script next to the interpreter"
    result = run_outside(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "call" in result.stdout and "serve" in result.stdout
