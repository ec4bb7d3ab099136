"""A job's result: `output/` (PEFT adapter or full weights, plus the tokenizer with its chat
template), and export of it, optionally merged into the base model as plain safetensors that
`AutoModelForCausalLM.from_pretrained` loads without peft."""
from __future__ import annotations

import shutil
from pathlib import Path

from ..config import ConfigError, load_config
from .loading import LoadedModel

ADAPTER_CONFIG = "adapter_config.json"


def save_output(loaded: LoadedModel, tokenizer, cfg, job_dir: str | Path,
                state_dict: dict | None = None) -> Path:
    """Write `output/` at the end of a run (and `merged/` when output.merge is set). A sharded run
    passes its weights gathered into one `state_dict` (the model itself holds only shards)."""
    out = Path(job_dir) / "output"
    out.mkdir(parents=True, exist_ok=True)
    loaded.model.save_pretrained(out, safe_serialization=True, state_dict=state_dict)
    tokenizer.save_pretrained(out)
    if cfg.output.merge and cfg.method != "full":
        export_job(job_dir, merge=True)
    return out


def export_job(job_dir: str | Path, merge: bool, out_dir: str | Path | None = None) -> Path:
    """Copy a finished job's adapter (or full weights) with its tokenizer to `out_dir`, or with
    `merge` fold the adapter into the base model. Default `out_dir`: `<job>/merged` or `<job>/adapter`."""
    job_dir = Path(job_dir)
    output = job_dir / "output"
    if not (output / "config.json").exists() and not (output / ADAPTER_CONFIG).exists():
        raise ConfigError(f"{output}: no trained model there; export a job that has completed")
    out = Path(out_dir) if out_dir else job_dir / ("merged" if merge else "adapter")
    if out.resolve() == output.resolve():
        raise ConfigError(f"--out: {out} is the job's own output folder; choose another folder")
    is_adapter = (output / ADAPTER_CONFIG).exists()
    if not (merge and is_adapter):
        shutil.copytree(output, out, dirs_exist_ok=True)
        return out
    cfg = load_config(job_dir / "config.yaml")
    merged = merge_adapter(cfg.model.name_or_path, output, cfg.model.trust_remote_code)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out, safe_serialization=True)
    _copy_tokenizer(output, out)
    return out


def merge_adapter(base_path: str, adapter_dir: Path, trust_remote_code: bool = False):
    """The base model (in its own dtype, not quantized: a QLoRA adapter folds into the full
    weights) with the adapter merged in."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    try:
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype="auto", trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise ConfigError(f"'model.name_or_path': cannot load the base model '{base_path}' to merge into ({err})") from None
    return PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()


def _copy_tokenizer(src: Path, dst: Path) -> None:
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(str(src)).save_pretrained(str(dst))
