"""``python -m bench.precheck_wall``: the connection check's wall time in Chromium.

One Konsil server (production flags, subprocess) and Debian's Chromium with a fake camera, on
this machine's own addresses (no network in between). Each run is a patient as on the join page:
consent, camera preview (the check's peer connection is made meanwhile), then the click on
"Weiter ins Wartezimmer"; the page's clock stamps the click and the moment the verdict appears.
Prints per run and p50/max: the wall time, the check's own duration (its result, capped by
``CHECK_CAP_MS``), how it ended (clear early / cap) and the verdict.

Docs: docs/performance.md, "Connection check". Not a test: the 3 s bound is enforced by the
code (``frontend/static/precheck.js``) and tested there; this measures what it is in practice.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, async_playwright

from bench.__main__ import PROD_FLAGS, ROOT, free_port
from bench.seed import seed

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Stamps the click (capture phase, before the page's own handler) and the verdict's appearance.
STAMP = """() => {
  window.__bench = {};
  const button = document.querySelector("[data-devices-ok]");
  const stamp = () => (window.__bench.click = performance.now());
  button.addEventListener("click", stamp, { capture: true });
  const box = document.querySelector("[data-check-result]");
  new MutationObserver(() => {
    if (!box.hidden && window.__bench.verdict === undefined) {
      window.__bench.verdict = performance.now();
      window.__bench.text = box.querySelector("[data-verdict-text]").textContent;
      window.__bench.kind = box.dataset.verdict;
    }
  }).observe(box, { attributes: true, attributeFilter: ["hidden", "data-verdict"] });
}"""


@contextlib.contextmanager
def konsil(workdir: Path, db: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "KONSIL_ENVIRONMENT": "development",
        "KONSIL_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "KONSIL_BASE_URL": url,
        "KONSIL_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log", *PROD_FLAGS]
    log = (workdir / "konsil.log").open("wb")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start, see {log.name}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


async def one_check(browser: Browser, url: str, cookie: str) -> dict[str, Any]:
    context = await browser.new_context(
        base_url=url, permissions=["camera", "microphone"], locale="de-DE"
    )
    await context.add_cookies([{"name": "konsil_patient", "value": cookie, "url": url}])
    try:
        page = await context.new_page()
        await page.goto("/join")
        await page.locator("input[name=consent]").check()
        await page.locator("[data-consent-form] button[type=submit]").click()
        await page.wait_for_function(
            "() => document.querySelector('[data-preview]').videoWidth > 0", timeout=30_000
        )
        await page.evaluate(STAMP)
        await page.locator("[data-devices-ok]").click()
        await page.wait_for_function("() => window.__bench.verdict !== undefined", timeout=30_000)
        stamps: dict[str, Any] = await page.evaluate("window.__bench")
        await page.locator("[data-verdict-details] summary").click()
        figures = await page.locator("[data-verdict-figures]").inner_text()
        return {
            "wall_ms": round(stamps["verdict"] - stamps["click"]),
            "verdict": stamps["kind"],
            "figures": figures,
        }
    finally:
        await context.close()


async def check_result(browser: Browser, url: str, cookie: str) -> dict[str, Any]:
    """The module's own result object (duration, how it ended), prepared 0.5 s before."""
    context = await browser.new_context(base_url=url, permissions=["camera", "microphone"])
    await context.add_cookies([{"name": "konsil_patient", "value": cookie, "url": url}])
    try:
        page = await context.new_page()
        await page.goto("/join")
        result: dict[str, Any] = await page.evaluate(
            """async () => {
              const m = await import("/static/precheck.js");
              const me = await (await fetch("/api/v1/patient/me")).json();
              const media = navigator.mediaDevices;
              const stream = await media.getUserMedia({ audio: true, video: true });
              const check = m.prepareConnectionCheck({ iceServers: [] });
              await new Promise((resolve) => setTimeout(resolve, 500));
              const result = await check.run({ csrfToken: me.csrf_token, stream });
              stream.getTracks().forEach((track) => track.stop());
              return result;
            }"""
        )
        return result
    finally:
        await context.close()


def summary(name: str, values: list[float]) -> str:
    return f"{name}: p50 {statistics.median(values):.0f} ms, max {max(values):.0f} ms"


def main(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        db = workdir / "bench.db"
        cookie = seed(f"sqlite+aiosqlite:///{db}", rooms=1).rooms[0][1]
        with konsil(workdir, db) as url:
            asyncio.run(measure(url, cookie, runs))


async def measure(url: str, cookie: str, runs: int) -> None:
    walls: list[float] = []
    durations: list[float] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for i in range(runs):
            page_run = await one_check(browser, url, cookie)
            module_run = await check_result(browser, url, cookie)
            walls.append(page_run["wall_ms"])
            durations.append(module_run["durationMs"])
            print(json.dumps({"run": i + 1, "page": page_run, "module": module_run}))
        await browser.close()
    print(summary("click to verdict on the join page", walls))
    print(summary("check duration (result.durationMs)", durations))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=10)
    main(parser.parse_args().runs)
