"""The (cluster) bootstrap against normal theory, the plain bootstrap and the generic AUC."""

from __future__ import annotations

import numpy as np
import pytest

from xai_kedro.core.meta.stats.association import roc_auc
from xai_kedro.core.meta.stats.bootstrap import (
    bootstrap_auc_ci,
    bootstrap_ci,
    interval_columns,
    two_way_ci,
    two_way_replicates,
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
        fast = bootstrap_auc_ci(y, s, n_boot=300, seed=5, groups=g)
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
        assert bootstrap_auc_ci(y, s, ref, n_boot=300, seed=5, groups=g) == pytest.approx(generic_d)


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
    both = two_way_replicates(_mean_of_units, values, 2000, 1, families)
    assert both.std() == pytest.approx(se, rel=0.1)
    only_units = two_way_replicates(_mean_of_units, values, 200, 1, families, images=False)
    assert np.ptp(only_units) == pytest.approx(0.0, abs=1e-12)
    only_images = two_way_replicates(_mean_of_units, values, 2000, 1, families, units=False)
    assert only_images.std() == pytest.approx(se, rel=0.1)


def test_two_way_bootstrap_when_families_dominate() -> None:
    # each family has its own level, constant over images (siblings share it): a new test set
    # changes nothing, a new zoo does. SE = sd(family level) / sqrt(n_families).
    rng = np.random.default_rng(1)
    level = rng.normal(0.0, 1.0, 30)
    families = np.repeat(np.arange(30), 3)
    values = np.repeat(level[families][:, None], 50, axis=1)
    se = level.std() / np.sqrt(30)
    both = two_way_replicates(_mean_of_units, values, 2000, 2, families)
    assert both.std() == pytest.approx(se, rel=0.1)
    only_images = two_way_replicates(_mean_of_units, values, 200, 2, families, units=False)
    assert np.ptp(only_images) == pytest.approx(0.0, abs=1e-12)
    # resampling the 90 units as if independent would understate it by sqrt(3)
    rows = two_way_replicates(_mean_of_units, values, 2000, 2, None, images=False)
    assert rows.std() == pytest.approx(se / np.sqrt(3), rel=0.15)


def test_two_way_bootstrap_adds_both_variances() -> None:
    rng = np.random.default_rng(2)
    level, image = rng.normal(0, 1, 40), rng.normal(0, 2, 400)
    values = level[:, None] + image[None, :]
    se = np.hypot(level.std() / np.sqrt(40), image.std() / np.sqrt(400))
    both = two_way_replicates(_mean_of_units, values, 3000, 3)
    assert both.std() == pytest.approx(se, rel=0.1)
    low, high = two_way_ci(_mean_of_units, values, 3000, 0.05, 3)
    assert low < values.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.12)


def test_two_way_rows_fetch_other_per_unit_arrays_and_validation() -> None:
    values = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    label = np.array([10.0, 20.0, 30.0])
    reps = two_way_replicates(lambda m, rows: label[rows].sum() + 0 * m.sum(), values, 50, 0)
    assert set(np.unique(reps)) <= {30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0}
    with pytest.raises(ValueError, match="units, images"):
        two_way_replicates(_mean_of_units, np.zeros(3), 10)
    with pytest.raises(ValueError, match="groups"):
        two_way_replicates(_mean_of_units, values, 10, groups=[0, 1])
