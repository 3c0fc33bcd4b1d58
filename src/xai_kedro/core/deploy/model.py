"""The deployed model as an MLflow pyfunc, logged as code and registered (nothing pickled).

`ServedModel.load_context` loads the bundle (an artifact of the logged model) once;
`predict` takes a DataFrame with an `image` column (base64 bytes of any image file) or a `path`
column and returns class_name, class_id, confidence, failure_risk, error (and heatmap when the
request's params say ``heatmap: true``). `log_deployed_model` logs it with its signature and an
input example into a run and registers it, so `mlflow models serve -m models:/<name>/<version>
--env-manager local` serves it. This module imports mlflow: only the deploy node and the served
model import it.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types.schema import Array, ColSpec, ParamSchema, ParamSpec, Schema

from xai_kedro.core.deploy.scoring import HEATMAP_COLUMN, DeployedModel

ENTRY_FILE = Path(__file__).with_name("pyfunc_entry.py")
BUNDLE_ARTIFACT = "bundle"
MODEL_NAME_IN_RUN = "deployed_model"
# What the served model needs beside the project itself (pinned to what logged it).
REQUIREMENTS = ("mlflow", "torch", "transformers", "peft", "safetensors", "numpy", "pandas",
                "pillow", "scipy", "xgboost")  # fmt: skip


class ServedModel(PythonModel):
    """The pyfunc: the bundle loaded once per process, scored per request."""

    def __init__(self) -> None:
        self.deployed: DeployedModel | None = None

    def load_context(self, context: Any) -> None:
        device = os.environ.get("XAI_KEDRO_SERVE_DEVICE", "auto")
        self.deployed = DeployedModel.load(context.artifacts[BUNDLE_ARTIFACT], device)

    def predict(self, context, model_input, params=None):
        """Score every row; ``params={"heatmap": True}`` adds the attention heatmaps.

        No type hints here: MLflow would read them as an input schema beside the signature."""
        if self.deployed is None:
            self.load_context(context)
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        heatmap = bool((params or {}).get("heatmap", False))
        return self.deployed.predict_frame(frame, heatmap=heatmap)


def signature() -> ModelSignature:
    """Input: optional `image` (base64) and `path` strings; param `heatmap`; the answer's
    columns."""
    inputs = Schema([ColSpec("string", "image", required=False),
                     ColSpec("string", "path", required=False)])  # fmt: skip
    outputs = Schema(
        [
            ColSpec("string", "class_name", required=False),
            ColSpec("long", "class_id", required=False),
            ColSpec("double", "confidence", required=False),
            ColSpec("double", "failure_risk", required=False),
            ColSpec("string", "error", required=False),
            ColSpec(Array("double"), HEATMAP_COLUMN, required=False),
        ]
    )
    params = ParamSchema([ParamSpec("heatmap", "boolean", False)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def input_example(image_bytes: bytes) -> pd.DataFrame:
    """One request row: an image file's bytes, base64-encoded."""
    return pd.DataFrame({"image": [base64.b64encode(image_bytes).decode("ascii")]})


def requirements() -> list[str]:
    """The served model's pip requirements, pinned to this environment's versions."""
    pins = []
    for package in REQUIREMENTS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            pins.append(f"{package}=={metadata.version(package)}")
    return pins


@contextlib.contextmanager
def tracking_store(uri: str, experiment_id: str | None = None) -> Iterator[None]:
    """Point MLflow's fluent API (tracking, registry, experiment) at `uri` and `experiment_id`
    (MLflow 3 files a logged model under the fluent experiment, not its run's), then put the
    previous settings back, so the rest of the process keeps its own store."""
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    previous = (
        tracking_utils._tracking_uri,
        registry_utils._registry_uri,
        fluent._active_experiment_id,
    )
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if experiment_id is not None:
        fluent._active_experiment_id = experiment_id
    try:
        yield
    finally:
        (
            tracking_utils._tracking_uri,
            registry_utils._registry_uri,
            fluent._active_experiment_id,
        ) = previous


def log_deployed_model(
    bundle_dir: str | os.PathLike,
    *,
    tracking_uri: str,
    run_id: str,
    registered_name: str | None,
    example_image: bytes,
    tags: dict[str, str] | None = None,
) -> Any:
    """Log the bundle as a pyfunc (models from code) into run `run_id` of `tracking_uri` and
    register it as `registered_name` (None: log only); returns MLflow's `ModelInfo` (with the new version)."""
    experiment_id = mlflow.tracking.MlflowClient(tracking_uri).get_run(run_id).info.experiment_id
    with tracking_store(tracking_uri, experiment_id):
        return mlflow.models.Model.log(
            artifact_path=None,
            name=MODEL_NAME_IN_RUN,
            flavor=mlflow.pyfunc,
            run_id=run_id,
            registered_model_name=registered_name,
            python_model=str(ENTRY_FILE),
            artifacts={BUNDLE_ARTIFACT: str(Path(bundle_dir).resolve())},
            signature=signature(),
            input_example=(input_example(example_image), {"heatmap": False}),
            pip_requirements=requirements(),
            tags=tags,
        )


def download_model(model_uri: str, tracking_uri: str, directory: Path) -> Path:
    """A fresh local copy of a logged or registered model (`models:/<name>/<version>`) under
    `directory`; returns the folder holding its MLmodel file."""
    import shutil

    from mlflow.artifacts import download_artifacts

    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    with tracking_store(tracking_uri):
        local = download_artifacts(artifact_uri=model_uri, dst_path=str(directory))
    return Path(local).resolve()


def bundle_in_model(model_dir: Path) -> Path:
    """The bundle inside a local copy of the logged model (its MLmodel names where)."""
    flavor = mlflow.models.Model.load(str(model_dir)).flavors["python_function"]
    return model_dir / flavor["artifacts"][BUNDLE_ARTIFACT]["path"]
