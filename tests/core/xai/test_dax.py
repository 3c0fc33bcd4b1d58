"""Amortised DAX: the mask network recovers the patch a constructed black box reads, is seeded,
explains with one forward and reports its training as per-adapter cost."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.core.xai.learned_artifacts import learned_settings
from tests.core.xai.test_tve import N_PATCHES, marked_tokens
from xai_kedro.core.xai.amortised import training_cost
from xai_kedro.core.xai.dax import DAXSettings, fit_dax, mask_of, trained_dax
from xai_kedro.core.xai.explainers import get_explainer

QUICK = {"queries": 48, "epochs": 40, "batch_size": 32, "hidden": 16, "lr": 1e-2}


class MarkerReader(nn.Module):
    """A black box that reads only the marked patch: class 0's logit is 6 while it is kept."""

    n_prefix = 1

    def forward_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        signal = 6.0 * tokens[:, self.n_prefix :, 0].sum(dim=1)
        return torch.stack([signal, torch.zeros_like(signal)], dim=1)


@pytest.fixture(scope="module")
def trained():
    model = MarkerReader()
    net, record = fit_dax(model, marked_tokens(96, seed=10)[0], DAXSettings(**QUICK))
    return model, net, record


def test_the_mask_recovers_the_patch_the_black_box_reads(trained):
    model, net, record = trained
    tokens, marked = marked_tokens(16, seed=11)  # images it never saw
    with torch.no_grad():
        mask = mask_of(net, tokens, model.n_prefix)
    assert mask.argmax(dim=1).tolist() == marked.tolist()
    others = mask.clone()
    others[torch.arange(16), marked] = 0.0
    assert (mask.max(dim=1).values - others.max(dim=1).values > 0.3).all()
    assert record["seconds"] > 0 and record["images"] == 96


def test_training_is_deterministic_per_seed():
    model, tokens = MarkerReader(), marked_tokens(32, seed=12)[0]
    settings = {**QUICK, "epochs": 2}
    nets = [fit_dax(model, tokens, DAXSettings(**settings))[0] for _ in range(2)]
    other = fit_dax(model, tokens, DAXSettings(**{**settings, "seed": 1}))[0]
    for name, value in nets[0].state_dict().items():
        assert torch.equal(value, nets[1].state_dict()[name])
    assert not all(torch.equal(v, other.state_dict()[k]) for k, v in nets[0].state_dict().items())


def test_the_explainer_trains_once_per_model_and_reports_it_as_adapter_cost(tmp_path):
    from tests.core.xai.test_explainers import tiny_model

    model = tiny_model()
    settings = {**learned_settings("dax"), "cache_dir": str(tmp_path)}
    explainer = get_explainer("dax", **settings)
    cost = training_cost(explainer, model)
    assert cost.per_adapter > 0 and cost.per_backbone == 0.0
    assert len(list(tmp_path.glob("dax_*.pt"))) == 1
    with torch.inference_mode():
        _, heat = explainer(model, model.embed(torch.randn(3, 3, 32, 32)))
    assert heat.shape == (3, N_PATCHES + 7)
    # the stored network is what another process (a Spark worker) loads: same mask, same cost
    from xai_kedro.core.xai import dax

    dax._TRAINED.clear()
    net, record = trained_dax(model, settings["images"], str(tmp_path), dax._split(settings)[2])
    assert record["seconds"] == pytest.approx(cost.per_adapter)


def test_missing_images_and_bad_settings_are_clear_errors():
    from tests.core.xai.test_explainers import tiny_model

    tokens = torch.zeros(1, 17, 32)
    with pytest.raises(ValueError, match="no training images"):
        get_explainer("dax", images="/nonexistent.npy")(tiny_model(), tokens)
    with pytest.raises(ValueError, match="keep_prob"):
        DAXSettings(keep_prob=1.0)
    assert np.isclose(DAXSettings().keep_prob, 0.5)
