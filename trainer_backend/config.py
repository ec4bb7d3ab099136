"""The run config: one schema for a whole fine-tuning run.

The studio builds one, the CLI runs one, a job directory keeps one (`config.yaml`), presets are
written in it. Unknown keys and wrong types are rejected with a message naming the dotted key.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .child_env import PROJECT_ROOT
from .safe_yaml import MAX_FIELD_BYTES, YamlError, YamlRefused, dump_yaml, load_yaml, load_yaml_file

Auto = Literal["auto"]


class ConfigError(ValueError):
    """A user-fixable problem with a run config; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    name_or_path: str = Field(".cache/models/SmolLM2-135M-Instruct",
                              description="Hub id or local folder of the base model (a folder with only config.json is enough for `plan`).")
    engine: Literal["auto", "unsloth", "hf"] = Field("auto", description="auto = unsloth on CUDA, hf (transformers+peft) elsewhere.")
    attn_implementation: Literal["auto", "flex", "flash_attention_2", "sdpa", "eager"] = Field(
        "auto", description="Attention kernel for packed rows: flex (FlexAttention with document masks), "
                            "flash_attention_2 (flash-attn varlen), or transformers' sdpa/eager (hf engine); "
                            "auto = flash_attention_2 when flash-attn is installed on a GPU, else flex.")
    trust_remote_code: bool = Field(False, description="Run modeling code shipped with the model; on a shared studio only where the admin allows it.")
    architecture: dict[str, Any] = Field(default_factory=dict,
                                         description="Published config.json fields, recorded by presets for memory checks.")


class DataConfig(_Section):
    path: str = Field("samples/demo_alpaca.jsonl", description="JSON, JSONL, CSV, Parquet file or a datasets save_to_disk folder.")
    format: Literal["auto", "alpaca", "sharegpt", "messages", "text", "preference", "kto"] = Field(
        "auto", description="Dataset layout; auto detects it from the columns. preference = prompt/chosen/rejected "
                            "(strings or message lists), kto = prompt/completion/label.")
    columns: dict[str, str] = Field(default_factory=dict,
                                    description="Map your column names to the format's fields, e.g. {prompt: instruction, response: output}.")
    strict: bool = Field(False, description="Fail on the first invalid row instead of skipping invalid rows.")
    eval_path: str | None = Field(None, description="A separate eval file (same formats as path); overrides eval_ratio.")
    eval_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="Fraction of rows held out for eval loss when eval_path is empty.")


class TemplateConfig(_Section):
    name: Literal["auto", "chatml", "llama3", "mistral", "mistral-v3", "vistral", "alpaca"] = Field(
        "auto", description="auto = the tokenizer's own chat template, else a named fallback.")
    loss: Literal["response_only", "last_turn", "full"] = Field(
        "response_only", description="Which tokens are trained: every assistant turn, only the last one, or all tokens.")
    max_seq_len: int = Field(2048, ge=16, description="Longest row in tokens after rendering.")
    overflow: Literal["truncate", "drop"] = Field("truncate", description="What to do with rows longer than max_seq_len.")
    min_tokens: int = Field(0, ge=0, description="Drop rows shorter than this many tokens.")
    max_tokens: int | None = Field(None, ge=1, description="Drop rows longer than this many tokens (None = no limit below max_seq_len).")
    system_prompt: str | None = Field(None, description="Used for rows that have no system message.")
    enable_thinking: bool | None = Field(None, description="Qwen3: render with thinking on or off (None = template default).")
    packing: bool = Field(True, description="Pack several rows into one sequence without padding (attention stays within each row).")


class LoraConfig(_Section):
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: float = Field(32, gt=0, description="LoRA scaling numerator: updates are scaled by alpha / r (alpha / sqrt(r) with rslora).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: Union[Literal["all-linear"], list[str]] = Field(
        "all-linear", description="Layers that get adapters: all-linear (every linear layer but the output head) or names like [q_proj, v_proj].")
    rslora: bool = Field(False, description="Rank-stabilized LoRA scaling (alpha / sqrt(r)).")


Objective = Literal["sft", "dpo", "orpo", "simpo", "kto"]
PREFERENCE_OBJECTIVES = ("dpo", "orpo", "simpo")   # trained on prompt/chosen/rejected pairs
REFERENCE_OBJECTIVES = ("dpo", "kto")              # need the reference model's log-probabilities


