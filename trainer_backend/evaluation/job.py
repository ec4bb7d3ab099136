"""Evaluate a finished job on its held-out split or on any file: the base model and the trained
one answer the same prompts, and a report (JSON and Markdown) gives each metric base ->
fine-tuned with the per-row answers. A LoRA job is loaded once: the base is the same model with
its adapters disabled."""
from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..config import GENERATION_METRICS, ConfigError, RunConfig, load_config
from ..export_contract import ADAPTER_CONFIG
from .heldout import BASE, FINE_TUNED, HeldOut, Measurement
from .metrics import LOWER_IS_BETTER

ALL_METRICS = [*GENERATION_METRICS, "perplexity"]


@dataclass
class EvalReport:
    job: str
    data: str
    rows: int
    metrics: dict[str, dict[str, float | None]]        # base | fine-tuned -> metric -> value
    predictions: list[dict] = field(default_factory=list)  # row, prompt, reference, base, fine-tuned


class _Quiet:
    """The reading log of the data layer, kept out of the job's train.log."""

    def log(self, message: str) -> None:
        pass


def _conversations(cfg: RunConfig, data: str | None, data_format: str):
    from ..data import DataError, load_dataset
    from ..messages import msg
    from ..train.inputs import read_split

    if data:
        loaded = load_dataset(data, format=data_format)
        if not loaded.conversations:
            raise DataError(data, msg("file.nothing_to_evaluate", n=loaded.invalid_rows))
        return loaded.conversations, data
    held = read_split(cfg, _Quiet())[1]
    if not held:
        raise ConfigError("the run has no held-out rows (data.eval_ratio is 0 and data.eval_path is empty); "
                          "pass --data FILE")
    return held, cfg.data.eval_path or f"{cfg.data.path} (held-out {cfg.data.eval_ratio:g})"


def _on_this_device(cfg: RunConfig, device) -> RunConfig:
    """One unsharded process on the hf engine with its attention kernel here (the job may have
    trained elsewhere: on unsloth, sharded over GPUs)."""
    from ..models.engine import choose_attention

    model = cfg.model.model_copy(update={"engine": "hf", "attn_implementation": choose_attention("auto", "hf", device)})
    return cfg.model_copy(update={"model": model, "sync": cfg.sync.model_copy(update={"sharding": "none"})})


def _load(path: str, device, cfg: RunConfig):
    import torch
    from transformers import AutoModelForCausalLM

    from ..models.loading import hf_attention

    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=cfg.model.trust_remote_code,
                                                     attn_implementation=hf_attention(cfg.model.attn_implementation))
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot load the model '{path}' ({str(err).splitlines()[0]})") from None
    return model.to(device).eval()


def _measure(held: HeldOut, model, which: str, examples, cfg: RunConfig, pad_id: int, device) -> Measurement:
    from ..train.loop import evaluate
    from ..train.sync.local import LocalSync

    loss = evaluate(model, examples, cfg, LocalSync(), pad_id, device) if "perplexity" in cfg.eval.metrics else None
    return held.measure(model, which, loss)


def evaluate_job(job_dir: str | Path, data: str | None = None, data_format: str = "auto",
                 metrics: list[str] | None = None, max_rows: int | None = None, device: str = "cpu") -> EvalReport:
    from ..models.engine import resolve_device
    from ..templates import build_examples, load_tokenizer

    job_dir = Path(job_dir)
    output = job_dir / "output"
    if not (job_dir / "config.yaml").exists():
        raise ConfigError(f"{job_dir}: not a job directory (no config.yaml)")
    is_adapter = (output / ADAPTER_CONFIG).exists()
    if not is_adapter and not (output / "config.json").exists():
        raise ConfigError(f"{output}: no trained model there; evaluate a job that has completed")
    cfg = load_config(job_dir / "config.yaml")
    convs, source = _conversations(cfg, data, data_format)
    chosen = metrics or cfg.eval.metrics or ALL_METRICS
    unknown = sorted(set(chosen) - set(ALL_METRICS))
    if unknown:
        raise ConfigError(f"--metrics: unknown {unknown}; choose from {', '.join(ALL_METRICS)}")
    cfg = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={
        "metrics": list(chosen), "max_rows": max_rows or len(convs), "samples": 0, "sample_prompts": []})})
    tokenizer = load_tokenizer(str(output), cfg.template.name)
    examples, build = build_examples(convs, tokenizer, cfg.template)
    if not examples:
        raise ConfigError(f"{source}: no row is left after rendering ({build.summary()})")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    torch_device = resolve_device(device)
    cfg = _on_this_device(cfg, torch_device)
    held = HeldOut(cfg, tokenizer, examples, pad_id, engine="hf")
    if is_adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(_load(cfg.model.name_or_path, torch_device, cfg), str(output)).eval()
        tuned = _measure(held, model, FINE_TUNED, examples, cfg, pad_id, torch_device)
        with model.disable_adapter():
            base = _measure(held, model, BASE, examples, cfg, pad_id, torch_device)
    else:
        tuned = _measure(held, _load(str(output), torch_device, cfg), FINE_TUNED, examples, cfg, pad_id, torch_device)
        base = _measure(held, _load(cfg.model.name_or_path, torch_device, cfg), BASE, examples, cfg, pad_id, torch_device)
    predictions = [{"row": b.row, "prompt": b.prompt, "reference": b.reference, BASE: b.answer, FINE_TUNED: t.answer}
                   for b, t in zip(base.answers, tuned.answers)]
    return EvalReport(str(job_dir), source, len(examples), {BASE: base.metrics, FINE_TUNED: tuned.metrics}, predictions)


# ---- the report ----------------------------------------------------------------------------------
def _value(v: float | None) -> str:
    return "–" if v is None else f"{v:.4g}"


def _cell(text) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def metrics_table(metrics: dict[str, dict[str, float | None]]) -> str:
    """| metric | base | fine-tuned | change | with the better direction of each metric."""
    lines = ["| metric | base | fine-tuned | change |", "|---|---|---|---|"]
    for name in metrics.get(FINE_TUNED, {}):
        b, t = metrics.get(BASE, {}).get(name), metrics[FINE_TUNED][name]
        change = "–" if b is None or t is None else f"{t - b:+.4g}"
        arrow = " (lower is better)" if name in LOWER_IS_BETTER else ""
        lines.append(f"| {name}{arrow} | {_value(b)} | {_value(t)} | {change} |")
    return "\n".join(lines)


def to_markdown(report: EvalReport) -> str:
    rows = ["| row | prompt | reference | base | fine-tuned |", "|---|---|---|---|---|"]
    rows += [f"| {p['row']} | {_cell(p['prompt'])} | {_cell(p['reference'])} | {_cell(p[BASE])} | {_cell(p[FINE_TUNED])} |"
             for p in report.predictions]
    return (f"# Evaluation of {report.job}\n\nData: {report.data}, {report.rows} rows.\n\n"
            f"{metrics_table(report.metrics)}\n\n## Answers\n\n" + "\n".join(rows) + "\n")


def write_report(report: EvalReport, out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "report.json", out / "report.md"
    json_path.write_text(json.dumps(asdict(report), ensure_ascii=False, indent=1), encoding="utf-8")
    md_path.write_text(to_markdown(report), encoding="utf-8")
    return json_path, md_path
