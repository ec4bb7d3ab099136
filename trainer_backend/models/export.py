"""A job's result: `output/` (PEFT adapter or full weights, plus the tokenizer with its chat
template), and export of it: the adapter as is, merged into the base model as plain safetensors
that `AutoModelForCausalLM.from_pretrained` loads without peft, or merged into one GGUF file for
llama.cpp and Ollama.

A job that stopped or failed before writing `output/` is exported from its newest checkpoint, and
the export is named after it (`merged-step_12`). Merging happens in fp32 and rounds once, to the
storage dtype; the rounding is then measured against the exact model (see merge_check).
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import ConfigError, RunConfig, load_config
from ..contracts import JobPaths
from ..export_contract import MergeCheck, has_output
from .loading import LoadedModel

OUTPUT = "output"
STORAGE = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass(frozen=True)
class ExportSource:
    """Where the trained weights are: the job's `output/`, or a checkpoint folder."""
    path: Path
    from_checkpoint: bool

    def model_folder(self, cfg: RunConfig) -> str:
        """Where the model's config.json is: the full weights of `output/`, else the base model."""
        return str(self.path) if cfg.method == "full" and not self.from_checkpoint else cfg.model.name_or_path

    @property
    def name(self) -> str:
        return self.path.name if self.from_checkpoint else OUTPUT

    def default_folder(self, kind: str) -> str:
        return f"{kind}-{self.path.name}" if self.from_checkpoint else kind


def save_output(loaded: LoadedModel, tokenizer, cfg, job_dir: str | Path,
                state_dict: dict | None = None) -> Path:
    """Write `output/` at the end of a run (and `merged/` when output.merge is set). A sharded run
    passes its weights gathered into one `state_dict` (the model itself holds only shards)."""
    out = Path(job_dir) / OUTPUT
    out.mkdir(parents=True, exist_ok=True)
    loaded.model.save_pretrained(out, safe_serialization=True, state_dict=state_dict)
    tokenizer.save_pretrained(out)
    if cfg.output.merge and cfg.method != "full":
        export_job(job_dir, merge=True)
    return out


def find_source(job_dir: Path) -> ExportSource:
    paths = JobPaths(job_dir)
    if has_output(job_dir):
        return ExportSource(paths.output, from_checkpoint=False)
    checkpoint = paths.latest_checkpoint()
    if checkpoint is not None:
        return ExportSource(checkpoint, from_checkpoint=True)
    raise ConfigError(f"{job_dir}: no trained model there (no {OUTPUT}/ and no checkpoint); "
                      "export a job that has completed or saved a checkpoint")


def export_job(job_dir: str | Path, merge: bool, out_dir: str | Path | None = None, dtype: str = "auto",
               gguf: str | None = None) -> Path:
    """Write a job's adapter (or full weights) with its tokenizer to `out_dir`; with `merge`, the
    model merged into safetensors of `dtype` (auto = the base's); with `gguf` (f16, bf16, q8_0),
    one .gguf file and an Ollama Modelfile. Default `out_dir`: `<job>/adapter`, `merged` or `gguf`."""
    job_dir = Path(job_dir)
    source = find_source(job_dir)
    kind = "gguf" if gguf else "merged" if merge else "adapter"
    out = Path(out_dir) if out_dir else job_dir / source.default_folder(kind)
    if out.resolve() == (job_dir / OUTPUT).resolve():
        raise ConfigError(f"--out: {out} is the job's own output folder; choose another folder")
    if not source.from_checkpoint and kind == "adapter":
        shutil.copytree(source.path, out, dirs_exist_ok=True)
        return out
    cfg = load_config(job_dir / "config.yaml")
    if gguf:
        from .gguf_export import check_supported
        check_supported(source.model_folder(cfg), cfg)
    model, tokenizer = load_exact(cfg, source)
    out.mkdir(parents=True, exist_ok=True)
    if kind == "adapter":  # a checkpoint's adapter, in the layout `PeftModel.from_pretrained` reads
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        return out
    check = merge_and_store(model, tokenizer, cfg, source, out, gguf or dtype)
    if check is not None:
        check.save(out)
        print(check.summary(), file=sys.stderr)
    return out