class TrainConfig(_Section):
    objective: Objective = Field(
        "sft", description="The loss: sft (next-token loss on the trained tokens), dpo, orpo, simpo (preference "
                           "pairs) or kto (completions labelled desirable or not); parameters in `preference`.")
    max_steps: int = Field(-1, description="Optimizer steps; -1 = run `epochs` over the data.")
    epochs: float = Field(1.0, gt=0, description="Passes over the data when max_steps is -1 (fractions allowed).")
    micro_batch_size: Union[int, Auto] = Field(4, description="Sequences per forward pass on each device (or auto).")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step on each device.")
    effective_batch_size: int | None = Field(
        None, ge=1, description="Sequences per optimizer step over all devices; when set, the planner keeps "
                                "micro_batch_size x grad_accum x devices equal to it.")
    lr: float = Field(2e-4, gt=0, description="Peak learning rate.")
    scheduler: Literal["linear", "cosine", "constant"] = Field(
        "cosine", description="Learning-rate decay after warmup.")
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="Warmup as a fraction of all steps (used when warmup_steps is 0).")
    warmup_steps: int = Field(0, ge=0, description="Linear warmup steps from 0 to lr.")
    optimizer: Literal["adamw", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit"] = Field(
        "adamw", description="adamw (fused on CUDA); the 8-bit and paged ones use bitsandbytes and need CUDA.")
    weight_decay: float = Field(0.0, ge=0.0, description="Decoupled weight decay on matrices (not on norms or biases).")
    max_grad_norm: float = Field(1.0, ge=0.0, description="0 disables clipping.")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="auto = bf16 on GPUs that support it (else fp16), fp32 on CPU.")
    gradient_checkpointing: Literal["auto", "off", "on", "offload"] = Field(
        "auto", description="Recompute activations in the backward pass to save memory; auto = the planner decides.")
    seed: int = Field(42, description="Seeds LoRA init, data order, dropout and the eval split.")
    eval_every: int = Field(0, ge=0, description="Eval loss every N steps (0 = only at the end when there is eval data).")
    save_every: int = Field(0, ge=0, description="Checkpoint every N steps (0 = only at stop and at the end).")
    log_every: int = Field(1, ge=1, description="Write a train event every N steps.")
    tensorboard: bool = Field(False, description="Also write TensorBoard logs to <output.dir>/tensorboard (needs the tensorboard package).")

    @field_validator("micro_batch_size")
    @classmethod
    def _positive_batch(cls, v):
        if v != "auto" and v < 1:
            raise ValueError("must be >= 1 or 'auto'")
        return v


class PreferenceConfig(_Section):
    beta: float = Field(0.1, gt=0, description="dpo, simpo, kto: how far the policy may move from the reference "
                                               "(DPO/KTO) or the reward scale (SimPO).")
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust"] = Field(
        "sigmoid", description="dpo: the loss on the reward margin (sigmoid = DPO, ipo = IPO, hinge = SLiC, "
                               "robust = rDPO with label_smoothing).")
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5, description="dpo robust, simpo: assumed rate of "
                                                                     "flipped preference labels.")
    simpo_gamma: float = Field(0.5, ge=0.0, description="simpo: target reward margin.")
    orpo_lambda: float = Field(0.1, gt=0, description="orpo: weight of the odds-ratio term next to the NLL "
                                                      "of the chosen sequence.")
    kto_desirable_weight: float = Field(1.0, gt=0, description="kto: weight of desirable completions.")
    kto_undesirable_weight: float = Field(1.0, gt=0, description="kto: weight of undesirable completions.")


class SyncConfig(_Section):
    backend: Literal["auto", "shm", "nccl"] = Field("auto", description="auto = nccl across GPUs, shm for CPU workers.")
    devices: list[Union[int, Literal["cpu"]]] = Field(default_factory=lambda: ["cpu"],
                                                     description="[cpu], [0], [0, 1] or [cpu, cpu]: one worker per entry.")
    bucket_mb: float = Field(25.0, gt=0)
    wire_dtype: Literal["fp32", "bf16"] = "fp32"
    timeout_s: float = Field(10.0, gt=0, description="A rank silent this long is declared dead.")
    sharding: Literal["auto", "none", "fsdp"] = Field(
        "auto", description="none = every rank holds the whole model (data parallel); fsdp = parameters, "
                            "gradients and optimizer state sharded over the ranks with torch FSDP2 (hf engine); "
                            "auto = the planner shards only when the run does not fit one GPU.")

    @field_validator("devices")
    @classmethod
    def _one_kind(cls, v):
        if not v:
            raise ValueError("needs at least one device")
        if any(d == "cpu" for d in v) and any(d != "cpu" for d in v):
            raise ValueError("mixes cpu and GPU workers")
        gpus = [d for d in v if d != "cpu"]
        if len(set(gpus)) != len(gpus):
            raise ValueError("lists a GPU twice")
        return v


class OutputConfig(_Section):
    dir: str = Field("workdir/runs/demo", description="Job directory: config, events, checkpoints, output.")
    merge: bool = Field(False, description="Also write merged safetensors at the end.")


class PlannerConfig(_Section):
    gpu_mem_gib: float | None = Field(None, gt=0, description="Budget per GPU for `auto` fields (None = detected).")
    headroom_gib: float = Field(1.5, ge=0)
    expected_peak_gib: float | None = Field(None, gt=0, description="Peak GPU memory the planner predicts (presets declare it).")


