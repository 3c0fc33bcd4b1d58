"""The registered learners: the RandomForest's scores do not depend on thread timing."""

from __future__ import annotations

import numpy as np

from xai_kedro.core.meta.prediction.learners import DEFAULT_MODELS, make_model


def test_random_forest_scores_are_the_same_on_every_call() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 5))
    y = X[:, 0] + rng.normal(size=2000) > 0
    hp = {**DEFAULT_MODELS["RandomForest"], "n_estimators": 60}
    model = make_model("RandomForest", hp, seed=0, n_jobs=4).fit(X, y)
    first = model.predict_proba(X)
    # sklearn's threaded sum would differ in the last bit on some calls; the tree-order sum never
    assert all(np.array_equal(model.predict_proba(X), first) for _ in range(5))
    single = make_model("RandomForest", hp, seed=0, n_jobs=1).fit(X, y)
    assert np.array_equal(single.predict_proba(X), first)  # same trees, same order
    assert model.named_steps["clf"].n_jobs == 4  # the fit keeps its threads
