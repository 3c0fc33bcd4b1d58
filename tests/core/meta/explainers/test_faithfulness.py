"""The Gold explainer leaderboard on scores with a planted faithfulness order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from xai_kedro.core.meta.explainers.faithfulness import (
    POOLED,
    _mean_ranks,
    explainer_faithfulness,
    faithfulness_plot,
    faithfulness_section,
    published_agreement,
)

# quality 1 = most faithful: lower deletion, higher insertion, higher Fidelity+, lower Fidelity-
QUALITY = {"gradient_attention": 1.0, "rollout": 0.6, "attention": 0.2}


def make_scores(
    quality: dict[str, float] = QUALITY, n_images: int = 40, adapters=("a1", "a2"), seed: int = 0
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for adapter in adapters:
        for i in range(n_images):
            image_effect = rng.normal(0, 0.05)
            for name, q in quality.items():
                noise = rng.normal(0, 0.02, 4)
                rows.append(
                    {
                        "image_id": f"{i:016x}",
                        "adapter_id": adapter,
                        "explainer": name,
                        "deletion_auc": 0.5 - 0.2 * q + image_effect + noise[0],
                        "insertion_auc": 0.4 + 0.2 * q + image_effect + noise[1],
                        "fidelity_plus_auc": 0.1 + 0.2 * q + noise[2],
                        "fidelity_minus_auc": 0.3 - 0.2 * q + noise[3],
                        "object_attention_share": np.nan if i % 4 == 0 else 0.3 + 0.1 * q,
                        "seconds_per_image": 0.001 * (1 + q),
                    }
                )
    return pd.DataFrame(rows)


def test_the_planted_order_is_found_with_intervals():
    scores = make_scores()
    table = explainer_faithfulness(scores, n_boot=200)
    assert set(table["adapter_id"]) == {"a1", "a2", POOLED}
    assert len(table) == 9
    for adapter, block in table.groupby("adapter_id"):
        ordered = block.sort_values("rank")["explainer"].tolist()
        assert ordered == ["gradient_attention", "rollout", "attention"], adapter
        assert block["rank"].tolist() == sorted(block["rank"].tolist())
    pooled = table[table["adapter_id"] == POOLED].set_index("explainer")
    assert pooled.loc["gradient_attention", "mean_rank"] == 1.0
    assert pooled.loc["attention", "mean_rank"] == 3.0
    assert pooled.loc["gradient_attention", "p_best"] == pytest.approx(1.0)
    assert pooled["p_best"].sum() == pytest.approx(1.0)
    assert (pooled["n_images"] == 40).all() and (pooled["n_adapters"] == 2).all()
    # means equal the plain means (NaN object shares left out), inside their intervals
    ga = scores[scores["explainer"] == "gradient_attention"]
    for score in ("deletion_auc", "object_attention_share", "seconds_per_image"):
        mean = pooled.loc["gradient_attention", score]
        assert mean == pytest.approx(np.nanmean(ga[score]))
        assert pooled.loc["gradient_attention", f"{score}_ci_low"] <= mean + 1e-12
        assert mean <= pooled.loc["gradient_attention", f"{score}_ci_high"] + 1e-12
    width = pooled["deletion_auc_ci_high"] - pooled["deletion_auc_ci_low"]
    assert (width > 0).all()
    assert table.loc[table["adapter_id"] != POOLED, "p_best"].isna().all()


def test_an_undecided_race_is_reported_as_such():
    scores = make_scores({"rise": 0.5, "occlusion": 0.5}, seed=3)
    table = explainer_faithfulness(scores, n_boot=300)
    p_best = table[table["adapter_id"] == POOLED]["p_best"]
    assert p_best.max() < 0.95  # neither wins every resample
    pooled = table[table["adapter_id"] == POOLED].sort_values("mean_rank")
    second = pooled.iloc[1]
    assert second["rank_gap_ci_low"] <= 0 <= second["rank_gap_ci_high"]
    text = "\n".join(faithfulness_section(table))
    assert "Most faithful on this model: not established: " in text
    assert f"not separated from {second['explainer']}" in text


def test_a_clear_winner_is_separated_from_every_other():
    table = explainer_faithfulness(make_scores(), n_boot=200)
    pooled = table[table["adapter_id"] == POOLED].set_index("explainer")
    assert np.isnan(pooled.loc["gradient_attention", "rank_gap_ci_low"])
    assert (pooled.drop(index="gradient_attention")["rank_gap_ci_low"] > 0).all()
    assert pooled["rank_gap_ci_low"].notna().sum() == 2
    assert table.loc[table["adapter_id"] != POOLED, "rank_gap_ci_low"].isna().all()


def test_the_table_ignores_row_order():
    scores = make_scores(n_images=12)
    a = explainer_faithfulness(scores, n_boot=50)
    b = explainer_faithfulness(scores.sample(frac=1.0, random_state=1), n_boot=50)
    pd.testing.assert_frame_equal(a, b)


def test_mean_ranks_by_hand():
    # columns: deletion (low better), insertion, Fid+ (high better), Fid- (low better)
    means = np.array([[0.1, 0.9, 0.5, 0.1], [0.2, 0.8, 0.5, 0.3], [0.3, 0.95, 0.1, 0.2]])
    # ranks per column: [1,2,3], [2,3,1], [1.5,1.5,3], [1,3,2]
    np.testing.assert_allclose(_mean_ranks(means), [5.5 / 4, 9.5 / 4, 9 / 4])


def test_bad_scores_are_clear_errors():
    scores = make_scores(n_images=6)
    with pytest.raises(ValueError, match="same images"):
        explainer_faithfulness(scores.iloc[1:], n_boot=10)
    with pytest.raises(ValueError, match="duplicate"):
        explainer_faithfulness(pd.concat([scores, scores.iloc[:1]]), n_boot=10)
    with pytest.raises(ValueError, match=r"lack columns \['fidelity_plus_auc'\]"):
        explainer_faithfulness(scores.drop(columns="fidelity_plus_auc"), n_boot=10)


def test_published_agreement_counts_pairs():
    assert published_agreement(["gradient_attention", "rise", "rollout", "attention"]) == (
        ["gradient_attention", "rollout", "attention"],
        3,
        3,
    )
    assert published_agreement(["attention", "gradient_attention", "rollout"])[1:] == (1, 3)
    assert published_agreement(["rise", "occlusion"]) == ([], 0, 0)


def test_report_section_names_the_winner_and_the_comparison():
    table = explainer_faithfulness(make_scores({"attention": 1.0, "rollout": 0.5}), n_boot=50)
    text = "\n".join(faithfulness_section(table))
    assert "Most faithful on this model: **attention** (every other's rank-gap interval" in text
    assert "Here, by mean rank: attention > rollout, which differs from it (0 of 1 pairs" in text
    assert "a point order, the pairs' differences have no intervals" in text
    assert "| rollout |" in text
    fig = faithfulness_plot(table)
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    # an interval that misses its mean by rounding still draws
    pooled = table.index[table["adapter_id"] == POOLED][0]
    table.loc[pooled, "seconds_per_image_ci_low"] = table.loc[pooled, "seconds_per_image"] + 1e-15
    assert len(faithfulness_plot(table).axes) == 6


def test_a_query_based_winner_is_put_in_context():
    quality = {"occlusion": 1.0, "rollout": 0.6, "attention": 0.2}
    text = "\n".join(faithfulness_section(explainer_faithfulness(make_scores(quality), n_boot=50)))
    assert "Most faithful on this model: **occlusion**" in text
    assert "which favours it." in text
    assert "ranks first" not in text  # no unseparated "first" among the attention-based ones


def test_per_adapter_firsts_are_named_only_with_their_intervals():
    from xai_kedro.core.meta.explainers.faithfulness import _per_adapter_sentence

    rows = pd.DataFrame(
        {
            "adapter_id": ["a", "a", "b", "b"],
            "explainer": ["occlusion", "rise", "occlusion", "rise"],
            "mean_rank": [1.0, 2.0, 1.0, 2.0],
            "rank": [1, 2, 1, 2],
            "rank_gap_ci_low": [np.nan, 0.5, np.nan, 0.0],
        }
    )
    assert _per_adapter_sentence(rows) == [
        "First per adapter (separated by rank-gap intervals), of 2: occlusion on 1; "
        "no explainer separated from the others on 1."
    ]
    text = _per_adapter_sentence(rows.assign(rank_gap_ci_low=np.nan))[0]
    assert text.startswith("First by mean rank per adapter (point order;")
    assert text.endswith("of 2: occlusion on 2.")


def test_the_summary_report_carries_the_section():
    from xai_kedro.core.meta.report.summary import summary_report

    text = summary_report({"explainer_faithfulness": explainer_faithfulness(make_scores(), 50)})
    assert "## Explainer faithfulness" in text
    assert "Most faithful on this model: **gradient_attention**" in text


def test_amortised_costs_and_paired_gaps_to_the_reference():
    """Training seconds spread over the images (and, per backbone, the adapters); each score's
    gap to the reference is the paired mean difference, with an interval around it."""
    scores = make_scores({"tve": 0.6, "occlusion": 1.0, "dax": 0.8}, n_images=20)
    scores["backbone_training_seconds"] = np.where(scores["explainer"] == "tve", 14.0, 0.0)
    scores["adapter_training_seconds"] = np.where(scores["explainer"] == "dax", 2.0, 0.0)
    table = explainer_faithfulness(scores, n_boot=200, reference="occlusion")
    row = table.set_index(["explainer", "adapter_id"])
    tve, dax = row.loc[("tve", POOLED)], row.loc[("dax", "a1")]
    assert tve["seconds_per_image_7_adapters"] == pytest.approx(
        tve["seconds_per_image"] + 14.0 / (7 * 20)
    )
    assert tve["seconds_per_image_48_adapters"] == pytest.approx(
        tve["seconds_per_image"] + 14.0 / (48 * 20)
    )
    assert dax["seconds_per_image_7_adapters"] == pytest.approx(dax["seconds_per_image"] + 0.1)
    assert dax["seconds_per_image_48_adapters"] == dax["seconds_per_image_7_adapters"]
    occ = row.loc[("occlusion", "a1")]
    assert occ["seconds_per_image_48_adapters"] == pytest.approx(occ["seconds_per_image"])
    assert (row.xs("occlusion")["deletion_auc_gap"] == 0).all()
    on_a1 = scores[scores["adapter_id"] == "a1"].pivot(
        index="image_id", columns="explainer", values="insertion_auc"
    )
    gap = row.loc[("tve", "a1")]
    assert gap["insertion_auc_gap"] == pytest.approx((on_a1["tve"] - on_a1["occlusion"]).mean())
    assert (
        gap["insertion_auc_gap_ci_low"]
        < gap["insertion_auc_gap"]
        < gap["insertion_auc_gap_ci_high"]
        < 0
    )
    lines = faithfulness_section(table)
    text = "\n".join(lines)
    assert "ms at 7 adapters" in text and "### tve transferred to each adapter" in text
    assert sum(line.startswith(("| a1 ", "| a2 ")) for line in lines) == 2  # a row per adapter


def test_without_a_reference_the_gaps_are_empty_and_no_training_costs_nothing():
    table = explainer_faithfulness(make_scores(), n_boot=50)
    assert table["deletion_auc_gap"].isna().all()
    assert (table["seconds_per_image_48_adapters"] == table["seconds_per_image"]).all()
    assert "transferred" not in "\n".join(faithfulness_section(table))
