"""The run config: one schema for a whole fine-tuning run.

The studio builds one, the CLI runs one, a job directory keeps one (`config.yaml`), presets are
written in it. Unknown keys and wrong types are rejected with a message naming the dotted key.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .child_env import PROJECT_ROOT
from .messages import ENGLISH, Notice, Refusal, joined, msg
from .safe_yaml import MAX_FIELD_BYTES, YamlError, YamlRefused, dump_yaml, load_yaml, load_yaml_file

Auto = Literal["auto"]


# Keys that only work with an optional package installed; the studio hides them without it.
OPTIONAL_PACKAGES = {"train.tensorboard": "tensorboard", "train.wandb": "wandb", "train.wandb_project": "wandb"}


def unavailable_keys() -> set[str]:
    from importlib.util import find_spec

    return {key for key, package in OPTIONAL_PACKAGES.items() if find_spec(package) is None}


class ConfigError(ValueError):
    """A user-fixable problem with a run config; the message names the key. `notice` is the message
    to show in the user's language (a plain text travels as the argument of `detail`)."""

    def __init__(self, message: str | Notice):
        super().__init__(str(message))
        self.notice = message if isinstance(message, Notice) else msg("detail", detail=str(message))

    def __reduce__(self):
        return type(self), (self.notice,)


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
    offline_tokenizer: str | None = Field(
        None, description="A local tokenizer of the same family that previews use when the model hub cannot be reached.")
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
    drop_trailing_user: bool = Field(True, description="Drop the last user turn of a chat that ends on one (an "
                                                       "unanswered question) instead of rejecting the row.")
    eval_path: str | None = Field(None, description="A separate eval file (same formats as path); overrides eval_ratio.")
    eval_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="Fraction of rows held out for eval loss when eval_path is empty.")