class RunConfig(_Section):
    name: str = "run"
    description: str = ""
    method: Literal["auto", "lora", "qlora", "full"] = Field(
        "lora", description="auto = LoRA, or QLoRA when LoRA fits no plan on the GPU (the planner decides).")
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    template: TemplateConfig = Field(default_factory=TemplateConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    preference: PreferenceConfig = Field(default_factory=PreferenceConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    planner: PlannerConfig = Field(default_factory=PlannerConfig)

    @model_validator(mode="after")
    def _coherent(self):
        if self.train.max_steps == 0 or self.train.max_steps < -1:
            raise ValueError("train.max_steps: must be -1 (use epochs) or a positive number of steps")
        if self.sync.sharding == "fsdp":
            _check_sharding(self)
        return self

    # ---- YAML in and out -------------------------------------------------
    def to_yaml(self) -> str:
        return dump_yaml(self.model_dump(mode="json"))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml(), encoding="utf-8")

    def with_overrides(self, overrides: list[str] | dict[str, Any]) -> "RunConfig":
        data = self.model_dump(mode="json")
        apply_overrides(data, overrides)
        return validate_config(data)


def _check_sharding(cfg: "RunConfig") -> None:
    """What FSDP2 sharding cannot run here, refused before anything starts."""
    if cfg.method == "qlora":
        raise ValueError("sync.sharding: fsdp does not shard bitsandbytes' 4-bit (QLoRA) weights; "
                         "use method: lora or full with fsdp, or sync.sharding: none for QLoRA")
    if cfg.model.engine == "unsloth":
        raise ValueError("sync.sharding: fsdp runs on the hf engine (Unsloth's kernels are not "
                         "FSDP-aware); set model.engine: auto or hf, or sync.sharding: none")
    if cfg.sync.backend == "shm":
        raise ValueError("sync.sharding: fsdp exchanges shards through torch.distributed (nccl, gloo on "
                         "CPU); set sync.backend: auto or nccl")


def _format_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown key '{key}'")
        else:
            lines.append(f"'{key}': {e['msg']} (got {e.get('input')!r})")
    return "invalid run config: " + "; ".join(lines)


def validate_config(data: dict[str, Any]) -> RunConfig:
    if not isinstance(data, dict):
        raise ConfigError("invalid run config: the top level must be a mapping of sections")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(err)) from None


def parse_override(item: str) -> tuple[str, Any]:
    """`train.lr=1e-4` -> ('train.lr', 0.0001); values are parsed as YAML (`sync.devices=[0,1]`)."""
    if "=" not in item:
        raise ConfigError(f"--set expects dotted.key=value, got '{item}'")
    key, raw = item.split("=", 1)
    try:
        value = load_yaml(raw, f"--set {key.strip()}", MAX_FIELD_BYTES) if raw != "" else ""
    except YamlRefused as err:
        raise ConfigError(str(err)) from None
    except YamlError:
        value = raw  # not YAML: the text itself
    if isinstance(value, str) and _looks_numeric(value):
        value = float(value)  # YAML 1.1 reads 1e-4 as a string
    return key.strip(), value


def _looks_numeric(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def apply_overrides(data: dict[str, Any], overrides: list[str] | dict[str, Any]) -> None:
    items = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides)
    for key, value in items:
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})  # a section the file leaves out can still be set
            if not isinstance(node, dict):
                raise ConfigError(f"unknown key '{key}'")
        node[parts[-1]] = value


def load_config(source: str | Path, overrides: list[str] | dict[str, Any] = ()) -> RunConfig:
    """Load a YAML file or a preset name (see presets/), then apply dotted overrides."""
    path = resolve_config_path(source)
    try:
        data = load_yaml_file(path) or {}
    except YamlError as err:
        raise ConfigError(str(err)) from None
    if overrides:
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        apply_overrides(data, overrides)
    try:
        cfg = validate_config(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return _anchor_to_project(cfg) if path.resolve().parent == PRESETS_DIR else cfg


PRESETS_DIR = PROJECT_ROOT / "presets"


def _anchor_to_project(cfg: RunConfig) -> RunConfig:
    """Presets name bundled files (the demo model in .cache, samples/) relative to the project, so
    that they resolve wherever the studio or the CLI was started from."""
    for section, key in (("model", "name_or_path"), ("data", "path")):
        value = getattr(getattr(cfg, section), key)
        if value and not Path(value).is_absolute() and (PROJECT_ROOT / value).exists():
            setattr(getattr(cfg, section), key, str(PROJECT_ROOT / value))
    return cfg


def resolve_config_path(source: str | Path) -> Path:
    path = Path(source)
    if path.exists():
        return path
    preset = PRESETS_DIR / f"{source}.yaml"
    if preset.exists():
        return preset
    names = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
    raise ConfigError(f"'{source}' is neither a config file nor a preset (presets: {names})")
