"""Where the first optimizer step's extra seconds go: steps 1 to 3 of a real run, each timed in its
two halves (forward and backward; clipping and the optimizer) and profiled.

    source .gpu-bundle/install.sh && python bench/first_step_profile.py --cache <offline cache>

The run is `train qwen2.5-7b-instruct` with only the model and the data set, in this process, on
the chitchat set of bench/realdata_bench.py (and with `--fixed`, its 2048-token rows). Each profiled
step reports its wall time, the GPU's kernel time, the CUDA runtime calls that cost the most CPU
time (cudaMalloc shows here), and the Python functions with the most cumulative time (a compile or
an autotune shows here). A first step whose kernel time equals the later ones' but whose wall time
does not is paying a one-time host cost, and the tables say which.
"""
from __future__ import annotations

import argparse
import cProfile
import datetime
import io
import pstats
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from random_models import write_alpaca_letters  # noqa: E402
from realdata_bench import (FIXED_ROWS, SEQ, model_dirs, qwen_tokenizer, run_sets, startup_laps,  # noqa: E402
                            write_sets)

PROFILED_STEPS = 3


class StepProfiler:
    """Wraps loop.train_step and loop.clip_and_step: profiling starts as a step's forward begins and
    stops when its optimizer step ends."""

    def __init__(self) -> None:
        self.step = 0
        self.reports: list[str] = []

    def install(self, loop) -> None:
        train_step, clip_and_step = loop.train_step, loop.clip_and_step

        def profiled_train_step(*args, **kwargs):
            self.step += 1
            if self.step > PROFILED_STEPS:
                return train_step(*args, **kwargs)
            self._start()
            out = train_step(*args, **kwargs)
            self._torch_sync()
            self.backward_done = time.perf_counter()
            if out is None:  # the ranks voted to stop: no optimizer step follows
                self._stop()
            return out

        def profiled_clip_and_step(*args, **kwargs):
            out = clip_and_step(*args, **kwargs)
            if self.step <= PROFILED_STEPS:
                self._stop()
            return out

        loop.train_step, loop.clip_and_step = profiled_train_step, profiled_clip_and_step

    def _torch_sync(self) -> None:
        import torch

        torch.cuda.synchronize()

    def _start(self) -> None:
        from torch.profiler import ProfilerActivity, profile

        self._torch_sync()
        self.python = cProfile.Profile()
        self.torch = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
        self.torch.__enter__()
        self.memory_before = self._memory()
        self.python.enable()
        self.began = time.perf_counter()

    def _stop(self) -> None:
        self._torch_sync()
        ended = time.perf_counter()
        self.python.disable()
        self.torch.__exit__(None, None, None)
        self.reports.append(self._report(ended))

    @staticmethod
    def _memory() -> tuple[float, int, int]:
        """Reserved GiB, cudaMalloc calls and allocator retries so far: a first step that grows the
        caching allocator to the run's full shape shows here."""
        import torch

        stats = torch.cuda.memory_stats()
        return (stats.get("reserved_bytes.all.current", 0) / 2**30, stats.get("num_device_alloc", 0),
                stats.get("num_alloc_retries", 0))

    def _report(self, ended: float) -> str:
        (reserved0, mallocs0, retries0), (reserved1, mallocs1, retries1) = self.memory_before, self._memory()
        events = self.torch.key_averages()
        kernels = sum(e.self_device_time_total for e in events if e.device_type.name == "CUDA") / 1e6
        runtime = sorted((e for e in events if e.key.startswith("cu")),
                         key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
        ops = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:10]
        lines = [f"## step {self.step}", "",
                 f"- wall {ended - self.began:.2f} s: forward and backward {self.backward_done - self.began:.2f} s, "
                 f"clipping and optimizer {ended - self.backward_done:.2f} s",
                 f"- GPU kernel time {kernels:.2f} s",
                 f"- reserved {reserved0:.1f} -> {reserved1:.1f} GiB; {mallocs1 - mallocs0} cudaMalloc calls, "
                 f"{retries1 - retries0} allocator retries", "", "| CPU-heaviest events | calls | self CPU s |",
                 "|---|---|---|"]
        lines += [f"| `{e.key[:70]}` | {e.count} | {e.self_cpu_time_total / 1e6:.3f} |" for e in ops]
        lines += ["", "| CUDA runtime calls | calls | self CPU s |", "|---|---|---|"]
        lines += [f"| `{e.key[:70]}` | {e.count} | {e.self_cpu_time_total / 1e6:.3f} |" for e in runtime]
        text = io.StringIO()
        pstats.Stats(self.python, stream=text).sort_stats("cumulative").print_stats(25)
        lines += ["", "Python, by cumulative time (profiled together with the torch profiler):", "", "```",
                  *[short_paths(line) for line in text.getvalue().splitlines() if line.strip()][-27:], "```", ""]
        return "\n".join(lines)


def short_paths(line: str) -> str:
    """A profile line with its file named from the package down, not from this machine's root:
    the project's folder and every import folder (site-packages, or wherever packages were put)."""
    imports = (p for p in sys.path if p.startswith("/") and not p.startswith(str(ROOT)))
    for folder in sorted({str(ROOT), *imports}, key=len, reverse=True):
        line = line.replace(folder.rstrip("/") + "/", "")
    return re.sub(r"\S*/site-packages/", "", line)


def profiled_run(model: Path, data: Path, out: Path) -> list[str]:
    """`train` in this process, steps 1-3 profiled; max_steps keeps it to the steps that count."""
    import shutil

    from trainer_backend.config import load_config
    from trainer_backend.models.engine import preload_engine
    from trainer_backend.planner import resolve_sharding

    shutil.rmtree(out, ignore_errors=True)
    cfg = resolve_sharding(load_config("qwen2.5-7b-instruct", run_sets(
        model, data, {"output.dir": str(out), "train.max_steps": PROFILED_STEPS + 1})))
    preload_engine(cfg)
    from trainer_backend.commands.train import run_single
    from trainer_backend.train import loop

    profiler = StepProfiler()
    profiler.install(loop)
    code = run_single(cfg, resume=False)
    return [f"- exit code {code}; startup: " + "; ".join(startup_laps(out)), ""] + profiler.reports


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=str(ROOT / ".cache"))
    ap.add_argument("--work", default="/tmp/realdata-bench")
    ap.add_argument("--out", default="bench/results/first_step_profile.md")
    ap.add_argument("--fixed", action="store_true", help="profile the 2048-token rows instead of chitchat")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    tok = qwen_tokenizer(Path(args.cache))
    bytes_model, qwen_model = model_dirs(work, tok)
    if args.fixed:
        model, data = bytes_model, work / "fixed.jsonl"
        write_alpaca_letters(data, rows=FIXED_ROWS, seq=SEQ)
    else:
        model, data = qwen_model, write_sets(Path(args.cache), work, tok)["chitchat"]
    import torch

    lines = [f"# First steps, profiled: {'fixed 2048' if args.fixed else 'chitchat'}", "",
             f"- date: {datetime.date.today()}", f"- device: {torch.cuda.get_device_name(0)}",
             f"- command: `python bench/first_step_profile.py {' '.join(sys.argv[1:])}`", ""]
    lines += profiled_run(model, data, work / "profiled")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(Path(args.out).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
