"""Did it get better? The held-out metrics of a job (base -> latest fine-tuned), the table of
sample answers by step (Monitor), and the comparison of several of the user's jobs: their loss,
eval loss and metrics on one plot and the config keys on which they differ (Jobs tab).
Everything is read from the jobs' events and config files; the caller has checked ownership."""
from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import yaml
from plotly.subplots import make_subplots

from studio.charts import Series
from studio.i18n import t

BASE, FINE_TUNED = "base", "fine-tuned"   # the `model` field of eval_metrics and samples events
LOWER_IS_BETTER = ("mae", "unparsable", "perplexity")
SAMPLE_COLUMNS = ("step", "model", "row", "prompt", "reference", "answer")


def absorb_evaluation(series: Series, events: list[dict]) -> bool:
    """Add the eval_metrics and samples events to a Monitor series; True when there were some."""
    new = False
    for ev in events:
        if ev.get("kind") == "eval_metrics":
            series.metrics.append(ev)
            new = True
        elif ev.get("kind") == "samples":
            series.samples += [{"step": ev.get("step"), "model": ev.get("model"), **s} for s in ev.get("samples", [])]
            new = True
    return new


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.4g}"


def metrics_markdown(measured: list[dict], lang: str) -> str:
    """| metric | base | fine-tuned (step N) | change | for the last fine-tuned measurement."""
    base = next((e for e in measured if e.get("model") == BASE), None)
    tuned = next((e for e in reversed(measured) if e.get("model") == FINE_TUNED), None)
    if base is None and tuned is None:
        return ""
    names = list((tuned or base)["metrics"])
    head = t(lang, "mon.eval_tuned_at", step=tuned["step"]) if tuned else t(lang, "mon.eval_tuned")
    title = t(lang, "mon.eval_title", rows=(tuned or base).get("rows", "?"))
    columns = (t(lang, "mon.eval_metric"), t(lang, "mon.eval_base"), head, t(lang, "mon.eval_change"))
    lines = [f"**{title}**", "", "| " + " | ".join(columns) + " |", "|---|---|---|---|"]
    for name in names:
        b = base["metrics"].get(name) if base else None
        f = tuned["metrics"].get(name) if tuned else None
        change = "–" if b is None or f is None else f"{f - b:+.4g}"
        better = " (" + t(lang, "mon.eval_lower") + ")" if name in LOWER_IS_BETTER else ""
        lines.append(f"| {name}{better} | {_fmt(b)} | {_fmt(f)} | {change} |")
    return "\n".join(lines)


def samples_frame(samples: list[dict]) -> pd.DataFrame:
    """One row per (step, prompt), newest step first, so the format being learned reads down the table."""
    rows = sorted(samples, key=lambda s: (-(s.get("step") or 0), s.get("row") or 0))
    return pd.DataFrame([{c: r.get(c) for c in SAMPLE_COLUMNS} for r in rows], columns=list(SAMPLE_COLUMNS))


# ---- compare ------------------------------------------------------------------------------------
def job_curves(events: list[dict]) -> dict[str, tuple[list, list]]:
    """name -> (steps, values): loss, eval loss, and every fine-tuned metric (step 0 = base)."""
    curves: dict[str, tuple[list, list]] = {}

    def add(name: str, step, value) -> None:
        if value is not None:
            xs, ys = curves.setdefault(name, ([], []))
            xs.append(step)
            ys.append(value)

    for ev in events:
        kind = ev.get("kind")
        if kind == "train":
            add("loss", ev.get("step"), ev.get("loss"))
        elif kind == "eval":
            add("eval_loss", ev.get("step"), ev.get("loss"))
        elif kind == "eval_metrics":
            for name, value in (ev.get("metrics") or {}).items():
                add(name, ev.get("step"), value)
    return curves


def _curve_title(name: str, lang: str) -> str:
    return {"loss": t(lang, "jobs.curve_loss"), "eval_loss": t(lang, "jobs.curve_eval_loss")}.get(name, name)


def compare_figure(jobs: list[tuple[str, list[dict]]], lang: str) -> go.Figure:
    """One panel per quantity (loss, eval loss, each metric), one line per job."""
    curves = [(label, job_curves(events)) for label, events in jobs]
    seen = list(dict.fromkeys(n for _, c in curves for n in c))
    names = [n for n in ("loss", "eval_loss") if n in seen] + [n for n in seen if n not in ("loss", "eval_loss")]
    fig = make_subplots(rows=max(1, -(-len(names) // 2)), cols=2 if len(names) > 1 else 1,
                        subplot_titles=[_curve_title(n, lang) for n in names])
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    for j, (label, c) in enumerate(curves):
        for k, name in enumerate(names):
            if name in c:
                fig.add_trace(go.Scatter(x=c[name][0], y=c[name][1], mode="lines+markers", name=label,
                                         legendgroup=label, showlegend=k == next(i for i, n in enumerate(names) if n in c),
                                         line=dict(color=palette[j % len(palette)])),
                              row=k // 2 + 1, col=k % 2 + 1)
    fig.update_layout(height=max(320, 260 * -(-len(names) // 2)), margin=dict(l=50, r=10, t=50, b=30),
                      title=t(lang, "jobs.compare_title"))
    return fig


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): data}


IGNORED_KEYS = ("output.dir",)   # differs for every job by construction


def config_differences(configs: list[tuple[str, str]]) -> pd.DataFrame:
    """(label, config.yaml text) of each job -> one row per dotted key whose values differ."""
    flat = [(label, _flat(yaml.safe_load(text) or {})) for label, text in configs]
    keys = list(dict.fromkeys(k for _, f in flat for k in f))
    rows = []
    for key in keys:
        values = [f.get(key) for _, f in flat]
        if key not in IGNORED_KEYS and any(v != values[0] for v in values):
            rows.append({"key": key, **{label: _show(v) for (label, _), v in zip(flat, values)}})
    return pd.DataFrame(rows, columns=["key", *(label for label, _ in flat)])


def _show(value: Any) -> str:
    return "" if value is None else yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def compared_jobs(runner, user: str, job_ids: list[str]) -> tuple[list[tuple[str, list[dict]]], list[tuple[str, str]]]:
    """(label, events) and (label, config text) of each job, through the runner, which refuses a
    job of another user exactly as an unknown one."""
    curves, configs = [], []
    for job_id in job_ids:
        info = runner.get(job_id, user)
        events, _ = runner.events(job_id, user, 0)
        label = f"{info.name} · {job_id}"
        curves.append((label, events))
        configs.append((label, info.config_path.read_text(encoding="utf-8") if info.config_path.exists() else ""))
    return curves, configs
