"""The preference losses, per pair (or per KTO example), from sequence log-probabilities.

Inputs are 1-D tensors over the units of one forward pass: summed completion log-probs of the
policy (`chosen`, `rejected`), of the reference (`ref_*`), and completion lengths where a loss
normalizes by length. Each function returns the unit losses (the step divides their sum by the
GLOBAL number of units) and the rewards people read. The formulas are those of TRL 1.15
(DPOTrainer, CPOTrainer with loss_type simpo, ORPOTrainer, KTOTrainer); tests compare them to
TRL's own code for the same log-probs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...config import PreferenceConfig


@dataclass
class UnitLosses:
    losses: torch.Tensor            # (n,) with grad
    chosen_rewards: torch.Tensor    # (n_chosen,) detached
    rejected_rewards: torch.Tensor  # (n_rejected,) detached


def dpo(chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor,
        chosen_len: torch.Tensor, rejected_len: torch.Tensor, p: PreferenceConfig) -> UnitLosses:
    chosen_ratio, rejected_ratio = chosen - ref_chosen, rejected - ref_rejected
    z = p.beta * (chosen_ratio - rejected_ratio)
    if p.loss_type == "sigmoid":
        losses = -F.logsigmoid(z)
    elif p.loss_type == "hinge":
        losses = torch.relu(1 - z)
    elif p.loss_type == "ipo":
        # Per-token averages: the squared loss would otherwise grow with the completion length.
        delta = chosen_ratio / chosen_len.clamp(min=1) - rejected_ratio / rejected_len.clamp(min=1)
        losses = (delta - 1 / (2 * p.beta)) ** 2
    else:  # robust: unbiased under a label-flip rate of label_smoothing
        eps = p.label_smoothing
        losses = (-(1 - eps) * F.logsigmoid(z) + eps * F.logsigmoid(-z)) / (1 - 2 * eps)
    return UnitLosses(losses, p.beta * chosen_ratio.detach(), p.beta * rejected_ratio.detach())


def simpo(chosen_avg: torch.Tensor, rejected_avg: torch.Tensor, p: PreferenceConfig) -> UnitLosses:
    """Reference-free: length-normalized log-probs with a target margin gamma."""
    z = p.beta * (chosen_avg - rejected_avg) - p.simpo_gamma
    eps = p.label_smoothing
    losses = -F.logsigmoid(z) * (1 - eps) - F.logsigmoid(-z) * eps
    return UnitLosses(losses, p.beta * chosen_avg.detach(), p.beta * rejected_avg.detach())


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, switching formula at -ln 2 where each one loses precision."""
    return torch.where(x < -0.6931471805599453, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


@dataclass
class OddsRatio:
    losses: torch.Tensor      # (n,) lambda * -log sigmoid(log odds ratio), with grad
    log_odds: torch.Tensor    # (n,) detached
    ratio: torch.Tensor       # (n,) log sigmoid(log odds), detached


def orpo_odds_ratio(chosen_avg: torch.Tensor, rejected_avg: torch.Tensor, p: PreferenceConfig) -> OddsRatio:
    """ORPO's preference term; its NLL term (the chosen sequence's token loss) is added by the step."""
    chosen_avg, rejected_avg = chosen_avg.float(), rejected_avg.float()
    log_odds = (chosen_avg - rejected_avg) - (log1mexp(chosen_avg) - log1mexp(rejected_avg))
    ratio = F.logsigmoid(log_odds)
    return OddsRatio(-p.orpo_lambda * ratio, log_odds.detach(), ratio.detach())


def kto(logps: torch.Tensor, ref_logps: torch.Tensor, desirable: torch.Tensor, kl: torch.Tensor,
        p: PreferenceConfig) -> UnitLosses:
    """`kl`: the batch's KL estimate (detached, clamped at 0), from mismatched prompt/completion pairs."""
    ratio = logps - ref_logps
    chosen = 1 - torch.sigmoid(p.beta * (ratio - kl))
    rejected = 1 - torch.sigmoid(p.beta * (kl - ratio))
    losses = torch.where(desirable, p.kto_desirable_weight * chosen, p.kto_undesirable_weight * rejected)
    rewards = p.beta * ratio.detach()
    return UnitLosses(losses, rewards[desirable], rewards[~desirable])
