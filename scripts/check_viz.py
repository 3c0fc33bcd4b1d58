#!/usr/bin/env python
"""Smoke-test the kedro-viz UI of this project in headless Chromium.

Starts `kedro viz run` on a free loopback port (no browser; autoreload stays off), opens the
page in headless Chromium driven over the Chrome DevTools protocol, and fails (exit 1) when
the page logs a console error or an uncaught exception, or when the flowchart draws no node.
Prints one summary line; `--screenshot` saves what the browser rendered.

Failed requests to other hosts than the viz server (kedro-viz asks Google Fonts for its font)
are reported but not counted, so the check works offline; `--strict-network` counts them.

Needs the `viz` extra (`pip install -e ".[viz]"`: websocket-client) and a Chromium binary
(Debian: `apt-get install chromium`). Not part of CI. Usage, from the project root:

    .venv/bin/python scripts/check_viz.py --screenshot build_viz/kedro-viz.png
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
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
# Flags for a sandboxed, offline, throw-away browser.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
)
# What counts as a drawn graph / layer band in kedro-viz 12's flowchart SVG.
NODE_SELECTOR = ".pipeline-flowchart svg .pipeline-node"
LAYER_SELECTOR = ".pipeline-flowchart svg .pipeline-layer"
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
    errors: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)  # failed requests to other hosts
    screenshot: bytes | None = None


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


class DevTools:
    """The few Chrome DevTools protocol calls this check needs, over one websocket."""

    def __init__(self, ws_url: str, timeout: float) -> None:
        try:
            import websocket  # websocket-client, from the `viz` extra
        except ImportError as error:
            raise CheckError('websocket-client is missing: pip install -e ".[viz]"') from error

        self._ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events arriving meanwhile are kept."""
        message_id = next(self._ids)
        self._ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise CheckError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise CheckError(f"evaluate {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ws.close()


def is_external(url: str) -> bool:
    """A URL on another host than the local viz server (data: URLs and the like are local)."""
    host = urllib.parse.urlsplit(url).hostname
    return host is not None and host not in LOOPBACK


def console_errors(events: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Console errors, uncaught exceptions and browser log errors among the CDP events, split
    into (errors, failed requests to hosts other than the local server)."""
    errors, external = [], []
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in args)
            errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            description = details.get("exception", {}).get("description") or details.get("text")
            errors.append(f"uncaught exception: {description}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            text = f"{entry.get('source', 'log')}: {entry.get('text')} {entry.get('url', '')}"
            if entry.get("source") == "network" and is_external(entry.get("url", "")):
                external.append(text)
            else:
                errors.append(text)
    return errors, external


@contextlib.contextmanager
def chromium(binary: str, width: int, height: int, timeout: float) -> Iterator[DevTools]:
    """Headless Chromium with a fresh profile; yields a DevTools client on its first tab."""
    profile = Path(tempfile.mkdtemp(prefix="check-viz-chromium-"))
    command = [
        binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
        "--remote-debugging-address=127.0.0.1", f"--window-size={width},{height}", "about:blank",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    client = None
    try:
        # Chromium writes the port it picked (first line) into the profile.
        port_file = profile / "DevToolsActivePort"
        port = wait_until(
            "chromium DevTools",
            lambda: port_file.exists() and port_file.read_text().split("\n", 1)[0].strip(),
            timeout,
            alive=lambda: process.poll() is None,
        )
        targets = wait_until(
            "chromium page target",
            lambda: [
                t for t in json.loads(http_get(f"http://127.0.0.1:{port}/json/list"))
                if t.get("type") == "page"
            ],
            timeout,
        )  # fmt: skip
        client = DevTools(targets[0]["webSocketDebuggerUrl"], timeout)
        yield client
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.call("Browser.close")
            client.close()
        _terminate(process, grace=5.0)
        shutil.rmtree(profile, ignore_errors=True)


def inspect_page(
    devtools: DevTools, url: str, width: int, height: int, timeout: float, settle: float
) -> PageReport:
    """Load the page, wait for the flowchart, give late errors `settle` seconds, screenshot."""
    for domain in ("Page", "Runtime", "Log"):
        devtools.call(f"{domain}.enable")
    devtools.call("Page.addScriptToEvaluateOnNewDocument", source=NO_FEATURE_HINTS)
    devtools.call(
        "Emulation.setDeviceMetricsOverride",
        width=width, height=height, deviceScaleFactor=1, mobile=False,
    )  # fmt: skip
    navigation = devtools.call("Page.navigate", url=url)
    if navigation.get("errorText"):
        raise CheckError(f"opening {url}: {navigation['errorText']}")
    count = f"document.querySelectorAll({json.dumps(NODE_SELECTOR)}).length"
    report = PageReport()
    try:
        report.nodes = wait_until("flowchart nodes", lambda: devtools.evaluate(count), timeout)
    except CheckError as error:
        logger.warning("%s", error)
    time.sleep(settle)
    devtools.evaluate("0")  # drain the events that arrived while settling
    report.nodes = int(devtools.evaluate(count) or 0)
    report.layers = int(
        devtools.evaluate(f"document.querySelectorAll({json.dumps(LAYER_SELECTOR)}).length") or 0
    )
    report.errors, report.external = console_errors(devtools.events)
    shot = devtools.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
    report.screenshot = base64.b64decode(shot["data"])
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, default=PROJECT_ROOT, help="Kedro project root")
    parser.add_argument("--env", default=None, help="Kedro environment (default: the project's)")
    parser.add_argument("--pipeline", default=None, help="registered pipeline to show")
    parser.add_argument("--port", type=int, default=None, help="default: a free loopback port")
    parser.add_argument("--chromium", default=None, help="Chromium/Chrome binary")
    parser.add_argument("--screenshot", type=Path, default=None, help="save a PNG here")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds for each wait")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to watch after load")
    parser.add_argument("--size", default="1600x1000", help="viewport WIDTHxHEIGHT")
    parser.add_argument(
        "--ignore", action="append", default=[], metavar="REGEX",
        help="console errors matching this are not failures (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--strict-network", action="store_true",
        help="count failed requests to other hosts (fonts, ...) as errors too",
    )  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    match = re.fullmatch(r"(\d+)x(\d+)", args.size)
    if not match:
        print(f"kedro-viz check FAILED: --size {args.size!r} is not WIDTHxHEIGHT")
        return 1
    width, height = int(match[1]), int(match[2])
    started = time.monotonic()
    try:
        binary = find_chromium(args.chromium)
        port = args.port or free_port()
    except CheckError as error:
        print(f"kedro-viz check FAILED: {error}")
        return 1
    log = Path(tempfile.mkstemp(prefix="kedro-viz-", suffix=".log")[1])
    try:
        with (
            viz_server(args.project, port, args.env, args.pipeline, args.timeout, log) as url,
            chromium(binary, width, height, args.timeout) as devtools,
        ):
            report = inspect_page(devtools, url, width, height, args.timeout, args.settle)
    except CheckError as error:
        print(f"kedro-viz check FAILED: {error} (server log: {log})")
        return 1
    if args.screenshot and report.screenshot:
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        args.screenshot.write_bytes(report.screenshot)
    ignored = [re.compile(p) for p in args.ignore]
    seen = report.errors + (report.external if args.strict_network else [])
    errors = [e for e in seen if not any(p.search(e) for p in ignored)]
    for error in errors:
        logger.error("%s", error)
    if not args.strict_network:
        for request in report.external:
            logger.warning("not counted (other host): %s", request)
    problems = [f"{len(errors)} console error(s)"] if errors else []
    if report.nodes == 0:
        problems.append("empty flowchart (no node drawn)")
    summary = (
        f"{report.nodes} flowchart nodes, {report.layers} layer bands, "
        f"{len(errors)} console errors ({len(seen) - len(errors)} ignored, "
        f"{0 if args.strict_network else len(report.external)} failed external requests "
        "not counted), "
        f"{time.monotonic() - started:.1f} s"
        + (f", screenshot {args.screenshot}" if args.screenshot else "")
    )
    if problems:
        first = f": first error: {errors[0][:300]}" if errors else ""
        print(f"kedro-viz check FAILED ({'; '.join(problems)}): {summary}{first}")
        return 1
    log.unlink(missing_ok=True)
    print(f"kedro-viz check OK: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
