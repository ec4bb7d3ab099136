"""One optimizer step of a preference objective: the counterpart of `loop.run_step` for DPO,
ORPO, SimPO and KTO, with the same contract (forward and backward every pass of this rank, the
GLOBAL normalizers known before the first backward, gradients summed over ranks on return).

Normalization is global, as for SFT: each pass contributes sum(unit losses) / N_units over all
passes and ranks, and ORPO's NLL sum(token NLL) / N_tokens of all chosen sequences. So grad_accum
and N ranks give the update of one big batch of the union of their pairs. A pair is one unit of
batching (see templates.pairs.PairExample): it is never split across ranks or passes.

Reference log-probs (DPO, KTO): precomputed before training when the examples carry them (full
fine-tuning, see `precompute_reference`), else the same model with its adapters disabled, under
no_grad, in the same pass layout.
"""
from __future__ import annotations

import contextlib

import torch

from ...config import REFERENCE_OBJECTIVES, RunConfig
from ...templates.pairs import LabelledExample
from . import losses
from ..passes import backward_passes
from .logps import sequence_logps

# Sums accumulated over a step's units and all-reduced when logged; `metric_values` turns them into means.
SUMS = ("chosen_reward", "n_chosen", "rejected_reward", "n_rejected", "correct", "n_pairs",
        "nll", "log_odds_ratio", "log_odds", "kl")
_AT = {name: i for i, name in enumerate(SUMS)}


def _sequences(units: list, objective: str) -> tuple[list, list[bool]]:
    if objective == "kto":
        return [u.sequence for u in units], [False] * len(units)
    whole = objective == "orpo"
    return [u.chosen for u in units] + [u.rejected for u in units], [whole] * len(units) + [False] * len(units)


@contextlib.contextmanager
def reference_mode(model: torch.nn.Module):
    """The base model: adapters disabled (no second copy of the weights), no autograd."""
    with torch.no_grad(), model.disable_adapter():
        yield


def _reference(model, units: list, cfg: RunConfig, pad_id: int, device: torch.device, kl: bool = False) -> torch.Tensor:
    """Reference completion log-probs of the pass's sequences (in `_sequences` order), or with
    `kl` of KTO's mismatched ones."""
    if all(u.has_reference for u in units):
        if kl:
            ref = [u.ref_kl for u in units]
        else:
            ref = [u.ref for u in units] if cfg.train.objective == "kto" else \
                [u.ref_chosen for u in units] + [u.ref_rejected for u in units]
        return torch.tensor(ref, dtype=torch.float32, device=device)
    sequences = [u.kl for u in units] if kl else _sequences(units, cfg.train.objective)[0]
    with reference_mode(model):
        return sequence_logps(model, sequences, cfg, pad_id, device).completion


def step_counts(passes: list[list], objective: str, stop_requested: bool, device: torch.device) -> torch.Tensor:
    """[trained tokens, tokens, stop votes, units, NLL targets] of this rank (the loop's first three)."""
    units = [u for p in passes for u in p]
    nll = sum(len(u.chosen.input_ids) - 1 for u in units) if objective == "orpo" else 0
    return torch.tensor([sum(u.n_trained for u in units), sum(len(u.input_ids) for u in units),
                         float(stop_requested), len(units), nll], dtype=torch.float64, device=device)


def kto_kl(model, passes: list[list[LabelledExample]], cfg: RunConfig, sync, pad_id: int,
           device: torch.device) -> torch.Tensor:
    """KTO's KL estimate: mean over the global batch of policy − reference log-probs of the
    mismatched prompt/completion sequences, clamped at 0, without gradient."""
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    for units in passes:
        with torch.no_grad():
            policy = sequence_logps(model, [u.kl for u in units], cfg, pad_id, device).completion
        ref = _reference(model, units, cfg, pad_id, device, kl=True)
        sums += torch.stack([(policy - ref).sum().double(), torch.tensor(float(len(units)), device=device)])
    total = sync.all_reduce_scalars(sums)
    return (total[0] / total[1].clamp(min=1)).clamp(min=0).float()


def pass_loss(model, units: list, cfg: RunConfig, counts: torch.Tensor, kl: torch.Tensor | None, pad_id: int,
              device: torch.device, sums: torch.Tensor) -> torch.Tensor:
    """This pass's share of the global loss; adds its metric sums to `sums`."""
    objective, p, n = cfg.train.objective, cfg.preference, len(units)
    # The reference pass first: its buffers are freed before the policy's activations build up.
    ref = _reference(model, units, cfg, pad_id, device) if objective in REFERENCE_OBJECTIVES else None
    sequences, whole = _sequences(units, objective)
    policy = sequence_logps(model, sequences, cfg, pad_id, device, whole)
    extra = torch.zeros((), device=device)
    if objective == "kto":
        desirable = torch.tensor([u.desirable for u in units], dtype=torch.bool, device=device)
        out = losses.kto(policy.completion, ref, desirable, kl, p)
        sums[_AT["kl"]] += float(kl) * n
        n = 0   # not pairs: no reward accuracy
    elif objective == "dpo":
        out = losses.dpo(policy.completion[:n], policy.completion[n:], ref[:n], ref[n:],
                         policy.completion_len[:n], policy.completion_len[n:], p)
    else:
        average = policy.completion / policy.completion_len.clamp(min=1)
        if objective == "simpo":
            out = losses.simpo(average[:n], average[n:], p)
        else:
            odds = losses.orpo_odds_ratio(average[:n], average[n:], p)
            out = losses.UnitLosses(odds.losses, p.beta * average[:n].detach(), p.beta * average[n:].detach())
            extra = -policy.whole[:n].sum() / counts[4].clamp(min=1).float()
            sums[_AT["nll"]] += extra.detach().double()
            sums[_AT["log_odds_ratio"]] += odds.ratio.sum().double()
            sums[_AT["log_odds"]] += odds.log_odds.sum().double()
    _add_rewards(sums, out, n)
    return extra + out.losses.sum() / counts[3].clamp(min=1).float()


