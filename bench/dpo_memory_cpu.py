"""DPO step memory on CPU: what one optimizer step of ours holds next to TRL's DPOTrainer, allocation
by allocation (torch.profiler's memory events), on the same small Qwen2-shaped model.

    python bench/dpo_memory_cpu.py --out bench/results/dpo_memory_cpu.md [--vocab 151936] [--layers 6]
                                   [--chunks 512,64]

Both sides: the same random-init model (fp32, hidden 512, a Qwen2.5 vocabulary so the LM head
matters), LoRA r=16 on all linear layers, 2 pairs a step (prompt 128 letters, chosen and rejected
384 each, as bench/dpo_bench.py), gradient checkpointing on (non-reentrant), reference = adapters
disabled, AdamW. TRL's fused LM head is a Triton kernel; here it is the same algorithm in plain
torch (`TiledLogProbs`: one [min(N, 4096), 32768] tile of logits at a time, online logsumexp, the
tile recomputed in the backward), so its buffers are the kernel's.

The second optimizer step is profiled (the first allocates AdamW's state, which both keep): peak
= the most bytes the step allocated beyond what was live when it began (weights, adapters,
optimizer state). The allocations live at that peak are grouped by the op (and the autograd node
or the checkpoint recompute) that made them.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import random_models  # noqa: E402
from dpo_bench import write_pairs  # noqa: E402  (the DPO GPU bench's pairs)

CPU = torch.device("cpu")
MIB = 2 ** 20
TILE_TOKENS, TILE_VOCAB = 4096, 32768   # trl.kernels.chunked_logprob.TOKEN_CHUNK_SIZE, trl's _CHUNKED_LOGPROB_CHUNK_SIZE


def make_model(folder: Path, vocab: int, layers: int) -> Path:
    from transformers import AutoConfig, AutoModelForCausalLM

    if not (folder / "config.json").exists():
        cfg = AutoConfig.for_model("qwen2", hidden_size=512, intermediate_size=1536, num_hidden_layers=layers,
                                   num_attention_heads=8, num_key_value_heads=2, vocab_size=vocab,
                                   max_position_embeddings=2048, tie_word_embeddings=False)
        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).save_pretrained(folder)
    random_models.chatml_tokenizer(folder)
    return folder


def run_config(folder: Path, data: Path, job: Path, batch: int):
    from trainer_backend.config import RunConfig
    from trainer_backend.train.loop import prepare_config

    return prepare_config(RunConfig.model_validate({
        "method": "lora", "model": {"name_or_path": str(folder), "engine": "hf"},
        "data": {"path": str(data)}, "template": {"max_seq_len": 1024, "packing": False},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
        "train": {"objective": "dpo", "micro_batch_size": batch, "grad_accum": 1, "max_steps": 2, "lr": 5e-6,
                  "scheduler": "constant", "precision": "fp32", "gradient_checkpointing": "on", "seed": 0},
        "preference": {"beta": 0.1, "loss_type": "sigmoid"}, "output": {"dir": str(job)},
    }), CPU)


# ---- the profile -------------------------------------------------------------------------------
def profiler():
    from torch.profiler import ProfilerActivity, profile

    return profile(activities=[ProfilerActivity.CPU], profile_memory=True, with_stack=True)


def _label(node) -> str:
    """The op that allocated, inside which autograd node, under a checkpoint recompute or not."""
    op = grad_fn = None
    recompute = False
    while node is not None:
        name = node.name
        if op is None and name.startswith("aten::"):
            op = name
        if grad_fn is None and name.startswith("autograd::engine::evaluate_function: "):
            grad_fn = name.split(": ", 1)[1]
        if "checkpoint.py" in name and "recompute_fn" in name:
            recompute = True
        node = node.parent
    where = f"backward {grad_fn}" if grad_fn else "forward"
    return f"{op or '?'} ({where}{', checkpoint recompute' if recompute else ''})"


def peak_report(prof, top: int = 8) -> dict:
    """Peak bytes the profiled span allocated beyond its start, and what was live at that peak."""
    from torch._C._profiler import _EventType

    events = []

    def walk(node):
        if node.tag == _EventType.Allocation:
            events.append((node.start_time_ns, node.extra_fields.alloc_size, node.extra_fields.ptr, node))
        for child in node.children:
            walk(child)

    for root in prof.profiler.kineto_results.experimental_event_tree():
        walk(root)
    events.sort(key=lambda e: e[0])
    live, total, peak, at_peak = {}, 0, 0, {}
    for _, size, ptr, node in events:
        if size > 0:
            live[ptr] = (size, node)
        elif ptr in live:   # frees of tensors from before the span are not counted either way
            size = -live.pop(ptr)[0]
        else:
            continue
        total += size
        if total > peak:
            peak, at_peak = total, dict(live)
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for size, node in at_peak.values():
        g = groups[_label(node)]
        g[0] += size
        g[1] += 1
    ranked = sorted(groups.items(), key=lambda kv: -kv[1][0])[:top]
    return {"peak_mib": peak / MIB, "top": [(name, b / MIB, n) for name, (b, n) in ranked]}


def baseline_mib(model, optimizer) -> dict:
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    state = sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values()
                if torch.is_tensor(t) and t.dim() > 0)
    return {"weights_mib": params / MIB, "optimizer_state_mib": state / MIB}


# ---- ours --------------------------------------------------------------------------------------
def ours(folder: Path, data: Path, batch: int, chunk: int) -> dict:
    from trainer_backend.data import load_dataset
    from trainer_backend.models.loading import load_for_training
    from trainer_backend.templates import load_tokenizer
    from trainer_backend.templates.pairs import build_preference_examples
    from trainer_backend.train.loop import clip_and_step, train_step
    from trainer_backend.train.objectives import logps
    from trainer_backend.train.optim import build_optimizer, build_scheduler
    from trainer_backend.train.passes import step_passes
    from trainer_backend.train.sync.local import LocalSync

    logps.LOGP_HEAD_CHUNK = chunk
    cfg = run_config(folder, data, Path(tempfile.mkdtemp()), batch)
    tokenizer = load_tokenizer(str(folder))
    units, _ = build_preference_examples(load_dataset(data).conversations, tokenizer, cfg.template)
    loaded = load_for_training(cfg, CPU)
    named = loaded.trainable()
    params = [p for _, p in named]
    optimizer = build_optimizer(named, cfg.train, CPU)
    scheduler = build_scheduler(optimizer, cfg.train, 2)
    loaded.model.train()
    sync, pad = LocalSync(), tokenizer.pad_token_id
    for step in range(2):
        passes = step_passes(units[step * batch:(step + 1) * batch], cfg)
        prof = profiler() if step == 1 else None
        with prof or contextlib.nullcontext():
            loss, _, _ = train_step(loaded.model, passes, cfg, sync, pad, CPU, None, False)
            clip_and_step(params, optimizer, scheduler, cfg.train.max_grad_norm, None, loss)
    report = peak_report(prof)
    report.update(baseline_mib(loaded.model, optimizer), loss=float(loss), side=f"ours, LM head chunk {chunk}",
                  tokens=sum(len(u.input_ids) for u in units[batch:2 * batch]))
    return report


# ---- TRL ---------------------------------------------------------------------------------------
class TiledLogProbs(torch.autograd.Function):
    """trl.kernels.ChunkedLogProbFunction in plain torch with the kernel's buffers (log_probs, entropy,
    mean_logits and is_top1, no bias, softcap or scale: what DPOTrainer asks of a Qwen2 model)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature, chunk_size, softcap=None, logit_scale=1.0,
                outputs=()):
        assert bias is None and softcap is None and logit_scale == 1.0 and temperature == 1.0
        n_tok, vocab = hidden.shape[0], weight.shape[0]
        run_max = hidden.new_full((n_tok,), float("-inf"))
        sum_exp, x_sum_exp, z_sum, target = (hidden.new_zeros(n_tok) for _ in range(4))
        best_other = hidden.new_full((n_tok,), float("-inf"))
        buf = hidden.new_empty(min(n_tok, TILE_TOKENS), chunk_size)
        for t0 in range(0, n_tok, TILE_TOKENS):
            t1, rows = min(t0 + TILE_TOKENS, n_tok), slice(t0, min(t0 + TILE_TOKENS, n_tok))
            for v0 in range(0, vocab, chunk_size):
                v1 = min(v0 + chunk_size, vocab)
                tile = buf[:t1 - t0, :v1 - v0]
                torch.mm(hidden[rows], weight[v0:v1].t(), out=tile)
                inside = (targets[rows] >= v0) & (targets[rows] < v1)
                local = (targets[rows] - v0).clamp(0, v1 - v0 - 1)
                hit = tile.gather(1, local[:, None]).squeeze(1)
                target[rows] = torch.where(inside, hit, target[rows])
                tile.scatter_(1, local[:, None], torch.where(inside, float("-inf"), hit)[:, None])
                best_other[rows] = torch.maximum(best_other[rows], tile.amax(1))
                tile.scatter_(1, local[:, None], hit[:, None])
                new_max = torch.maximum(run_max[rows], tile.amax(1))
                scale = torch.exp(run_max[rows] - new_max)
                z_sum[rows] += tile.sum(1)
                x_sum_exp[rows] = x_sum_exp[rows] * scale + sum(   # x * exp(x - max), a few columns at a time
                    (blk * (blk - new_max[:, None]).exp()).sum(1) for blk in tile.split(1024, dim=1))
                tile.sub_(new_max[:, None]).exp_()
                sum_exp[rows] = sum_exp[rows] * scale + tile.sum(1)
                run_max[rows] = new_max
        log_z = run_max + torch.log(sum_exp)
        ctx.save_for_backward(hidden, weight, targets, log_z)
        ctx.chunk_size = chunk_size
        entropy = log_z - x_sum_exp / sum_exp if "entropy" in outputs else None
        top1 = (target >= run_max) & (target > best_other) if "is_top1" in outputs else None
        mean = z_sum / vocab if "mean_logits" in outputs else None
        if top1 is not None:
            ctx.mark_non_differentiable(top1)
        return target - log_z, entropy, None, mean, top1

    @staticmethod
    def backward(ctx, grad_logprobs, *_):
        hidden, weight, targets, log_z = ctx.saved_tensors
        n_tok, vocab, size = hidden.shape[0], weight.shape[0], ctx.chunk_size
        grad_hidden = torch.zeros_like(hidden)
        buf = hidden.new_empty(min(n_tok, TILE_TOKENS), size)
        for t0 in range(0, n_tok, TILE_TOKENS):
            rows = slice(t0, min(t0 + TILE_TOKENS, n_tok))
            g = grad_logprobs[rows]
            for v0 in range(0, vocab, size):
                v1 = min(v0 + size, vocab)
                tile = buf[:rows.stop - t0, :v1 - v0]
                torch.mm(hidden[rows], weight[v0:v1].t(), out=tile)
                tile.sub_(log_z[rows, None]).exp_().mul_(-g[:, None])     # d log p_t / dz = 1[t] - p
                inside = (targets[rows] >= v0) & (targets[rows] < v1)
                local = (targets[rows] - v0).clamp(0, v1 - v0 - 1)
                tile.scatter_add_(1, local[:, None], torch.where(inside, g, 0)[:, None])
                grad_hidden[rows].addmm_(tile, weight[v0:v1])
        return grad_hidden, None, None, None, None, None, None, None, None


