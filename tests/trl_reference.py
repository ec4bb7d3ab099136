"""TRL 1.15's own loss code, called on given log-probabilities (the reference the objectives are
checked against).

TRL computes its preference losses inside its trainers' methods, from a model's output: each
function here calls that method on a stand-in trainer (only the attributes the method reads)
and a stand-in model whose output carries the given per-token log-probs. These are private
methods of TRL: when an upgrade moves or renames them, these functions fail loudly (an
AttributeError or TypeError here), never silently compare against something else.
"""
from __future__ import annotations

import contextlib
import types
from collections import defaultdict

import torch

_IDENTITY = types.SimpleNamespace(device=torch.device("cpu"), gather_for_metrics=lambda x: x,
                                  gather=lambda x: x, unwrap_model=lambda m: m)


class _Output(types.SimpleNamespace):
    pass


def _fused_output(per_token: torch.Tensor) -> _Output:
    """What TRL's fused LM head returns: per-token log-probs (0 where the label is -100) and the
    per-token statistics its trainers log."""
    return _Output(log_probs=per_token, entropy=torch.zeros_like(per_token),
                   mean_logits=torch.zeros_like(per_token), is_top1=torch.zeros_like(per_token, dtype=torch.bool),
                   log_sum_sq_probs=torch.zeros_like(per_token), aux_loss=None)


def _stub(**attrs) -> types.SimpleNamespace:
    return types.SimpleNamespace(accelerator=_IDENTITY, model=types.SimpleNamespace(training=True),
                                 aux_loss_enabled=False, _metrics={"train": defaultdict(list)},
                                 _total_train_tokens=0, _tp_size=1, **attrs)


def completion_masks(lengths: list[int], prompt: int, width: int) -> torch.Tensor:
    """(n, width) masks: `prompt` untrained tokens then `lengths[i]` completion tokens."""
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, prompt:prompt + n] = 1
    return mask


def dpo_loss(per_token: torch.Tensor, completion_mask: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, *, beta: float, loss_type: str, label_smoothing: float) -> dict:
    """DPOTrainer._compute_loss on a batch [chosen; rejected] whose policy per-token log-probs
    (shifted, zero off the completion) are `per_token`; the reference log-probs are given, as
    TRL's precomputed path reads them."""
    from trl import DPOTrainer

    trainer = _stub(ld_alpha=None, precompute_ref_logps=True, f_divergence_type="reverse_kl", beta=beta,
                    loss_types=[loss_type], loss_weights=[1.0], label_smoothing=label_smoothing,
                    use_weighting=False, args=types.SimpleNamespace(gradient_checkpointing_kwargs=None))
    inputs = {"input_ids": torch.zeros_like(completion_mask), "attention_mask": torch.ones_like(completion_mask),
              "completion_mask": completion_mask, "ref_chosen_logps": ref_chosen, "ref_rejected_logps": ref_rejected}
    loss = DPOTrainer._compute_loss(trainer, lambda **kw: _fused_output(per_token), inputs, False)
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    return {"loss": loss, **metrics}


def cpo_loss(chosen_avg: torch.Tensor, rejected_avg: torch.Tensor, *, loss_type: str, beta: float,
             simpo_gamma: float, label_smoothing: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CPOTrainer.cpo_loss (SimPO is its loss_type 'simpo' on length-averaged log-probs)."""
    from trl.experimental.cpo import CPOTrainer

    trainer = _stub(alpha=0.0, beta=beta, simpo_gamma=simpo_gamma, label_smoothing=label_smoothing,
                    loss_type=loss_type)
    return CPOTrainer.cpo_loss(trainer, chosen_avg, rejected_avg)


def orpo_odds_ratio_loss(chosen_avg: torch.Tensor, rejected_avg: torch.Tensor, *, beta: float):
    """ORPOTrainer.odds_ratio_loss: (beta · log σ(log odds), chosen and rejected rewards, mean log σ, mean log odds)."""
    from trl.experimental.orpo import ORPOTrainer

    return ORPOTrainer.odds_ratio_loss(_stub(beta=beta), chosen_avg, rejected_avg)


def kto_loss(per_token: torch.Tensor, kl_per_token: torch.Tensor, completion_mask: torch.Tensor,
             labels: torch.Tensor, ref_logps: torch.Tensor, ref_kl_logps: torch.Tensor, *, beta: float,
             desirable_weight: float, undesirable_weight: float) -> dict:
    """KTOTrainer._compute_loss with precomputed reference log-probs; the policy's per-token
    log-probs of the completions and of the mismatched (KL) completions are given."""
    from trl import KTOTrainer

    trainer = _stub(calculate_KL=True, precompute_ref_logps=True, loss_type="kto", beta=beta,
                    desirable_weight=desirable_weight, undesirable_weight=undesirable_weight)
    trainer._compute_kl_logps = types.MethodType(KTOTrainer._compute_kl_logps, trainer)
    kl_ids = torch.ones_like(completion_mask)   # tells the KL forward from the main one

    def model(**kwargs):
        return _fused_output(kl_per_token if kwargs["input_ids"] is kl_ids else per_token)

    batch = {"input_ids": torch.zeros_like(completion_mask), "attention_mask": torch.ones_like(completion_mask),
             "completion_mask": completion_mask, "KL_input_ids": kl_ids,
             "KL_attention_mask": torch.ones_like(completion_mask), "KL_completion_mask": completion_mask,
             "label": labels, "ref_logps": ref_logps, "ref_KL_logps": ref_kl_logps}
    loss = KTOTrainer._compute_loss(trainer, model, batch, False)
    return {"loss": loss, **{k: v[-1] for k, v in trainer._metrics["train"].items()}}


class _TorchLogProbs:
    """The math of TRL's chunked log-prob kernel (trl.kernels.ChunkedLogProbFunction) in plain
    torch: that kernel is Triton, which has no CPU backend. Same signature, same outputs."""

    @staticmethod
    def apply(hidden, weight, bias, targets, temperature, chunk_size, softcap=None, logit_scale=1.0, outputs=()):
        logits = torch.nn.functional.linear(hidden, weight, bias).float() * logit_scale
        if softcap is not None:
            logits = softcap * torch.tanh(logits / softcap)
        logits = logits / temperature
        log_z = torch.logsumexp(logits, dim=-1)
        logprobs = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - log_z
        probs = torch.softmax(logits, dim=-1)
        entropy = log_z - (probs * logits).sum(-1) if "entropy" in outputs else None
        sq = torch.log((probs ** 2).sum(-1)).detach() if "log_sum_sq_probs" in outputs else None
        mean = logits.mean(-1).detach() if "mean_logits" in outputs else None
        top1 = (logits.argmax(-1) == targets) if "is_top1" in outputs else None
        return logprobs, entropy, sq, mean, top1


@contextlib.contextmanager
def torch_fused_lm_head():
    """TRL's fused LM head on the CPU: its Triton kernel swapped for `_TorchLogProbs`."""
    import trl.trainer.utils as trl_utils

    saved = trl_utils._ChunkedLogProbFunction
    trl_utils._ChunkedLogProbFunction = _TorchLogProbs
    try:
        yield
    finally:
        trl_utils._ChunkedLogProbFunction = saved
