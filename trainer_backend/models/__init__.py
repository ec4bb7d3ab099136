"""Models: engine choice (unsloth on CUDA, transformers+peft elsewhere), loading with LoRA/QLoRA/
full fine-tuning, and export/merge. Nothing here imports unsloth at module import time."""
from .engine import choose_engine, choose_precision, resolve_engine
from .export import export_job, save_output
from .loading import LoadedModel, linear_module_names, load_for_training

__all__ = ["LoadedModel", "choose_engine", "choose_precision", "export_job", "linear_module_names",
           "load_for_training", "resolve_engine", "save_output"]
