#!/usr/bin/env python
"""Smoke-test the kedro-viz UI of this project in headless Chromium, through Playwright.

Starts `kedro viz run` on a free loopback port (no browser; autoreload stays off), opens the
page in the system Chromium driven by Playwright (never a downloaded browser build), waits for
the flowchart, then clicks a Spark table (default `bronze_images`) and checks that its preview
table and row count render, and clicks a plot (default `correlations_plot`) and checks that
its image renders. Fails (exit 1) on a console error, an uncaught exception, an empty
flowchart or a missing preview. Prints one summary line; `--screenshot` saves the page with the
Spark table's preview open.

Requests to other hosts than the viz server (kedro-viz asks Google Fonts for its font) are
blocked, so the check runs offline; they are reported, not counted.

Needs the `viz` extra (`pip install -e ".[viz]"`: playwright), Debian's `chromium`
(`apt-get install chromium`) and a finished `kedro run` (the previews read its data).
Not part of CI. Usage, from the project root:

    .venv/bin/python scripts/check_viz.py --screenshot build_viz/kedro-viz.png
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("check_viz")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# kedro-viz refuses ports above the registered range (it scans upwards from the one it is given).
PORT_RANGE = (20000, 49000)
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ("--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic")
# kedro-viz 12's DOM: flowchart nodes, their labels, the metadata panel and its previews.
NODE_SELECTOR = ".pipeline-flowchart svg .pipeline-node"
NODE_LABEL_SELECTOR = ".pipeline-node__text"
LAYER_SELECTOR = ".pipeline-flowchart svg .pipeline-layer"
TABLE_CELL_SELECTOR = ".pipeline-metadata__preview .preview-table .preview-table__data"
PLOT_IMAGE_SELECTOR = ".pipeline-metadata__plot img"
ROWS_STAT_SELECTOR = '[data-test="metadata-stats-value-rows"]'
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Before the app starts: turn off the onboarding tour, which would cover the graph in screenshots.
NO_FEATURE_HINTS = """
try {
  const state = JSON.parse(localStorage.getItem("KedroViz") || "{}");
  state.showFeatureHints = false;
  localStorage.setItem("KedroViz", JSON.stringify(state));
} catch (e) {}
"""


class CheckError(RuntimeError):
    """The check could not run (no browser, server did not start, ...)."""


@dataclass
class PageReport:
    """What the browser saw."""

    nodes: int = 0
    layers: int = 0
    table_cells: int = 0
    table_rows_stat: str | None = None
    plot_width: int = 0
    problems: list[str] = field(default_factory=list)  # missing previews and the like
    errors: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)  # blocked requests to other hosts


def free_port(host: str = "127.0.0.1", tries: int = 50) -> int:
    """A port that nothing listens on, inside the range kedro-viz accepts."""
    for _ in range(tries):
        port = random.randint(*PORT_RANGE)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise CheckError(f"no free port found in {PORT_RANGE} after {tries} tries")


def http_get(url: str, timeout: float = 5.0) -> bytes:
    # Loopback only: bypass any proxy configured in the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as response:
        return response.read()


def wait_until(what: str, probe, timeout: float, interval: float = 0.5, alive=None) -> Any:
    """Call `probe` until it returns something truthy; `alive` says whether to keep waiting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise CheckError(f"{what}: the process exited")
        with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
            result = probe()
            if result:
                return result
        time.sleep(interval)
    raise CheckError(f"{what}: not ready after {timeout:.0f} s")


def find_chromium(explicit: str | None) -> str:
    candidates = [explicit] if explicit else CHROMIUM_CANDIDATES
    for name in candidates:
        path = shutil.which(name) if name else None
        if path:
            return path
    raise CheckError(
        f"no Chromium found (tried {', '.join(c for c in candidates if c)}); "
        "install one (Debian: apt-get install chromium) or pass --chromium PATH"
    )


