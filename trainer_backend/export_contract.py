"""What an export request and its result are, shared by the CLI, the exporter and the studio
(torch-free: the studio imports it): the choices of storage dtype and GGUF type, and the merge
check that the exporter writes beside the weights (`merge_check.json`) and the studio reads back.

A merged model is saved in a storage dtype (the base's, usually bf16). Rounding base + update to
bf16 drops every update smaller than half a bf16 step of its weight, so a merged bf16 model can
answer differently from the base + adapter that was trained. The check measures that on a few
prompts: the largest logit difference and whether the greedy answers agree.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .contracts import JobPaths

MERGE_CHECK_FILE = "merge_check.json"
# auto = the base model's own dtype; fp32 keeps every update of the adapter
MERGE_DTYPES = ("auto", "fp32", "bf16", "fp16")
# f16 and bf16 store every matrix as is; q8_0 is llama.cpp's 8-bit type (blocks of 32, one scale)
GGUF_TYPES = ("f16", "bf16", "q8_0")

# A logit shift of 0.5 scales a token's probability by up to e^0.5 = 1.65: past that (or with any
# greedy answer changed) the rounded model is no longer the one that was trained.
MATERIAL_LOGIT_DIFF = 0.5


@dataclass(frozen=True)
class MergeCheck:
    dtype: str                 # storage dtype of the merged weights: bf16, fp16, fp32
    max_logit_diff: float      # max |merged - (base + adapter in fp32)| over the prompts' logits
    greedy_agree: int          # prompts whose greedy answer is the same token for token
    prompts: int
    source: str                # "output" or the checkpoint it came from, e.g. "step_12"

    @property
    def material(self) -> bool:
        return self.greedy_agree < self.prompts or self.max_logit_diff > MATERIAL_LOGIT_DIFF

    def summary(self) -> str:
        line = (f"merge check ({self.dtype}, from {self.source}): max logit difference vs base + adapter "
                f"{self.max_logit_diff:.4g}, greedy answers agree on {self.greedy_agree}/{self.prompts} prompts")
        if self.material and self.dtype != "fp32":
            line += (f"; rounding to {self.dtype} changed the model: export with --dtype fp32 "
                     "to keep the trained model exactly")
        return line

    def save(self, folder: Path) -> None:
        (Path(folder) / MERGE_CHECK_FILE).write_text(json.dumps(asdict(self)), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> "MergeCheck | None":
        path = Path(folder) / MERGE_CHECK_FILE
        return cls(**json.loads(path.read_text(encoding="utf-8"))) if path.exists() else None

ADAPTER_CONFIG = "adapter_config.json"   # present in output/ when the job trained an adapter


def has_output(job_dir: Path) -> bool:
    output = JobPaths(Path(job_dir)).output
    return (output / "config.json").exists() or (output / ADAPTER_CONFIG).exists()


def exportable(job_dir: Path) -> bool:
    """Whether a job has something to export: its `output/`, or a finished checkpoint (a stopped
    or failed job is exported from its newest one)."""
    return has_output(job_dir) or JobPaths(Path(job_dir)).latest_checkpoint() is not None