def trl(folder: Path, data: Path, batch: int) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer
    import trl.trainer.utils as trl_utils

    from trainer_backend.data import load_dataset
    from trainer_backend.models.loading import load_for_training
    from trainer_backend.templates import load_tokenizer
    from trainer_backend.templates.pairs import build_preference_examples

    cfg = run_config(folder, data, Path(tempfile.mkdtemp()), batch)
    tokenizer = load_tokenizer(str(folder))
    units, _ = build_preference_examples(load_dataset(data).conversations, tokenizer, cfg.template)
    rows = Dataset.from_list([{"prompt_ids": p.chosen.input_ids[:p.prompt_len],
                               "chosen_ids": p.chosen.input_ids[p.prompt_len:],
                               "rejected_ids": p.rejected.input_ids[p.prompt_len:]} for p in units[:2 * batch]])
    state: dict = {}

    class Profile(TrainerCallback):
        def on_step_begin(self, args, st, control, **kwargs):
            if st.global_step == 1:
                state["prof"] = profiler()
                state["prof"].__enter__()

        def on_step_end(self, args, st, control, **kwargs):
            if "prof" in state and "done" not in state:
                state["prof"].__exit__(None, None, None)
                state["done"] = True

    class InOrder(DPOTrainer):
        def _prepare_dataset(self, dataset, *args, **kwargs):
            return dataset   # already our token ids

        def _get_train_sampler(self, train_dataset=None):
            return torch.utils.data.SequentialSampler(train_dataset or self.train_dataset)

    args = DPOConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=batch, gradient_accumulation_steps=1,
                     max_steps=2, learning_rate=5e-6, lr_scheduler_type="constant", beta=0.1, loss_type=["sigmoid"],
                     max_length=None, precompute_ref_log_probs=False, bf16=False, gradient_checkpointing=True,
                     gradient_checkpointing_kwargs={"use_reentrant": False}, max_grad_norm=cfg.train.max_grad_norm,
                     weight_decay=0.0, optim="adamw_torch", logging_steps=1, report_to=[], use_cpu=True,
                     save_strategy="no", seed=0, disable_tqdm=True, dataloader_num_workers=0)
    model = load_for_training(cfg, CPU).model
    trainer = InOrder(model=model, args=args, train_dataset=rows, processing_class=tokenizer, callbacks=[Profile()])
    saved, trl_utils._ChunkedLogProbFunction = trl_utils._ChunkedLogProbFunction, TiledLogProbs
    try:
        trainer.train()
    finally:
        trl_utils._ChunkedLogProbFunction = saved
    report = peak_report(state["prof"])
    report.update(baseline_mib(model, trainer.optimizer), loss=trainer.state.log_history[1]["loss"],
                  side="TRL DPOTrainer (fused LM head as plain torch)",
                  tokens=sum(len(u.input_ids) for u in units[batch:2 * batch]))
    return report