def _terminate(process: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop a process started in its own group, and everything it spawned."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(grace)


@contextlib.contextmanager
def viz_server(
    project: Path, port: int, env: str | None, pipeline: str | None, timeout: float, log: Path
) -> Iterator[str]:
    """`kedro viz run` in the project; yields its URL once /api/main answers."""
    command = [
        sys.executable, "-m", "kedro", "viz", "run",
        "--host", "127.0.0.1", "--port", str(port), "--no-browser",
    ]  # fmt: skip
    if env:
        command += ["--env", env]
    if pipeline:
        command += ["--pipeline", pipeline]
    environment = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}
    url = f"http://127.0.0.1:{port}"
    logger.info("starting %s (log: %s)", " ".join(command[1:]), log)
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=project, env=environment, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            wait_until(
                "kedro viz run",
                lambda: json.loads(http_get(f"{url}/api/main")).get("nodes") is not None,
                timeout,
                alive=lambda: process.poll() is None,
            )
            yield url
        finally:
            _terminate(process)


def is_external(url: str) -> bool:
    """A URL on another host than the local viz server (data: URLs and the like are local)."""
    host = urllib.parse.urlsplit(url).hostname
    return host is not None and host not in LOOPBACK


def label_pattern(dataset: str) -> re.Pattern[str]:
    """kedro-viz shows `bronze_images` as is or, with pretty names on, as `Bronze Images`."""
    words = r"[ _]".join(re.escape(w) for w in dataset.split("_"))
    return re.compile(rf"^\s*{words}\s*$", re.IGNORECASE)


def open_node(page: Any, dataset: str, timeout_ms: float) -> None:
    """Select a flowchart node by its dataset name (D3 listens for the click on the group)."""
    label = page.locator(NODE_LABEL_SELECTOR, has_text=label_pattern(dataset))
    node = page.locator(NODE_SELECTOR, has=label).first
    if node.count() == 0:
        raise CheckError(f"no flowchart node named {dataset!r}")
    node.dispatch_event("click")
    page.wait_for_selector(".pipeline-metadata", timeout=timeout_ms)


