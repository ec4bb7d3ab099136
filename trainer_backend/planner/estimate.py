"""Peak GPU memory of one training step, from the architecture and the run's choices.

peak = allocated x (1 + allocator reserve) + CUDA context, where allocated is the sum of
weights, trainable state (params + grads + optimizer), activations kept for backward,
logits/cross-entropy buffers and a fixed workspace. Constants come from calibration.yaml.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from trainer_backend.config import (LOGP_HEAD_CHUNK, PREFERENCE_OBJECTIVES, REFERENCE_OBJECTIVES, ConfigError,
                                   RunConfig, flat_8bit_step)
from trainer_backend.planner.architecture import Architecture, architecture_of, lora_targets
from trainer_backend.planner.calibration import Calibration, load_calibration

GIB = 1024 ** 3
# Optimizer state bytes per trainable parameter: AdamW keeps two moments, in the parameter's own
# dtype for torch's AdamW (bf16 weights of a full fine-tune: bf16 moments), always fp32 for
# bitsandbytes' 32-bit one and one byte each for the 8-bit ones.
OPTIMIZER_BYTES = {"paged_adamw_32bit": 8.0, "adamw_8bit": 2.0, "paged_adamw_8bit": 2.0}


def optimizer_bytes(optimizer: str, param_width: float) -> float:
    return OPTIMIZER_BYTES.get(optimizer, 2 * param_width)


@dataclass(frozen=True)
class RunShape:
    """The memory-relevant choices of a run, all concrete (no `auto`)."""
    method: str            # lora | qlora | full
    engine: str            # unsloth | hf
    checkpointing: str     # off | on
    micro_batch_size: int
    seq_len: int
    lora_r: int
    lora_targets: tuple[str, ...]
    optimizer: str
    precision: str         # bf16 | fp16 | fp32
    sequences_per_example: int = 1   # 2 for preference pairs: chosen and rejected in the same pass
    grad_accum: int = 1    # passes per optimizer step: with more than one, full fine-tuning's gradients persist
    shards: int = 0        # GPUs the model is sharded over with FSDP2; 0 = not sharded
    chunked_head: bool = False  # log-prob objectives: the LM head runs LOGP_HEAD_CHUNK positions at a time

    @property
    def sharded(self) -> bool:
        return self.shards > 0

    @property
    def width(self) -> float:
        """Bytes of one weight, gradient or activation value: fp32 or a 16-bit type."""
        return 4.0 if self.precision == "fp32" else 2.0

    @property
    def tokens(self) -> int:
        return self.micro_batch_size * self.sequences_per_example * self.seq_len


@dataclass(frozen=True)
class Estimate:
    peak_gib: float                 # what must fit on the GPU
    allocated_gib: float            # comparable to torch.cuda.max_memory_allocated
    breakdown: dict[str, float]     # GiB per component, summing to peak_gib
    shape: RunShape
    gpu_mem_gib: float | None = None
    fits: bool | None = field(default=None)

    def table(self) -> str:
        rows = [f"| {name} | {gib:.2f} |" for name, gib in self.breakdown.items()]
        budget = "" if self.gpu_mem_gib is None else f" (limit {self.gpu_mem_gib:g} GiB)"
        return "\n".join(["| component | GiB |", "|---|---|", *rows,
                          f"| **peak{budget}** | **{self.peak_gib:.2f}** |"])


def resolve_engine(cfg: RunConfig) -> str:
    """`auto` means Unsloth on CUDA devices and transformers+PEFT elsewhere or when sharded (as the
    trainer does)."""
    if cfg.model.engine != "auto":
        return cfg.model.engine
    return "hf" if "cpu" in cfg.sync.devices or cfg.sync.sharding == "fsdp" else "unsloth"


def run_shape(cfg: RunConfig) -> RunShape:
    autos = [key for key, value in (("method", cfg.method),
                                    ("train.micro_batch_size", cfg.train.micro_batch_size),
                                    ("train.gradient_checkpointing", cfg.train.gradient_checkpointing))
             if value == "auto"]
    if autos:
        raise ConfigError(f"{', '.join(autos)}: 'auto' must be resolved by the planner before estimating")
    return RunShape(method=cfg.method, engine=resolve_engine(cfg),
                    checkpointing=cfg.train.gradient_checkpointing,
                    micro_batch_size=int(cfg.train.micro_batch_size), seq_len=cfg.template.max_seq_len,
                    lora_r=cfg.lora.r, lora_targets=tuple(lora_targets(cfg.lora.target_modules)),
                    optimizer=cfg.train.optimizer,
                    precision="bf16" if cfg.train.precision == "auto" else cfg.train.precision,
                    sequences_per_example=2 if cfg.train.objective in PREFERENCE_OBJECTIVES else 1,
                    grad_accum=cfg.train.grad_accum,
                    shards=len(cfg.sync.devices) if cfg.sync.sharding == "fsdp" else 0,
                    chunked_head=cfg.train.objective != "sft")


def weights_bytes(arch: Architecture, s: RunShape, cal: Calibration) -> float:
    if s.method == "qlora":
        # Projections are NF4; embeddings, LM head and norms stay in 16 bits.
        return arch.linear_params() * cal.qlora_bytes_per_param + \
            (arch.embedding_params() + arch.norm_params()) * s.width
    return arch.total_params() * s.width


def trainable_bytes(arch: Architecture, s: RunShape) -> float:
    """Trainable params + their grads + optimizer states. A full fine-tune trains the weights
    themselves (counted once, under weights) and its gradients have a row of their own."""
    if s.method == "full":
        return arch.total_params() * optimizer_bytes(s.optimizer, s.width)
    # Adapters are kept in fp32 (PEFT and Unsloth upcast them), as are their grads.
    return arch.lora_params(s.lora_r, list(s.lora_targets)) * (4.0 + 4.0 + optimizer_bytes(s.optimizer, 4.0))


def full_gradient_bytes(arch: Architecture, s: RunShape, live_bytes: float) -> float:
    """A full fine-tune's gradients (in the weights' dtype) at the step's peak. With accumulation
    they outlive each pass and add to the next pass's activations. With one pass a step the
    backward writes them while it frees that pass's activations, so only what they exceed the
    live activations by adds to the peak (measured: full fine-tuning of Qwen2.5-1.5B peaks at
    weights + optimizer + activations, calibration.yaml)."""
    grads = arch.total_params() * s.width / max(s.shards, 1)
    return grads if s.grad_accum > 1 else max(0.0, grads - live_bytes)


def activation_bytes(arch: Architecture, s: RunShape, cal: Calibration) -> float:
    e = cal.engines[s.engine]
    per_layer = s.width * (e.hidden_coef * arch.hidden + e.intermediate_coef * arch.intermediate) * s.tokens
    per_layer *= e.activation_factor(arch.model_type, s.method, s.checkpointing)
    if s.checkpointing == "off":
        return arch.layers * per_layer
    live = e.recompute_layers * per_layer
    if not e.inputs_on_gpu[s.checkpointing]:
        return live  # each layer's input waits in CPU memory
    return live + arch.layers * arch.hidden * s.width * s.tokens  # one saved input per layer


def logits_bytes(arch: Architecture, s: RunShape, e) -> float:
    """SFT: the engine's cross-entropy buffers per token (Unsloth fuses and chunks them: none).
    Log-prob objectives, whatever the engine: one chunk's logits in fp32 (turned in place into
    their exponentials, and in the backward into their gradient: objectives/logps.HeadLogps) and
    one copy in the model's dtype (the head's output, then the gradient handed back); the chunk is
    recomputed in the backward, so only one exists at a time."""
    if s.chunked_head:
        return (4.0 + s.width) * LOGP_HEAD_CHUNK * arch.vocab
    return e.logits_bytes_per_vocab * arch.vocab * s.tokens


def flat_copy_bytes(arch: Architecture, s: RunShape, live_bytes: float) -> float:
    """The flat 8-bit step (train/flat_optim.py) copies the trainable weights and their gradients
    into one buffer each, after the backward has freed the pass's activations and logits: only what
    the copies exceed those by adds to the peak."""
    entries = arch.total_params() if s.method == "full" else arch.lora_params(s.lora_r, list(s.lora_targets))
    if s.sharded or not flat_8bit_step(s.optimizer, entries):
        return 0.0
    width = s.width if s.method == "full" else 4.0   # adapters and their grads are fp32
    return max(0.0, 2 * width * entries - live_bytes)


REFERENCE_MODEL_BYTES = 0.0
"""The reference model of DPO and KTO costs no weights: with adapters it is the same model with
its adapters disabled; with full fine-tuning its log-probs are computed once before training and
kept as two floats a pair. Its forward runs under no_grad before the policy's, so its buffers
are freed before the policy's activations build up. Shown as its own row so that the estimate
says so."""


def fsdp_buffer_bytes(arch: Architecture, s: RunShape) -> float:
    """What FSDP2 holds unsharded on each GPU: the root unit (embeddings, head) for the whole step,
    two decoder layers at a time (the one computing and the one prefetched) and, for full
    fine-tuning, two layers of unsharded gradients waiting for their reduce-scatter."""
    layer = arch.total_params() - arch.embedding_params() - arch.norm_params()
    layer /= arch.layers
    gathered = (arch.embedding_params() + 2 * layer) * s.width
    if s.method == "full":
        gathered += 2 * layer * s.width
    return gathered


def estimate_shape(arch: Architecture, s: RunShape, cal: Calibration,
                   gpu_mem_gib: float | None = None, reference: bool = False) -> Estimate:
    e = cal.engines[s.engine]
    per_gpu = max(s.shards, 1)  # sharded state is split evenly over the GPUs
    parts = {
        "weights": weights_bytes(arch, s, cal) / per_gpu / GIB,
        "trainable params + grads + optimizer": trainable_bytes(arch, s) / per_gpu / GIB,
        "activations": activation_bytes(arch, s, cal) / GIB,
        "logits / cross-entropy": logits_bytes(arch, s, e) / GIB,
        "workspace": e.workspace_gib,
        **({"reference model (adapters disabled or precomputed)": REFERENCE_MODEL_BYTES} if reference else {}),
    }
    live = (parts["activations"] + parts["logits / cross-entropy"]) * GIB
    if s.method == "full":
        parts["gradients"] = full_gradient_bytes(arch, s, live) / GIB
    copies = flat_copy_bytes(arch, s, live)
    if copies > 0:
        parts["flat 8-bit step's copies"] = copies / GIB
    if s.sharded:
        parts["FSDP gathered layers"] = fsdp_buffer_bytes(arch, s) / GIB
    allocated = sum(parts.values())
    parts["allocator reserve"] = allocated * e.allocator_reserve_fraction
    parts["CUDA context"] = cal.cuda_context_gib
    peak = sum(parts.values())
    fits = None if gpu_mem_gib is None else peak <= gpu_mem_gib
    return Estimate(peak_gib=peak, allocated_gib=allocated, breakdown=parts, shape=s,
                    gpu_mem_gib=gpu_mem_gib, fits=fits)


def estimate_resolved(cfg: RunConfig, gpu_mem_gib: float | None = None,
                      cal: Calibration | None = None) -> Estimate:
    """Estimate a config with no `auto` left in the fields the formula reads."""
    return estimate_shape(architecture_of(cfg), run_shape(cfg), cal or load_calibration(), gpu_mem_gib,
                          reference=cfg.train.objective in REFERENCE_OBJECTIVES)
