"""The meta-learner registry: estimator name -> factory, and the reference experiment's models.

A new meta-learner is one `@register_learner` factory here plus its entry under
`meta_learners.models` in conf/; `make_model` never branches on names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

from xai_kedro.core.common.registry import Registry, UnknownNameError

LearnerFactory = Callable[..., Any]
# factory(seed=..., n_jobs=..., **hyperparameters), named by a model's `estimator` key
LEARNERS: Registry[LearnerFactory] = Registry(
    "meta-learner", setting="meta_learning.meta_learners.models.<model>.estimator"
)


def register_learner(name: str) -> Callable[[LearnerFactory], LearnerFactory]:
    """Declare an estimator kind: factory(seed=..., n_jobs=..., **hyperparameters)."""
    return LEARNERS.register(name)  # type: ignore[return-value]


class OrderedRandomForest(RandomForestClassifier):
    """A RandomForestClassifier whose scores do not depend on thread timing: it fits on
    ``n_jobs`` threads (each tree has its own seed, so the trees are the same) but sums the
    trees' probabilities on one thread, in tree order. sklearn's threaded sum adds them in
    completion order, which changes the last bit of a score from run to run."""

    def predict_proba(self, X: Any) -> Any:
        n_jobs = self.n_jobs
        self.n_jobs = 1
        try:
            return super().predict_proba(X)
        finally:
            self.n_jobs = n_jobs


@register_learner("random_forest")
def _random_forest(seed: int, n_jobs: int, **hp: Any) -> RandomForestClassifier:
    return OrderedRandomForest(random_state=seed, n_jobs=n_jobs, **hp)


@register_learner("xgboost")
def _xgboost(seed: int, n_jobs: int, **hp: Any) -> XGBClassifier:
    hp.setdefault("eval_metric", "logloss")
    hp.setdefault("tree_method", "hist")
    return XGBClassifier(random_state=seed, n_jobs=n_jobs, **hp)


@register_learner("logistic_regression")
def _logistic_regression(seed: int, n_jobs: int, **hp: Any) -> LogisticRegression:
    return LogisticRegression(random_state=seed, **hp)


# The reference experiment's models (Lacavalla, Knowledge Injection via XAI, "Models Compared"). ``estimator`` names the sklearn/xgboost class so that
# conf/ can add further models; everything else is passed to that class unchanged.
DEFAULT_MODELS: dict[str, dict[str, Any]] = {
    "RandomForest": {
        "estimator": "random_forest",
        "n_estimators": 200,
        "max_depth": 12,
        "class_weight": "balanced",
    },
    "XGBoost": {
        "estimator": "xgboost",
        "n_estimators": 200,
        "max_depth": 6,
        "reg_alpha": 0.1,
        "reg_lambda": 1.0,
    },
    "XGBoost_Tuned": {
        "estimator": "xgboost",
        "n_estimators": 300,
        "max_depth": 4,
        "reg_alpha": 0.5,
        "reg_lambda": 2.0,
        "gamma": 0.1,
    },
    "LogisticRegression": {
        "estimator": "logistic_regression",
        "C": 0.1,
        "class_weight": "balanced",
        "max_iter": 1000,  # the reference experiment gives none; lbfgs needs more than sklearn's 100 at times
    },
}


def make_model(name: str, hyperparams: Mapping[str, Any], seed: int, n_jobs: int = 1) -> Pipeline:
    """StandardScaler + the registered estimator named by ``hyperparams['estimator']``."""
    hp = dict(hyperparams)
    kind = hp.pop("estimator", None)
    try:
        factory = LEARNERS.get(kind)
    except UnknownNameError as exc:
        raise UnknownNameError(str(exc).replace("<model>", name)) from None
    return Pipeline([("scaler", StandardScaler()), ("clf", factory(seed, n_jobs, **hp))])
