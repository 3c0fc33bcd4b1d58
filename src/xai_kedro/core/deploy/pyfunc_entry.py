"""The file MLflow logs as the model's code ("models from code"): it names the pyfunc object,
so nothing is pickled. Never imported by the package itself."""

from mlflow.models import set_model

from xai_kedro.core.deploy.model import ServedModel

set_model(ServedModel())
