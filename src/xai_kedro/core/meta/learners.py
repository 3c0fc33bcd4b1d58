"""The meta-learner registry: estimator name -> factory, and the reference experiment's models.

A new meta-learner is one `register_learner` function here plus its entry under
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

LearnerFactory = Callable[..., Any]
LEARNERS: dict[str, LearnerFactory] = {}


def register_learner(name: str) -> Callable[[LearnerFactory], LearnerFactory]:
    """Declare an estimator kind: factory(seed=..., n_jobs=..., **hyperparameters)."""

    def decorate(factory: LearnerFactory) -> LearnerFactory:
        if name in LEARNERS:
            raise ValueError(f"meta-learner {name!r} is registered twice")
        LEARNERS[name] = factory
        return factory

    return decorate


@register_learner("random_forest")
def _random_forest(seed: int, n_jobs: int, **hp: Any) -> RandomForestClassifier:
    return RandomForestClassifier(random_state=seed, n_jobs=n_jobs, **hp)


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
    if kind not in LEARNERS:
        raise ValueError(
            f"model {name!r}: 'estimator' must be one of {sorted(LEARNERS)}, got {kind!r}"
        )
    return Pipeline([("scaler", StandardScaler()), ("clf", LEARNERS[kind](seed, n_jobs, **hp))])
