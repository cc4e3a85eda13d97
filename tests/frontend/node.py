"""Runs a module of frontend/static in Node.js for the tests of the pages' own rules: the module
is copied as ``<name>.mjs`` (so Node.js reads it as an ES module without a package.json) into
the test's directory, where the script imports it from; what the script prints (JSON) comes
back parsed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.services import require

STATIC = Path(__file__).resolve().parents[2] / "frontend" / "static"


def run_module(module: str, script: str, tmp_path: Path) -> Any:
    """Runs ``script`` in Node.js in ``tmp_path``, beside ``frontend/static/<module>`` copied
    there as ``<name>.mjs``; what it prints (JSON) comes back."""
    node = shutil.which("node")
    require(node is not None, "Node.js (node)")
    assert node is not None
    shutil.copy(STATIC / module, (tmp_path / module).with_suffix(".mjs"))
    done = subprocess.run(
        [node, "--input-type=module", "-e", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
