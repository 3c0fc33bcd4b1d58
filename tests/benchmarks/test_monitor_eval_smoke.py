"""The monitor benchmark: its aggregation on tiny constructed pools (no model), then the whole
script on a tiny constructed run (a tiny deployed bundle, Bronze, silver_source): not timed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from benchmarks._common import print_table
from benchmarks.monitor_eval import figure_rows, main
from xai_kedro.core.meta.adapters.estimators import PredictionSet
from xai_kedro.core.monitor.estimates import measured_errors
from xai_kedro.core.monitor.evaluation import (
    CLEAN_CONDITION,
    Condition,
    ConditionPool,
    EvalInputs,
    EvalSettings,
    evaluate_batches,
    plan_batches,
)

N, K, D = 12, 3, 4


def _pool(rng: np.random.Generator, labels: np.ndarray, flip: float, offset: float):
    n = len(labels)
    logits = rng.normal(size=(n, K))
    wrong = rng.random(n) < flip
    pred = np.where(wrong, (labels + 1) % K, labels)
    logits[np.arange(n), pred] += 1.0 + 3.0 * rng.random(n)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    profile = pd.DataFrame(
        {
            "pred": pred,
            "confidence": probs.max(axis=1),
            "pred_entropy": -(probs * np.log(probs)).sum(axis=1),
            "logits": list(logits),
            "failure_risk": np.clip(0.2 + 0.6 * wrong + 0.1 * rng.random(n), 0, 1),
        }
    )
    return ConditionPool(profile, rng.normal(offset, 1.0, size=(n, D)))


def _source(rng: np.random.Generator, n: int = 30) -> PredictionSet:
    labels = rng.integers(0, K, n)
    pool = _pool(rng, labels, 0.2, 0.0).profile
    return PredictionSet.from_rows(pool.assign(label=labels))


def test_aggregation_prints_every_figure(capsys):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, K, N)
    shift = Condition("reference", "gaussian_noise", "heavy")
    pools = {CLEAN_CONDITION: _pool(rng, labels, 0.1, 0.0), shift: _pool(rng, labels, 0.6, 3.0)}
    source = _source(rng)
    calibration = [source, _source(rng), _source(rng)]
    reference = rng.normal(size=(20, D))
    plans = plan_batches([CLEAN_CONDITION, shift], N, [6, 20], 2, seed=0)
    settings = EvalSettings(("ac", "nuclear_norm"), n_permutations=20)
    inputs = EvalInputs(pools, labels, source, calibration, reference, settings)
    batches, methods = evaluate_batches(plans, inputs)
    assert len(batches) == 2 * 2 * 3  # sizes x batches x (clean, shifted, mixture)
    assert set(methods["method"]) == {"ac", "nuclear_norm", "cbpe", "failure_predictor"}
    assert batches.loc[batches["size"] == 20, "with_replacement"].all()
    summary = pd.DataFrame(
        {"method": ["ac"], "shift": ["all"], "mae_points": [4.0], "max_abs_error_points": [9.0]}
    )
    rows = figure_rows(batches, methods, measured_errors(summary))
    print_table("monitor_eval", rows)
    out = capsys.readouterr().out
    assert "error pts: ac on clean" in out and "(Gold MAE 4.0)" in out
    assert "error pts: cbpe on mixture/reference" in out
    assert "MMD false alarm: clean" in out
    assert "MMD detection: reference/gaussian_noise/heavy" in out and "mixed" in out
    assert "failure-risk AUROC: reference" in out and "n=6" in out and "n=20" in out


def _fake_run(tmp: Path) -> tuple[Path, Path]:
    """A run's data root (Bronze, silver_source, the summary, deployed_model.json pointing at a
    tiny bundle) and a conf dir with a small `ood` block."""
    from tests.core.deploy.helpers import tiny_bundle

    root, conf = tmp / "data", tmp / "conf"
    for sub in ("02_bronze", "03_silver", "04_gold", "06_models"):
        (root / sub).mkdir(parents=True)
    conf.mkdir()
    bundle = tiny_bundle(tmp / "model")
    (root / "06_models/deployed_model.json").write_text(json.dumps({"bundle_dir": str(bundle)}))
    rng = np.random.default_rng(1)
    n = 24
    split = ["test"] * 16 + ["val"] * 8
    pixels = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    ids = [f"img{i:02d}" for i in range(n)]
    bronze = pd.DataFrame(
        {"image_id": ids, "label": rng.integers(0, K, n), "split": split, "height": 32,
         "width": 32, "pixels": [p.tobytes() for p in pixels], "mask": None}
    )  # fmt: skip
    bronze.to_parquet(root / "02_bronze/bronze_images.parquet")
    embeddings = pd.DataFrame({"image_id": ids, "embedding": list(rng.normal(size=(n, 32)))})
    embeddings.to_parquet(root / "02_bronze/bronze_embeddings.parquet")
    source = []
    for corruption, severity in (("clean", "none"), ("contrast", "s1"), ("contrast", "s2")):
        labels = rng.integers(0, K, 30)
        pool = _pool(rng, labels, 0.3, 0.0).profile.drop(columns="failure_risk")
        source.append(
            pool.assign(adapter_id="r4", corruption=corruption, severity=severity, label=labels,
                        image_id=[f"v{i}" for i in range(30)])
        )  # fmt: skip
    pd.concat(source, ignore_index=True).to_parquet(root / "03_silver/silver_source.parquet")
    summary = pd.DataFrame(
        {"method": ["ac"], "shift": ["all"], "mae_points": [4.0], "max_abs_error_points": [9.0]}
    )
    summary.to_parquet(root / "04_gold/accuracy_estimation_summary.parquet")
    contrast = {"corruption": "contrast", "severity": "s1", "fn": "imagenet_c_contrast",
                "param": "c", "value": 0.3}  # fmt: skip
    ood = {"ood": {"preset": "reference", "base_seed": 0, "source_shifts": [contrast],
                   "shifts": [{"shift": "jpeg_compression", "severities": [2]}]}}  # fmt: skip
    (conf / "parameters_ood.yml").write_text(yaml.safe_dump(ood))
    return root, conf


def test_benchmark_runs_end_to_end_on_a_tiny_run(tmp_path: Path, capsys):
    root, conf = _fake_run(tmp_path)
    out = tmp_path / "per_batch.csv"
    main(
        ["--data-root", str(root), "--conf", str(conf), "--sizes", "8", "20", "1000",
         "--batches", "2", "--permutations", "10", "--reference-size", "6", "--device", "cpu",
         "--out", str(out)]
    )  # fmt: skip
    table = capsys.readouterr().out.split("## monitor_eval")[-1]
    assert "16 test images, adapter r4" in table
    values = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in table.splitlines()
        if line.startswith("| ")
    }
    assert values["sizes skipped (test split too small)"] == "[1000]"
    assert values["drawn with replacement"] == "sizes [20]"
    assert "MMD detection: imagenet_c/jpeg_compression/2" in table
    assert "MMD detection: reference/contrast/heavy" in table
    assert "error pts: ac on imagenet_c" in table and "(Gold MAE 4.0)" in table
    # the per-batch regressor, fitted on the 8 val images under the conf's one source shift
    assert values["per-batch regressor"].startswith("ok; 40 source-side batches of 8 val")
    assert "error pts: batch_regressor on clean" in table
    batches = pd.read_csv(out)
    assert len(batches) == 2 * 2 * (1 + 2 * 10)  # sizes x batches x (clean + 10 x 2 kinds)
    assert batches["n_drift_rows"].max() <= 16  # distinct images only
