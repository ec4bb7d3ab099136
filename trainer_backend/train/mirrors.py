"""Optional copies of the train and eval scalars for the usual run viewers: TensorBoard event files
in `<job>/tensorboard`, and a Weights & Biases run whose files live in `<job>/wandb` (online, or
offline with WANDB_MODE=offline and synced later with `wandb sync`). events.jsonl stays the
record the studio reads; a mirror only repeats it."""
from __future__ import annotations

from pathlib import Path

from ..config import ConfigError, RunConfig


class TensorBoardMirror:
    def __init__(self, job_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("'train.tensorboard': the tensorboard package is not installed; "
                              "pip install tensorboard, or set train.tensorboard: false") from None
        self.writer = SummaryWriter(str(job_dir / "tensorboard"))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbMirror:
    def __init__(self, job_dir: Path, cfg: RunConfig):
        try:
            import wandb
        except ImportError:
            raise ConfigError("'train.wandb': the wandb package is not installed; pip install wandb, "
                              "or set train.wandb: false") from None
        self.run = wandb.init(project=cfg.train.wandb_project, name=job_dir.name, dir=str(job_dir),
                              config=cfg.model_dump(mode="json"))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


def open_mirrors(cfg: RunConfig, job_dir: Path) -> list:
    mirrors = []
    if cfg.train.tensorboard:
        mirrors.append(TensorBoardMirror(job_dir))
    if cfg.train.wandb:
        mirrors.append(WandbMirror(job_dir, cfg))
    return mirrors
