"""The (cluster) bootstrap against normal theory, the plain bootstrap and the generic AUC."""

from __future__ import annotations

import numpy as np
import pytest

from xai_kedro.core.meta.adapters.settings import EstimationSettings
from xai_kedro.core.meta.stats.association import roc_auc
from xai_kedro.core.meta.stats.bootstrap import (
    Resampling,
    TwoWay,
    bootstrap_auc_ci,
    bootstrap_ci,
    interval_columns,
)


def test_bootstrap_mean_ci_matches_normal_theory() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(10, 2, 400)
    lo, hi = bootstrap_ci(np.mean, x, n_boot=2000, seed=1)
    se = x.std(ddof=1) / np.sqrt(x.size)
    assert lo < x.mean() < hi
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_cluster_bootstrap_resamples_whole_groups() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(0, 1, 50)
    dup = np.repeat(values, 10)  # each "image" seen 10 times
    groups = np.repeat([f"img{i:02d}" for i in range(50)], 10)
    grouped = bootstrap_ci(np.mean, dup, n_boot=500, seed=7, groups=groups)
    per_group = bootstrap_ci(np.mean, values, n_boot=500, seed=7)
    # same draws of 50 units: the cluster bootstrap of the copies equals the plain bootstrap
    # of one value per group; a row bootstrap of the copies would be ~sqrt(10) too narrow
    assert grouped == pytest.approx(per_group)
    rows = bootstrap_ci(np.mean, dup, n_boot=500, seed=7)
    assert (rows[1] - rows[0]) < 0.6 * (grouped[1] - grouped[0])


def test_bootstrap_vector_statistic_and_validation() -> None:
    x = np.arange(20.0)
    lo, hi = bootstrap_ci(lambda a: [a.mean(), a.max()], x, n_boot=200, seed=0)
    assert lo.shape == (2,) and (lo <= hi).all() and hi[1] == 19.0
    with pytest.raises(ValueError, match="length"):
        bootstrap_ci(np.mean, x, groups=np.arange(3))
    with pytest.raises(ValueError, match="differ in length"):
        bootstrap_ci(lambda a, b: 0.0, x, x[:5])


def test_fast_auc_bootstrap_equals_generic(known: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = known
    s = np.round(x, 1)
    ref = np.round(-x + np.random.default_rng(1).normal(0, 2, x.size), 1)
    groups = np.arange(x.size) // 4
    for g in (None, groups):
        generic = bootstrap_ci(roc_auc, y, s, n_boot=300, seed=5, groups=g)
        fast = bootstrap_auc_ci(y, s, resampling=Resampling(300, seed=5), groups=g)
        assert fast == pytest.approx(generic)
        generic_d = bootstrap_ci(
            lambda yy, a, b: roc_auc(yy, a) - roc_auc(yy, b),
            y,
            s,
            ref,
            n_boot=300,
            seed=5,
            groups=g,
        )
        paired = bootstrap_auc_ci(y, s, ref, resampling=Resampling(300, seed=5), groups=g)
        assert paired == pytest.approx(generic_d)


def test_interval_columns_name_each_component() -> None:
    cols = interval_columns(("a", "b"), [1.0, 2.0], [3.0, 4.0])
    assert cols == {"a_ci_low": 1.0, "a_ci_high": 3.0, "b_ci_low": 2.0, "b_ci_high": 4.0}


def _mean_of_units(means: np.ndarray, rows: np.ndarray) -> float:
    return float(means.mean())


def test_two_way_bootstrap_when_images_dominate() -> None:
    # every unit answers the same images the same way: a new zoo changes nothing, a new test
    # set does. SE of the mean = sd(image outcome) / sqrt(n_images).
    rng = np.random.default_rng(0)
    image = rng.normal(0.0, 1.0, 400)
    values = np.tile(image, (8, 1))
    families = np.repeat(np.arange(4), 2)
    se = image.std() / np.sqrt(400)
    both = TwoWay(values, families).replicates(_mean_of_units, Resampling(2000, seed=1))
    assert both.std() == pytest.approx(se, rel=0.1)
    only_units = TwoWay(values, families, images=False).replicates(
        _mean_of_units, Resampling(200, seed=1)
    )
    assert np.ptp(only_units) == pytest.approx(0.0, abs=1e-12)
    only_images = TwoWay(values, families, units=False).replicates(
        _mean_of_units, Resampling(2000, seed=1)
    )
    assert only_images.std() == pytest.approx(se, rel=0.1)


def test_two_way_bootstrap_when_families_dominate() -> None:
    # each family has its own level, constant over images (siblings share it): a new test set
    # changes nothing, a new zoo does. SE = sd(family level) / sqrt(n_families).
    rng = np.random.default_rng(1)
    level = rng.normal(0.0, 1.0, 30)
    families = np.repeat(np.arange(30), 3)
    values = np.repeat(level[families][:, None], 50, axis=1)
    se = level.std() / np.sqrt(30)
    both = TwoWay(values, families).replicates(_mean_of_units, Resampling(2000, seed=2))
    assert both.std() == pytest.approx(se, rel=0.1)
    only_images = TwoWay(values, families, units=False).replicates(
        _mean_of_units, Resampling(200, seed=2)
    )
    assert np.ptp(only_images) == pytest.approx(0.0, abs=1e-12)
    # resampling the 90 units as if independent would understate it by sqrt(3)
    rows = TwoWay(values, images=False).replicates(_mean_of_units, Resampling(2000, seed=2))
    assert rows.std() == pytest.approx(se / np.sqrt(3), rel=0.15)


def test_two_way_bootstrap_adds_both_variances() -> None:
    rng = np.random.default_rng(2)
    level, image = rng.normal(0, 1, 40), rng.normal(0, 2, 400)
    values = level[:, None] + image[None, :]
    se = np.hypot(level.std() / np.sqrt(40), image.std() / np.sqrt(400))
    both = TwoWay(values).replicates(_mean_of_units, Resampling(3000, seed=3))
    assert both.std() == pytest.approx(se, rel=0.1)
    low, high = TwoWay(values).interval(_mean_of_units, Resampling(3000, 0.05, 3))
    assert low < values.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.12)


def test_two_way_rows_fetch_other_per_unit_arrays_and_validation() -> None:
    values = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    label = np.array([10.0, 20.0, 30.0])
    reps = TwoWay(values).replicates(
        lambda m, rows: label[rows].sum() + 0 * m.sum(), Resampling(50, seed=0)
    )
    assert set(np.unique(reps)) <= {30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0}
    with pytest.raises(ValueError, match="units, images"):
        TwoWay(np.zeros(3))
    with pytest.raises(ValueError, match="groups"):
        TwoWay(values, groups=[0, 1])


def test_resampling_is_checked_once_and_built_from_a_settings_block() -> None:
    with pytest.raises(ValueError, match="n_boot"):
        Resampling(0)
    with pytest.raises(ValueError, match="alpha"):
        Resampling(10, alpha=1.0)
    settings = EstimationSettings(n_bootstrap=300, ci_alpha=0.1)
    assert settings.resampling(7) == Resampling(300, 0.1, 7)
    x = np.random.default_rng(3).normal(size=50)
    assert Resampling(300, 0.1, 7).interval(np.mean, x) == bootstrap_ci(
        np.mean, x, n_boot=300, alpha=0.1, seed=7
    )