def merge_and_store(model, tokenizer, cfg: RunConfig, source: ExportSource, out: Path, storage: str) -> MergeCheck | None:
    """Fold the adapter in (fp32), write the merged model in `storage` (a dtype or a GGUF type),
    and measure the rounding against the exact model; None for full fine-tuning (nothing merged)."""
    from .merge_check import answers, compare, prompt_ids

    prompts = prompt_ids(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    is_adapter = hasattr(model, "merge_and_unload")
    reference = answers(model, prompts, pad_id) if is_adapter else None
    merged = model.merge_and_unload() if is_adapter else model
    if storage in STORAGE or storage == "auto":
        dtype = base_dtype(cfg, source) if storage == "auto" else storage
        round_weights(merged, lambda name, w: w.to(STORAGE[dtype]))
        merged.to(STORAGE[dtype]).save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        merged.float()
    else:
        from .gguf_export import gguf_rounding, write_gguf
        write_gguf(merged, tokenizer, cfg, out, storage)
        dtype = storage
        round_weights(merged, gguf_rounding(merged, storage))
    if reference is None:
        return None
    diff, agree = compare(reference, answers(merged, prompts, pad_id))
    return MergeCheck(dtype=dtype, max_logit_diff=diff, greedy_agree=agree, prompts=len(prompts), source=source.name)


@torch.no_grad()
def round_weights(model: torch.nn.Module, rounded) -> None:
    """Replace every parameter by `rounded(name, tensor)` and keep it in fp32, so that the model
    computes exactly what the stored weights compute (only the storage rounding changes)."""
    for name, param in model.named_parameters():
        param.copy_(rounded(name, param.data).to(torch.float32))


def base_dtype(cfg: RunConfig, source: ExportSource) -> str:
    """The dtype the base model ships in (config.json's `dtype`), fp32 when it does not say."""
    from transformers import AutoConfig

    declared = getattr(AutoConfig.from_pretrained(source.model_folder(cfg)), "dtype", None)
    names = {torch.bfloat16: "bf16", torch.float16: "fp16", "bfloat16": "bf16", "float16": "fp16"}
    return names.get(declared, "fp32")


def load_exact(cfg: RunConfig, source: ExportSource):
    """The trained model in fp32 on the CPU (base + unmerged adapter, or full weights) and its tokenizer."""
    from transformers import AutoModelForCausalLM

    if not source.from_checkpoint:
        if cfg.method == "full":
            return _from_pretrained(AutoModelForCausalLM, source.path, cfg), _tokenizer(source.path)
        from peft import PeftModel
        base = _from_pretrained(AutoModelForCausalLM, cfg.model.name_or_path, cfg)
        return PeftModel.from_pretrained(base, str(source.path)), _tokenizer(source.path)
    return _from_checkpoint(cfg, source.path), _tokenizer(cfg.model.name_or_path, cfg.template.name)


def _from_checkpoint(cfg: RunConfig, checkpoint: Path):
    """Rebuild the training model (base, plus LoRA laid out as in training) and load the
    checkpoint's trainable weights into it by name."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    model = _from_pretrained(AutoModelForCausalLM, cfg.model.name_or_path, cfg)
    if cfg.method != "full":
        from peft import get_peft_model

        from .loading import _peft_config, lora_targets
        model = get_peft_model(model, _peft_config(cfg, lora_targets(cfg, model)))
    saved = load_file(str(checkpoint / "trainable.safetensors"))
    params = dict(model.named_parameters())
    unknown = sorted(set(saved) - set(params))
    if unknown:
        raise ConfigError(f"{checkpoint}: the checkpoint does not match the job's config.yaml "
                          f"(unexpected {unknown[:3]}); was the config changed?")
    with torch.no_grad():
        for name, tensor in saved.items():
            params[name].copy_(tensor)
    return model


def _from_pretrained(cls, path, cfg: RunConfig):
    try:
        return cls.from_pretrained(str(path), dtype=torch.float32, trust_remote_code=cfg.model.trust_remote_code)
    except (OSError, ValueError) as err:
        raise ConfigError(f"'model.name_or_path': cannot load the model '{path}' to export ({err})") from None


def _tokenizer(path, template: str = "auto"):
    from ..templates import load_tokenizer

    return load_tokenizer(str(path), template)