def _add_rewards(sums: torch.Tensor, out: losses.UnitLosses, n_pairs: int) -> None:
    sums[_AT["chosen_reward"]] += out.chosen_rewards.sum().double()
    sums[_AT["n_chosen"]] += out.chosen_rewards.numel()
    sums[_AT["rejected_reward"]] += out.rejected_rewards.sum().double()
    sums[_AT["n_rejected"]] += out.rejected_rewards.numel()
    if n_pairs:
        sums[_AT["correct"]] += (out.chosen_rewards > out.rejected_rewards).sum().double()
        sums[_AT["n_pairs"]] += n_pairs


def preference_step(model: torch.nn.Module, passes: list[list], cfg: RunConfig, sync, pad_id: int,
                    device: torch.device, scaler, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(this rank's share of the step loss, metric sums), normalized by the global `counts`
    (step_counts, all-reduced by `loop.train_step`, which also owns the stop vote)."""
    kl = kto_kl(model, passes, cfg, sync, pad_id, device) if cfg.train.objective == "kto" else None
    sums = torch.zeros(len(SUMS), dtype=torch.float64, device=device)
    step_loss = backward_passes(model, passes, sync, scaler, device,
                                lambda units: pass_loss(model, units, cfg, counts, kl, pad_id, device, sums))
    return step_loss, sums


def metric_values(sums: list[float], objective: str) -> dict[str, float]:
    """Event fields (train.events.PREFERENCE_METRICS) from the step's all-reduced sums."""
    s = dict(zip(SUMS, sums))
    chosen = s["chosen_reward"] / max(s["n_chosen"], 1)
    rejected = s["rejected_reward"] / max(s["n_rejected"], 1)
    out = {"rewards_chosen": chosen, "rewards_rejected": rejected, "reward_margin": chosen - rejected}
    if s["n_pairs"]:
        out["reward_accuracy"] = s["correct"] / s["n_pairs"]
    if objective == "orpo":
        out.update(nll_loss=s["nll"], log_odds_ratio=s["log_odds_ratio"] / s["n_pairs"],
                   log_odds_chosen=s["log_odds"] / s["n_pairs"])
    if objective == "kto":
        out["kl"] = s["kl"] / max(s["n_chosen"] + s["n_rejected"], 1)
    return out


@torch.no_grad()
def precompute_reference(model: torch.nn.Module, units: list, cfg: RunConfig, pad_id: int,
                         device: torch.device) -> None:
    """Full fine-tuning has no adapters to disable: the reference log-probs of every example are
    computed once, before the first update, and stored on the examples (two floats a pair, no
    frozen copy of the weights)."""
    size = cfg.train.micro_batch_size
    for start in range(0, len(units), size):
        chunk = units[start:start + size]
        sequences, _ = _sequences(chunk, cfg.train.objective)
        ref = sequence_logps(model, sequences, cfg, pad_id, device).completion.tolist()
        if cfg.train.objective == "kto":
            ref_kl = sequence_logps(model, [u.kl for u in chunk], cfg, pad_id, device).completion.tolist()
            for u, r, k in zip(chunk, ref, ref_kl):
                u.ref, u.ref_kl = r, k
        else:
            n = len(chunk)
            for u, c, r in zip(chunk, ref[:n], ref[n:]):
                u.ref_chosen, u.ref_rejected = c, r


@torch.no_grad()
def preference_evaluate(model: torch.nn.Module, passes: list[list], cfg: RunConfig, sync, pad_id: int,
                        device: torch.device) -> tuple[float, dict[str, float]]:
    """The objective's loss and metrics over this rank's `passes` of the eval set, all ranks together."""
    counts = sync.all_reduce_scalars(step_counts(passes, cfg.train.objective, False, device))
    kl = kto_kl(model, passes, cfg, sync, pad_id, device) if cfg.train.objective == "kto" else None
    total = torch.zeros(1 + len(SUMS), dtype=torch.float64, device=device)
    model.eval()
    for units in passes:
        total[0] += pass_loss(model, units, cfg, counts, kl, pad_id, device, total[1:]).double()
    model.train()
    total = sync.all_reduce_scalars(total).tolist()
    return total[0], metric_values(total[1:], cfg.train.objective)
