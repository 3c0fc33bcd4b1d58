"""The zoo manifest: one row per config in config order, typed columns, per-epoch curves."""

from __future__ import annotations

from pathlib import Path

from xai_kedro.core.adapters import AdapterConfig
from xai_kedro.core.adapters.manifest import FLOAT_METRICS, MANIFEST_COLUMNS, manifest_tables


def _done(adapter_id: str, accuracy: float, epochs: int) -> dict:
    metrics = {k: 0.5 for k in FLOAT_METRICS} | {"accuracy": accuracy, "trainable_params": 7}
    history = [{"epoch": e, "train_loss": 1.0 / (e + 1)} for e in range(epochs)]
    return {"config_hash": f"h-{adapter_id}", "metrics": metrics, "history": history}


def test_manifest_rows_follow_the_configs_and_curves_every_epoch():
    configs = [
        AdapterConfig.from_params({"adapter_id": "b", "rank": 4, "use_dora": True}),
        AdapterConfig.from_params({"adapter_id": "a", "rank": 0}),
    ]
    done = {"a": _done("a", 0.75, 1), "b": _done("b", 0.5, 2)}
    manifest, curves = manifest_tables(configs, done, Path("/zoo"))
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert manifest["adapter_id"].tolist() == ["b", "a"]
    assert manifest["accuracy"].tolist() == [0.5, 0.75]
    assert manifest["config_hash"].tolist() == ["h-b", "h-a"]
    assert manifest["path"].tolist() == ["/zoo/b", "/zoo/a"]
    assert manifest["use_dora"].tolist() == [True, False]
    assert manifest["trainable_params"].dtype.kind == "i" and manifest["f1"].dtype.kind == "f"
    assert curves["adapter_id"].tolist() == ["b", "b", "a"]
    assert curves["epoch"].tolist() == [0, 1, 0]
