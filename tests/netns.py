"""A network of the test's own: a namespace with one end of a veth pair, the other end in the
root namespace, two addresses of a /30 in a 10.x.y.0/24 that no interface of this machine uses.

Used by the network cuts of ``make chaos`` (tests/chaos/test_network_cut.py) and by the browser
tests that run a patient's Chromium inside the namespace (tests/browser/test_call_quality.py).
The kernels here have veth pairs, ``ip netns``, link down/up and the ``tbf`` qdisc, but no
``netem`` and no ``prio`` (docs/reliability.md): a cut is the root end of the pair taken down
(packets vanish both ways, as in a dead spot: nobody on either side gets an error it could act
on at once), a slow line is ``tbf``. The namespace and the pair are removed when the block ends,
also when it fails half-way; the names carry the caller's label, this process's id and a random
part so that parallel runs do not clash. Needs root and iproute2: outside CI a machine without
them skips, with ``CI`` set that is a failure (tests/services.py).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from tests.services import require

# A tbf that lets a short burst through and drops what waits longer than 400 ms.
SHAPE = ("burst", "16kbit", "latency", "400ms")


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=20)


@dataclass
class Line:
    """The veth pair: ``root_address`` on ``root_link`` in the root namespace, ``address`` on
    ``link`` inside ``namespace``."""

    namespace: str
    root_link: str
    link: str
    root_address: str
    address: str

    def inside(self, *command: str) -> list[str]:
        """``command`` run inside the namespace."""
        return ["ip", "netns", "exec", self.namespace, *command]

    def cut(self) -> None:
        """The link goes down at the root end: nothing passes in either direction."""
        run("ip", "link", "set", self.root_link, "down")

    def restore(self) -> None:
        run("ip", "link", "set", self.root_link, "up")

    def limit(self, rate: str) -> None:
        """A ``tbf`` rate limit on what leaves the namespace only (the patient's upload)."""
        run(
            *self.inside(
                "tc", "qdisc", "replace", "dev", self.link, "root", "tbf", "rate", rate, *SHAPE
            )
        )

    def lift(self) -> None:
        """Ends :meth:`limit` (and the namespace's half of :meth:`throttle`)."""
        run(*self.inside("tc", "qdisc", "del", "dev", self.link, "root"))

    def throttle(self, rate: str) -> None:
        """A ``tbf`` rate limit both ways: what leaves the namespace (the patient's upload) and
        what enters it (its download)."""
        self.limit(rate)
        run("tc", "qdisc", "replace", "dev", self.root_link, "root", "tbf", "rate", rate, *SHAPE)

    def unthrottle(self) -> None:
        self.lift()
        run("tc", "qdisc", "del", "dev", self.root_link, "root")


def free_subnet() -> tuple[str, str]:
    """Two addresses of a /30 in a 10.x.y.0/24 (x from 100 to 250) of which no interface of
    this machine has any address: stricter than a free /30, so that no route of the machine's
    own can cover the test's addresses."""
    used = subprocess.run(
        ["ip", "-4", "-o", "addr"], check=True, capture_output=True, text=True
    ).stdout
    for _ in range(100):
        base = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}."
        last = random.randrange(0, 256, 4)
        if f" {base}" not in used:
            return f"{base}{last + 1}", f"{base}{last + 2}"
    raise RuntimeError("no free /24 in 10.100.0.0-10.250.255.255")


@contextlib.contextmanager
def veth_namespace(label: str) -> Iterator[Line]:
    """A fresh namespace and veth pair named after ``label`` (a few letters: link names have at
    most 15 characters), removed again when the block ends."""
    tools = all(shutil.which(tool) for tool in ("ip", "tc"))
    require(tools and os.geteuid() == 0, "root with iproute2 (ip netns, tc)")
    tag = f"{label}{os.getpid() % 100000}{random.randint(0, 99):02d}"
    root_address, address = free_subnet()
    line = Line(f"konsil-{tag}", f"{tag}r", f"{tag}n", root_address, address)
    try:
        run("ip", "netns", "add", line.namespace)
        run("ip", "link", "add", line.root_link, "type", "veth", "peer", "name", line.link)
        run("ip", "link", "set", line.link, "netns", line.namespace)
        run("ip", "addr", "add", f"{root_address}/30", "dev", line.root_link)
        run("ip", "link", "set", line.root_link, "up")
        run(*line.inside("ip", "addr", "add", f"{address}/30", "dev", line.link))
        run(*line.inside("ip", "link", "set", line.link, "up"))
        run(*line.inside("ip", "link", "set", "lo", "up"))
        yield line
    finally:
        # Deleting one end deletes the pair; both even if the set-up stopped half-way.
        subprocess.run(["ip", "link", "del", line.root_link], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", line.namespace], check=False, capture_output=True)
