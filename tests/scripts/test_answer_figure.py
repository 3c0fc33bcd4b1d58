"""The README's figure is drawn from the Gold tables, with the hypothesis' sign applied."""

from __future__ import annotations

import pandas as pd
import pytest

from scripts.answer_figure import headline_points, hypothesis_points, main


@pytest.fixture
def run(tmp_path):
    gold = tmp_path / "04_gold"
    gold.mkdir()
    pd.DataFrame(
        {
            "shift_family": ["reference"] * 3,
            "class": ["all", "all", "0"],
            "feature": ["object_attention_share", "deletion_auc", "deletion_auc"],
            "expected_sign": [1, -1, -1],
            "pearson_r": [0.2, 0.1, 0.5],
            "pearson_ci_low": [0.1, 0.05, 0.4],
            "pearson_ci_high": [0.3, 0.2, 0.6],
        }
    ).to_parquet(gold / "family_hypothesis.parquet")
    pd.DataFrame(
        {
            "shift_family": ["reference", "reference"],
            "class": ["all", "all"],
            "comparison": ["meta:xai+confidence - meta:confidence", "meta:xai - energy"],
            "auroc_diff": [0.01, 0.5],
            "auroc_diff_ci_low": [-0.01, 0.4],
            "auroc_diff_ci_high": [0.03, 0.6],
        }
    ).to_parquet(gold / "family_headline.parquet")
    return tmp_path


def test_points_are_signed_and_only_over_all_classes(run):
    hyp = hypothesis_points(run).set_index("feature")
    assert list(hyp.index) == ["object_attention_share", "deletion_auc"]
    assert hyp.loc["object_attention_share", ["r", "low", "high"]].tolist() == [0.2, 0.1, 0.3]
    # deletion is expected negative: r 0.1 [0.05, 0.2] is against the hypothesis
    assert hyp.loc["deletion_auc", ["r", "low", "high"]].tolist() == [-0.1, -0.2, -0.05]
    head = headline_points(run)
    assert head[["diff", "low", "high"]].values.tolist() == [[0.01, -0.01, 0.03]]


def test_writes_the_figure_and_refuses_a_folder_without_gold(run, tmp_path):
    out = tmp_path / "answer.png"
    main([f"base={run}", "--out", str(out)])
    assert out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit, match="expected label=data_root"):
        main([f"zoo={tmp_path / 'nothing'}", "--out", str(out)])
