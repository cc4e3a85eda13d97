"""Runs a module of frontend/static in Node.js for the tests of the pages' own rules: the module
is copied as ``<name>.mjs`` (so Node.js reads it as an ES module without a package.json) into
the test's directory, where the script imports it from; what the script prints (JSON) comes
back parsed."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.services import require

STATIC = Path(__file__).resolve().parents[2] / "frontend" / "static"


def fake_timers(start: int) -> str:
    """Script text: a clock at ``start`` ms that moves only when the script says so (``advance``
    fires the timers due on the way, in order; ``clock`` is the time now)."""
    return (
        f"let clock = {start};\n"
        + """
let nextTimer = 1;
const timers = new Map();
globalThis.setTimeout = (fn, ms) => {
  const id = nextTimer++;
  timers.set(id, { at: clock + Math.max(0, ms || 0), fn });
  return id;
};
globalThis.clearTimeout = (id) => { timers.delete(id); };
function advance(ms) {
  const end = clock + ms;
  for (;;) {
    let due = null;
    for (const [id, t] of timers) if (t.at <= end && (!due || t.at < due[1].at)) due = [id, t];
    if (!due) break;
    timers.delete(due[0]);
    clock = Math.max(clock, due[1].at);
    due[1].fn();
  }
  clock = end;
}
"""
    )


def run_module(module: str, script: str, tmp_path: Path) -> Any:
    """Runs ``script`` in Node.js in ``tmp_path``, beside ``frontend/static/<module>`` copied
    there as ``<name>.mjs``; what it prints (JSON) comes back."""
    shutil.copy(STATIC / module, (tmp_path / module).with_suffix(".mjs"))
    return _node(script, tmp_path)


def run_modules(modules: Sequence[str], script: str, tmp_path: Path) -> Any:
    """The same for modules that import each other: copied under their own names, with a
    package.json that tells Node.js they are ES modules."""
    for module in modules:
        shutil.copy(STATIC / module, tmp_path / module)
    (tmp_path / "package.json").write_text('{"type": "module"}')
    return _node(script, tmp_path)


def _node(script: str, tmp_path: Path) -> Any:
    node = shutil.which("node")
    require(node is not None, "Node.js (node)")
    assert node is not None
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