class TemplateConfig(_Section):
    name: Literal["auto", "chatml", "llama3", "mistral", "mistral-v3", "vistral", "llama2", "alpaca"] = Field(
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

    @field_validator("target_modules")
    @classmethod
    def _some_targets(cls, v):
        if not v:
            raise Refusal(msg("config.no_layer"))
        return v


class QloraConfig(_Section):
    """How method qlora quantizes the frozen base model (bitsandbytes 4-bit)."""
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type of the frozen weights (nf4 = QLoRA's NormalFloat).")
    double_quant: bool = Field(True, description="Also quantize the quantization constants (saves about 0.4 bits per weight).")
    compute_dtype: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="Dtype the 4-bit weights are dequantized to for each matmul (auto = train.precision).")


Objective = Literal["sft", "dpo", "orpo", "simpo", "kto"]
PREFERENCE_OBJECTIVES = ("dpo", "orpo", "simpo")   # trained on prompt/chosen/rejected pairs
REFERENCE_OBJECTIVES = ("dpo", "kto")              # need the reference model's log-probabilities
# Every objective but sft scores sequences by their log-probs (train/objectives/logps.py): the LM
# head runs over this many positions at a time, its logits recomputed in the backward.
LOGP_HEAD_CHUNK = 512
# `train.optimizer: adamw_8bit` steps the trainable tensors as one flat buffer (train/flat_optim.py)
# when they hold at most this many entries: the step then copies them and their gradients, at most
# 1 GiB in fp32, and the planner counts that copy (planner/estimate.flat_copy_bytes).
FLAT_8BIT_MAX_ENTRIES = 2 ** 27


def flat_8bit_step(optimizer: str, trainable_entries: int) -> bool:
    return optimizer == "adamw_8bit" and trainable_entries <= FLAT_8BIT_MAX_ENTRIES


class TrainConfig(_Section):
    objective: Objective = Field(
        "sft", description="The loss: sft (next-token loss on the trained tokens), dpo, orpo, simpo (preference "
                           "pairs) or kto (completions labelled desirable or not); parameters in `preference`.")
    max_steps: int = Field(-1, description="Optimizer steps; -1 = run `epochs` over the data.")

    @field_validator("max_steps")
    @classmethod
    def _steps(cls, v):
        if v == 0 or v < -1:
            raise Refusal(msg("config.steps"))
        return v

    epochs: float = Field(1.0, gt=0, description="Passes over the data when max_steps is -1 (fractions allowed).")
    micro_batch_size: Union[int, Auto] = Field(4, description="Sequences per forward pass on each device (or auto).")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step on each device.")
    effective_batch_size: int | None = Field(
        None, ge=1, description="Sequences per optimizer step over all devices; when set, the planner keeps "
                                "micro_batch_size x grad_accum x devices equal to it.")
    lr: float = Field(2e-4, gt=0, allow_inf_nan=False, description="Peak learning rate.")
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
    gradient_checkpointing: Literal["auto", "off", "on"] = Field(
        "auto", description="Recompute activations in the backward pass to save memory; auto = the planner decides.")
    seed: int = Field(42, ge=0, lt=2 ** 32, description="Seeds LoRA init, data order, dropout and the eval split.")
    eval_every: int = Field(0, ge=0, description="Eval loss every N steps (0 = only at the end when there is eval data).")
    save_every: int = Field(0, ge=0, description="Checkpoint every N steps (0 = only at stop and at the end).")
    keep_checkpoints: int = Field(3, ge=1, description="Checkpoints kept: the newest N, plus the one with the best eval loss.")
    log_every: int = Field(1, ge=1, description="Write a train event every N steps.")
    tensorboard: bool = Field(False, description="Also write TensorBoard logs to <output.dir>/tensorboard (needs the tensorboard package).")
    wandb: bool = Field(False, description="Also log to Weights & Biases, run files in <output.dir>/wandb (needs the wandb package; WANDB_MODE=offline logs without an account).")
    wandb_project: str = Field("fine-tuning-studio", description="Weights & Biases project of the run.")

    @field_validator("gradient_checkpointing", mode="before")
    @classmethod
    def _yaml11_switch(cls, v):
        # YAML 1.1 (PyYAML) reads an unquoted on/off as a boolean, in a file and in --set alike.
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v

    @field_validator("micro_batch_size")
    @classmethod
    def _positive_batch(cls, v):
        if v != "auto" and v < 1:
            raise Refusal(msg("config.batch"))
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
            raise Refusal(msg("config.no_device"))
        if any(d == "cpu" for d in v) and any(d != "cpu" for d in v):
            raise Refusal(msg("config.mixed_devices"))
        gpus = [d for d in v if d != "cpu"]
        if len(set(gpus)) != len(gpus):
            raise Refusal(msg("config.gpu_twice"))
        return v


class OutputConfig(_Section):
    dir: str = Field("workdir/runs/demo", description="Job directory: config, events, checkpoints, output.")
    merge: bool = Field(False, description="Also write merged safetensors at the end.")


class PlannerConfig(_Section):
    gpu_mem_gib: float | None = Field(None, gt=0, description="Budget per GPU for `auto` fields (None = detected).")
    headroom_gib: float = Field(1.5, ge=0)
    expected_peak_gib: float | None = Field(None, gt=0, description="Peak GPU memory the planner predicts (presets declare it).")


GENERATION_METRICS = ("exact_match", "token_f1", "rouge_l", "bleu", "chrf", "numeric")
Metric = Literal["exact_match", "token_f1", "rouge_l", "bleu", "chrf", "numeric", "perplexity"]


SHARDED_GENERATION = msg("config.sharded_generation")


class EvalConfig(_Section):
    metrics: list[Metric] = Field(
        default_factory=list,
        description="Held-out metrics at each eval and at the end, base -> fine-tuned: exact_match, token_f1, "
                    "rouge_l, bleu, chrf, numeric (MAE of the first number) answer the held-out prompts; "
                    "perplexity comes from the eval loss.")
    max_rows: int = Field(64, ge=1, description="Held-out rows answered at each eval (the first ones).")
    max_new_tokens: int = Field(64, ge=1, le=1024, description="Longest generated answer in tokens.")
    batch_size: int = Field(8, ge=1, description="Prompts generated together (left-padded).")
    temperature: float = Field(0.0, ge=0.0, le=5.0, description="0 = greedy answers; above 0 samples (seeded by train.seed).")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling when temperature > 0.")
    samples: int = Field(0, ge=0, le=32, description="Held-out rows whose answers the Monitor shows at each eval.")
    sample_prompts: list[str] = Field(
        default_factory=list, description="Prompts of your own answered at each eval (as user messages, with the run's template).")

    @property
    def generates(self) -> bool:
        return bool(set(self.metrics) & set(GENERATION_METRICS)) or self.samples > 0 or bool(self.sample_prompts)


class RunConfig(_Section):
    name: str = "run"
    description: str = ""
    method: Literal["auto", "lora", "qlora", "full"] = Field(
        "lora", description="auto = LoRA, or QLoRA when LoRA fits no plan on the GPU (the planner decides).")
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    template: TemplateConfig = Field(default_factory=TemplateConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    qlora: QloraConfig = Field(default_factory=QloraConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    preference: PreferenceConfig = Field(default_factory=PreferenceConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    planner: PlannerConfig = Field(default_factory=PlannerConfig)

    @model_validator(mode="after")
    def _coherent(self):
        if self.sync.sharding == "fsdp":
            _check_sharding(self)
        if (self.eval.metrics or self.eval.generates) and not (self.data.eval_path or self.data.eval_ratio > 0):
            raise Refusal(msg("config.eval_needs_rows"))
        if self.eval.generates and self.sync.sharding == "fsdp":
            raise Refusal(SHARDED_GENERATION)
        return self

    def warnings(self) -> list[str]:
        """Values that are legal but most likely a mistake: the run starts, the log says why it may fail."""
        found = []
        usual = 1e-3 if self.method == "full" else 1e-2
        if self.train.lr > usual:
            found.append(f"'train.lr' {self.train.lr:g} is far above the usual range for {self.method} "
                         f"(1e-5 to {usual:g}); the loss will likely diverge")
        return found

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
        raise Refusal(msg("config.fsdp_qlora"))
    if cfg.model.engine == "unsloth":
        raise Refusal(msg("config.fsdp_unsloth"))
    if cfg.sync.backend == "shm":
        raise Refusal(msg("config.fsdp_shm"))


def _problem(e: dict) -> Notice:
    """One pydantic error as a notice: a validator's own refusal, or pydantic's check in its words."""
    refusal = (e.get("ctx") or {}).get("error")
    if isinstance(refusal, Refusal):
        return refusal.notice
    if f"value.{e['type']}" in ENGLISH:
        args = {k: f"{v:g}" if isinstance(v, float) else v for k, v in (e.get("ctx") or {}).items()}
        try:
            notice = msg(f"value.{e['type']}", **args)
            if str(notice) == e["msg"]:
                return notice
        except (KeyError, IndexError):
            pass
    return msg("detail", detail=e["msg"].removeprefix("Value error, "))


def _format_error(err: ValidationError) -> Notice:
    problems = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            problems.append(msg("config.unknown_key", key=key))
        elif not e["loc"]:  # a check across sections: its message names the keys, the input is the whole run
            problems.append(_problem(e))
        else:
            problems.append(msg("config.bad_value", key=key, problem=_problem(e), value=repr(e.get("input"))))
    return msg("config.invalid", problems=joined(problems))


def validate_config(data: dict[str, Any]) -> RunConfig:
    if not isinstance(data, dict):
        raise ConfigError(msg("config.not_sections"))
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
        for depth, part in enumerate(parts[:-1], start=1):
            node = node.setdefault(part, {})  # a section the file leaves out can still be set
            if not isinstance(node, dict):
                section = ".".join(parts[:depth])
                raise ConfigError(f"'{section}' is {node!r} in the config, not a section of keys, so '{key}' "
                                  f"cannot be set; write {section}: as a mapping (e.g. {section}: {{}})")
        node[parts[-1]] = value


def load_config(source: str | Path, overrides: list[str] | dict[str, Any] = ()) -> RunConfig:
    """Load a YAML file or a preset name (see presets/), then apply dotted overrides."""
    path = resolve_config_path(source)
    data = read_config_data(path)
    if overrides:
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        apply_overrides(data, overrides)
    try:
        cfg = validate_config(data)
    except ConfigError as err:
        raise ConfigError(msg("job.at", where=str(path), message=err.notice)) from None
    return _anchor_to_project(cfg) if path.resolve().parent == PRESETS_DIR else cfg


PRESETS_DIR = PROJECT_ROOT / "presets"


def read_config_data(path: Path, seen: tuple[Path, ...] = ()) -> Any:
    """The YAML of a config file; a file with a top-level `base: <preset>` is an overlay: the keys
    it sets replace those of that preset (nested sections merge key by key), so a sized variant
    states only what it changes."""
    try:
        data = load_yaml_file(path) or {}
    except YamlError as err:
        raise ConfigError(str(err)) from None
    if not isinstance(data, dict) or "base" not in data:
        return data
    base_name = data.pop("base")
    base = PRESETS_DIR / f"{base_name}.yaml"
    if not isinstance(base_name, str) or not base.is_file():
        raise ConfigError(f"{path}: 'base': {base_name!r} is not a preset in presets/")
    if base.resolve() in seen:
        raise ConfigError(f"{path}: 'base': {base_name} is its own base (through {len(seen)} files)")
    return merge_sections(read_config_data(base, (*seen, path.resolve())), data)


def merge_sections(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Sections merge key by key; a key's value (a list, a mapping such as data.columns) is replaced."""
    merged = dict(base)
    for key, value in overlay.items():
        both_sections = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = {**merged[key], **value} if both_sections else value
    return merged


def _anchor_to_project(cfg: RunConfig) -> RunConfig:
    """Presets name bundled files (the demo model in .cache, samples/) relative to the project, so
    that they resolve wherever the studio or the CLI was started from."""
    for section, key in (("model", "name_or_path"), ("model", "offline_tokenizer"), ("data", "path")):
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
