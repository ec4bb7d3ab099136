"""Every preference loss we offer equals TRL's own implementation for the same log-probabilities."""
from __future__ import annotations

import pytest
import torch

from trainer_backend.config import PreferenceConfig
from trainer_backend.train.objectives import losses
from trl_reference import completion_masks, cpo_loss, dpo_loss, kto_loss, orpo_odds_ratio_loss

N, PROMPT, WIDTH = 6, 3, 24
TOL = dict(atol=1e-6, rtol=0)


def per_token_logps(lengths: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random per-token log-probs on the completion positions of each row (zero elsewhere)."""
    g = torch.Generator().manual_seed(seed)
    mask = completion_masks(lengths, PROMPT, WIDTH)
    shifted = mask[:, 1:]
    values = -torch.rand(len(lengths), WIDTH - 1, generator=g, dtype=torch.float64) * 3
    return (values * shifted).float(), mask


def lengths(seed: int) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, WIDTH - PROMPT - 1, (2 * N,), generator=g).tolist()


@pytest.mark.parametrize("loss_type,label_smoothing", [("sigmoid", 0.0), ("ipo", 0.0), ("hinge", 0.0),
                                                       ("robust", 0.2)])
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_equals_trl(loss_type, label_smoothing, beta):
    lens = lengths(1)
    per_token, mask = per_token_logps(lens, seed=2)
    g = torch.Generator().manual_seed(3)
    ref = -torch.rand(2 * N, generator=g) * 20
    theirs = dpo_loss(per_token, mask, ref[:N], ref[N:], beta=beta, loss_type=loss_type,
                      label_smoothing=label_smoothing)

    logps, n_tokens = per_token.sum(1), mask.sum(1).float()
    p = PreferenceConfig(beta=beta, loss_type=loss_type, label_smoothing=label_smoothing)
    ours = losses.dpo(logps[:N], logps[N:], ref[:N], ref[N:], n_tokens[:N], n_tokens[N:], p)
    torch.testing.assert_close(ours.losses.mean(), theirs["loss"], **TOL)
    assert ours.losses.std() > 1e-3   # per-pair losses differ: the comparison is not of constants
    assert ours.chosen_rewards.mean().item() == pytest.approx(theirs["rewards/chosen"], abs=1e-6)
    assert ours.rejected_rewards.mean().item() == pytest.approx(theirs["rewards/rejected"], abs=1e-6)
    accuracy = (ours.chosen_rewards > ours.rejected_rewards).float().mean().item()
    assert accuracy == pytest.approx(theirs["rewards/accuracies"], abs=1e-6)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("beta,gamma", [(2.0, 0.5), (0.1, 1.0)])
def test_simpo_equals_trl_cpo_simpo(beta, gamma, label_smoothing):
    g = torch.Generator().manual_seed(4)
    chosen, rejected = -torch.rand(N, generator=g) * 3, -torch.rand(N, generator=g) * 3
    theirs, their_chosen, their_rejected = cpo_loss(chosen, rejected, loss_type="simpo", beta=beta,
                                                    simpo_gamma=gamma, label_smoothing=label_smoothing)
    p = PreferenceConfig(beta=beta, simpo_gamma=gamma, label_smoothing=label_smoothing)
    ours = losses.simpo(chosen, rejected, p)
    torch.testing.assert_close(ours.losses, theirs, **TOL)
    torch.testing.assert_close(ours.chosen_rewards, their_chosen, **TOL)
    torch.testing.assert_close(ours.rejected_rewards, their_rejected, **TOL)


@pytest.mark.parametrize("lam", [0.1, 1.0])
def test_orpo_odds_ratio_equals_trl(lam):
    g = torch.Generator().manual_seed(5)
    # Average log-probs on both sides of -ln 2, where log1mexp switches formula.
    chosen = -torch.rand(N, generator=g) * 2
    rejected = torch.cat([torch.tensor([-0.01, -0.69, -0.70]), -torch.rand(N - 3, generator=g) * 4])
    their_losses, _, _, their_ratio, their_log_odds = orpo_odds_ratio_loss(chosen, rejected, beta=lam)
    ours = losses.orpo_odds_ratio(chosen, rejected, PreferenceConfig(orpo_lambda=lam))
    # TRL's loss is nll - mean(beta · log σ): our per-pair term is its negation.
    torch.testing.assert_close(ours.losses, -their_losses, **TOL)
    assert ours.ratio.mean().item() == pytest.approx(their_ratio.item(), abs=1e-6)
    assert ours.log_odds.mean().item() == pytest.approx(their_log_odds.item(), abs=1e-6)


@pytest.mark.parametrize("weights", [(1.0, 1.0), (1.33, 0.75)])
@pytest.mark.parametrize("kl_mean", [2.0, -5.0])   # -5: a negative estimate, clamped to 0
def test_kto_equals_trl(weights, kl_mean):
    lens = lengths(6)
    per_token, mask = per_token_logps(lens, seed=7)
    kl_per_token, _ = per_token_logps(lens, seed=8)
    g = torch.Generator().manual_seed(9)
    labels = torch.tensor([True, False] * N)
    ref = per_token.sum(1) + torch.randn(2 * N, generator=g)
    ref_kl = kl_per_token.sum(1) + torch.randn(2 * N, generator=g) * 0.5 - kl_mean
    theirs = kto_loss(per_token, kl_per_token, mask, labels, ref, ref_kl, beta=0.1,
                      desirable_weight=weights[0], undesirable_weight=weights[1])

    p = PreferenceConfig(beta=0.1, kto_desirable_weight=weights[0], kto_undesirable_weight=weights[1])
    kl = (kl_per_token.sum(1) - ref_kl).mean().clamp(min=0)
    assert (kl > 0.1) == (kl_mean > 0)
    ours = losses.kto(per_token.sum(1), ref, labels, kl, p)
    torch.testing.assert_close(ours.losses.mean(), theirs["loss"], **TOL)
    assert theirs["kl"] == pytest.approx(kl.item(), abs=1e-6)
    assert ours.chosen_rewards.mean().item() == pytest.approx(theirs["rewards/chosen"], abs=1e-6)
    assert ours.rejected_rewards.mean().item() == pytest.approx(theirs["rewards/rejected"], abs=1e-6)
