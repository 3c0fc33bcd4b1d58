"""`mlflow models serve` on a registered tiny model answers a real HTTP request (the README's
command), then is stopped by its process group."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.core.deploy.helpers import CLASS_NAMES, png_bytes, tiny_bundle

pytestmark = pytest.mark.slow
START_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _registered(tmp_path: Path) -> tuple[str, str]:
    """A tiny bundle logged and registered in a temp SQLite store: (store uri, model uri)."""
    from mlflow.tracking import MlflowClient

    from xai_kedro.core.deploy.model import log_deployed_model

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("serve", artifact_location=(tmp_path / "art").as_uri())
    run = client.create_run(experiment)
    info = log_deployed_model(
        tiny_bundle(tmp_path),
        tracking_uri=uri,
        run_id=run.info.run_id,
        registered_name="tiny-model",
        example_image=png_bytes(9),
    )
    client.set_terminated(run.info.run_id, "FINISHED")
    return uri, f"models:/tiny-model/{info.registered_model_version}"


def _wait_for_ping(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the server exited with {server.returncode} (see server.log)")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise AssertionError(f"no answer on {url}/ping within {START_TIMEOUT_S} s")


def _post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (uvicorn and its workers), SIGKILL if it lingers."""
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=20)


def test_served_model_answers_an_image_request(tmp_path):
    store, model_uri = _registered(tmp_path)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    image = tmp_path / "query.png"
    image.write_bytes(png_bytes(3))
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
    # the server starts `uvicorn` from PATH: the venv's, as `PATH="$PWD/.venv/bin:$PATH"` does
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "MLFLOW_TRACKING_URI": store,
           "XAI_KEDRO_SERVE_DEVICE": "cpu"}  # fmt: skip
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        _wait_for_ping(url, server)
        encoded = base64.b64encode(png_bytes(3)).decode("ascii")
        answer = _post(url, {"dataframe_records": [{"image": encoded}, {"path": str(image)}]})
        rows = answer["predictions"]
        assert len(rows) == 2
        for row in rows:
            assert row["class_name"] in CLASS_NAMES
            assert CLASS_NAMES[row["class_id"]] == row["class_name"]
            assert 0 < row["confidence"] <= 1 and 0 <= row["failure_risk"] <= 1
            assert row.get("error") is None
        # the same image as bytes or as a path: the same answer (up to float32 batching)
        assert rows[0]["class_name"] == rows[1]["class_name"]
        for key in ("confidence", "failure_risk"):
            assert rows[0][key] == pytest.approx(rows[1][key], rel=1e-5)
        with_heatmap = _post(
            url, {"dataframe_records": [{"image": encoded}], "params": {"heatmap": True}}
        )["predictions"][0]
        assert len(with_heatmap["heatmap"]) == 16  # 4 x 4 patches of the 32 px input
        assert with_heatmap["failure_risk"] == pytest.approx(rows[0]["failure_risk"], rel=1e-5)
    finally:
        _stop(server)
        log.close()
    assert server.returncode is not None
