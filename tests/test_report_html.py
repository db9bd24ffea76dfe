"""The HTML reports render in headless Chromium: the page loads, every embedded image decodes
(naturalWidth > 0), the console stays free of errors; plus what the run page must show.

Chromium is driven over the DevTools protocol (aiohttp, shipped with ray[default]). Without
the Debian `chromium` package these tests fail, on purpose: CI must install it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest

from jobs.cli import main
from jobs.run import execute
from pipeline.config import build_config


async def _inspect(port: int, url: str) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.put(f"http://127.0.0.1:{port}/json/new?about:blank") as response:
            target = await response.json(content_type=None)
        async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            ids, errors = iter(range(1, 10_000)), []

            async def call(method: str, **params) -> dict:
                message_id = next(ids)
                await ws.send_json({"id": message_id, "method": method, "params": params})
                while True:
                    message = json.loads((await ws.receive()).data)
                    method_name = message.get("method", "")
                    if method_name == "Runtime.exceptionThrown":
                        errors.append(message["params"]["exceptionDetails"].get("text"))
                    elif method_name == "Runtime.consoleAPICalled" and message["params"]["type"] == "error":
                        errors.append(str(message["params"]["args"]))
                    elif method_name == "Log.entryAdded" and message["params"]["entry"]["level"] == "error":
                        errors.append(message["params"]["entry"]["text"])
                    elif message.get("id") == message_id:
                        return message.get("result", {})

            for domain in ("Page", "Runtime", "Log"):
                await call(f"{domain}.enable")
            await call("Page.navigate", url=url)
            state = ""
            while state != "complete":
                await asyncio.sleep(0.1)
                state = (await call("Runtime.evaluate", expression="document.readyState"))["result"]["value"]
            widths = await call(
                "Runtime.evaluate", awaitPromise=True, returnByValue=True,
                expression="Promise.all(Array.from(document.images).map("
                           "i => i.decode().then(() => i.naturalWidth, () => 0)))",
            )
            text = await call("Runtime.evaluate", expression="document.body.innerText", returnByValue=True)
            shot = await call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            return {"widths": widths["result"]["value"], "text": text["result"]["value"],
                    "errors": errors, "png": base64.b64decode(shot["data"])}


def inspect_page(page: Path, tmp_path: Path) -> dict:
    """Loads `page` in headless Chromium; returns image widths, body text, errors, screenshot."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("chromium is not installed: the HTML report check needs it (apt-get install -y chromium)")
    process = subprocess.Popen(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,900",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--remote-debugging-port=0", "about:blank"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        for line in process.stderr:
            match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if match:
                break
        else:
            pytest.fail(f"chromium exited ({process.wait()}) before opening DevTools")
        return asyncio.run(asyncio.wait_for(_inspect(int(match.group(1)), page.resolve().as_uri()), 60))
    finally:
        process.terminate()
        process.wait(timeout=10)


def _check(page: Path, tmp_path: Path, n_images: int) -> dict:
    result = inspect_page(page, tmp_path)
    assert result["errors"] == []
    assert len(result["widths"]) >= n_images and all(w > 0 for w in result["widths"])
    # kept beside the test's files for a look (pytest prints the tmp_path of a failed test)
    (tmp_path / f"{page.stem}.png").write_bytes(result["png"])
    assert result["png"].startswith(b"\x89PNG")
    return result


def test_run_report_shows_scores_saliency_plot_and_highlighted_captions(local_ray, synth, tmp_path):
    config = build_config({
        "method": {"name": "greedy", "record_saliency": True},
        "benchmark": {"name": "chair", "root": str(synth.coco_root), "limit": 4},
        "generation": {"max_new_tokens": 12, "batch_size": 4},
        "output_dir": str(tmp_path / "runs"),
    })
    execute(config, log=lambda _: None)
    assert main(["report", str(config.run_dir)]) == 0
    page = config.run_dir / "report.html"
    html = page.read_text()
    assert "http://" not in html and "https://" not in html  # self-contained
    assert html.count('class="tok') >= 12 and "rgba(33, 102, 172" in html  # saliency as colour
    result = _check(page, tmp_path, n_images=1)
    for heading in ("Scores", "Saliency vs hallucination", "Example captions", "samples (by sample id)"):
        assert heading in result["text"]
    assert "chair_s" in result["text"]
    scores = json.loads((config.run_dir / "scores.json").read_text())
    hallucinated = [c for c in scores["metrics"]["chair"]["per_caption"][:3] if c["hallucinated"]]
    if hallucinated:  # the tiny random model names objects at random; show them marked
        assert 'class="tok obj-hall"' in html


def test_grid_and_ledger_pages_render(local_ray, synth, tmp_path):
    from tests.test_nightly import _suite

    suite, ledger = _suite(synth, tmp_path), tmp_path / "ledger.parquet"
    # Two nights (a re-run of one night replaces it in the ledger, so each gets its own name).
    assert main(["nightly", str(suite), "--baseline", str(ledger), "--update-baseline", "--night", "n1"]) == 0
    assert main(["nightly", str(suite), "--baseline", str(ledger), "--update-baseline", "--night", "n2"]) == 0
    grid_dir = next((tmp_path / "runs" / "nightly").glob("*/grids/tiny-nightly"))
    assert main(["report", str(grid_dir)]) == 0
    _check(grid_dir / "grid.html", tmp_path, n_images=0)
    nightly = _check(grid_dir / "nightly.html", tmp_path, n_images=2)  # chair and pope over time
    assert "Scores against the baseline" in nightly["text"]
    assert main(["report", str(ledger)]) == 0
    _check(tmp_path / "nightly.html", tmp_path, n_images=2)