def inspect_page(page: Any, url: str, args: argparse.Namespace) -> PageReport:
    """Load the page, check the flowchart, the Spark table's and the plot's previews."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    report = PageReport()
    timeout_ms = args.timeout * 1000

    def on_console(message: Any) -> None:
        if message.type not in ("error", "assert"):
            return
        where = (message.location or {}).get("url", "")
        text = f"console.{message.type}: {message.text} {where}".strip()
        (report.external if is_external(where) else report.errors).append(text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: report.errors.append(f"uncaught exception: {error}"))
    page.add_init_script(NO_FEATURE_HINTS)
    page.route(
        lambda request_url: is_external(request_url),
        lambda route: (report.external.append(f"blocked: {route.request.url}"), route.abort()),
    )
    page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
    try:
        page.wait_for_selector(NODE_SELECTOR, timeout=timeout_ms)
    except PlaywrightTimeout as error:  # reported as an empty flowchart
        logger.warning("flowchart nodes: %s", error)
    report.nodes = page.locator(NODE_SELECTOR).count()
    report.layers = page.locator(LAYER_SELECTOR).count()
    if report.nodes == 0:
        report.problems.append("empty flowchart (no node drawn)")
        return report

    open_node(page, args.dataset, timeout_ms)
    try:
        page.wait_for_selector(TABLE_CELL_SELECTOR, timeout=timeout_ms)
    except PlaywrightTimeout:  # reported below as a missing preview
        logger.warning("no preview table for %s", args.dataset)
    report.table_cells = page.locator(TABLE_CELL_SELECTOR).count()
    if page.locator(ROWS_STAT_SELECTOR).count():
        report.table_rows_stat = page.locator(ROWS_STAT_SELECTOR).first.inner_text().strip()
    if report.table_cells == 0:
        report.problems.append(f"no preview table for {args.dataset} (has `kedro run` written it?)")
    time.sleep(args.settle)
    if args.screenshot:
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.screenshot))

    open_node(page, args.plot, timeout_ms)
    try:
        page.wait_for_selector(PLOT_IMAGE_SELECTOR, timeout=timeout_ms)
        report.plot_width = int(
            page.locator(PLOT_IMAGE_SELECTOR).first.evaluate("img => img.naturalWidth") or 0
        )
    except PlaywrightTimeout:  # reported below as a missing preview
        logger.warning("no plot image for %s", args.plot)
    if report.plot_width == 0:
        report.problems.append(f"no rendered image for {args.plot}")
    time.sleep(args.settle)
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, default=PROJECT_ROOT, help="Kedro project root")
    parser.add_argument("--env", default=None, help="Kedro environment (default: the project's)")
    parser.add_argument("--pipeline", default=None, help="registered pipeline to show")
    parser.add_argument("--port", type=int, default=None, help="default: a free loopback port")
    parser.add_argument("--chromium", default=None, help="Chromium/Chrome binary")
    parser.add_argument("--dataset", default="bronze_images", help="Spark table to preview")
    parser.add_argument("--plot", default="correlations_plot", help="plot to preview")
    parser.add_argument("--screenshot", type=Path, default=None, help="save a PNG here")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds for each wait")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds to watch after each")
    parser.add_argument("--size", default="1600x1000", help="viewport WIDTHxHEIGHT")
    parser.add_argument(
        "--ignore", action="append", default=[], metavar="REGEX",
        help="console errors matching this are not failures (repeatable)",
    )  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def run_check(
    args: argparse.Namespace, binary: str, width: int, height: int
) -> tuple[PageReport, Path]:
    """The page report, and the viz server's log (kept when the check fails)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        raise CheckError('playwright is missing: pip install -e ".[viz]"') from error
    port = args.port or free_port()
    log = Path(tempfile.mkstemp(prefix="kedro-viz-", suffix=".log")[1])
    try:
        with (
            viz_server(args.project, port, args.env, args.pipeline, args.timeout, log) as url,
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(
                executable_path=binary, headless=True, args=list(CHROMIUM_FLAGS)
            )
            try:
                page = browser.new_page(viewport={"width": width, "height": height})
                return inspect_page(page, url, args), log
            finally:
                browser.close()
    except CheckError as error:
        raise CheckError(f"{error} (server log: {log})") from error


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    match = re.fullmatch(r"(\d+)x(\d+)", args.size)
    started = time.monotonic()
    try:
        if not match:
            raise CheckError(f"--size {args.size!r} is not WIDTHxHEIGHT")
        binary = find_chromium(args.chromium)
        report, log = run_check(args, binary, int(match[1]), int(match[2]))
    except CheckError as error:
        sys.stdout.write(f"kedro-viz check FAILED: {error}\n")
        return 1
    ignored = [re.compile(p) for p in args.ignore]
    errors = [e for e in report.errors if not any(p.search(e) for p in ignored)]
    for error in errors:
        logger.error("%s", error)
    for request in report.external:
        logger.info("not counted (other host): %s", request)
    problems = ([f"{len(errors)} console error(s)"] if errors else []) + report.problems
    summary = (
        f"{report.nodes} flowchart nodes, {report.layers} layer bands, "
        f"{args.dataset}: {report.table_cells} preview cells, rows {report.table_rows_stat}; "
        f"{args.plot}: image {report.plot_width} px wide; "
        f"{len(errors)} console errors ({len(report.errors) - len(errors)} ignored, "
        f"{len(report.external)} external requests blocked), "
        f"{time.monotonic() - started:.1f} s"
        + (f", screenshot {args.screenshot}" if args.screenshot else "")
    )
    if problems:
        first = f": first error: {errors[0][:300]}" if errors else ""
        sys.stdout.write(
            f"kedro-viz check FAILED ({'; '.join(problems)}): {summary}{first} "
            f"(server log: {log})\n"
        )
        return 1
    log.unlink(missing_ok=True)
    sys.stdout.write(f"kedro-viz check OK: {summary}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