# ---- the table ---------------------------------------------------------------------------------
def table(results: list[dict], argv: str, shape: str) -> str:
    lines = [f"# DPO step memory on CPU: ours vs TRL's DPOTrainer ({shape})", "",
             f"{time.strftime('%Y-%m-%d')}, `python bench/dpo_memory_cpu.py {argv}`, torch {torch.__version__}, "
             f"second optimizer step profiled ({results[0]['tokens']} tokens of 2 pairs)", "",
             "| run | weights MiB | AdamW state MiB | step peak above start MiB | step-2 loss |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['side']} | {r['weights_mib']:.0f} | {r['optimizer_state_mib']:.1f} | "
                     f"{r['peak_mib']:.1f} | {r['loss']:.4f} |")
    for r in results:
        lines += ["", f"Live at the peak of {r['side']} (MiB, allocations):", ""]
        lines += [f"- {mib:.1f} MiB in {n}: {name}" for name, mib, n in r["top"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab", type=int, default=151936)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--chunks", default="512,64", help="our LM-head chunks to profile")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="dpo-memory-"))
    folder = make_model(tmp / "model", args.vocab, args.layers)
    data = write_pairs(tmp / "pairs.jsonl", 2 * args.batch)
    results = [trl(folder, data, args.batch)] + [ours(folder, data, args.batch, int(c)) for c in args.chunks.split(",")]
    shape = f"Qwen2 shape, hidden 512, {args.layers} layers, vocabulary {args.vocab}, fp32, LoRA r=16"
    text = table(results, " ".join(sys.argv[1:]), shape)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
