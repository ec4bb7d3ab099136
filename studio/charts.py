"""Monitor charts: events.jsonl rows accumulated per job, drawn as plotly figures."""
from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from studio.i18n import t
from trainer_backend.contracts import PREFERENCE_METRICS, Status


def new_series(job_id: str) -> dict[str, Any]:
    return {"job": job_id, "next": 0, "step": [], "loss": [], "lr": [], "tps": [], "mem": [], "attempt": [],
            "eval_step": [], "eval_loss": [], "total": None, "eta_s": None, "status": None, "error": None,
            "stage": None, "retries": [], "pref_step": [], "pref": {name: [] for name in PREFERENCE_METRICS}}


def _attempt_of(series: dict[str, Any], step: int | None) -> int:
    """A resumed job starts again at an earlier step: that begins a new attempt, drawn apart."""
    if not series["attempt"]:
        return 1
    last_step, last = series["step"][-1], series["attempt"][-1]
    return last + 1 if step is not None and last_step is not None and step <= last_step else last


def absorb(series: dict[str, Any], events: list[dict]) -> None:
    """Append the new events of a job to its series (in place: the series is this session's own)."""
    for ev in events:
        kind = ev.get("kind")
        if kind == "train":
            series["attempt"].append(_attempt_of(series, ev.get("step")))
            series["step"].append(ev.get("step"))
            series["loss"].append(ev.get("loss"))
            series["lr"].append(ev.get("lr"))
            series["tps"].append(ev.get("tokens_per_s"))
            mem = ev.get("gpu_mem_gib") or []          # empty on a CPU job
            series["mem"].append(max(mem) if mem else None)
            series["eta_s"] = ev.get("eta_s")
            if any(name in ev for name in PREFERENCE_METRICS):
                series["pref_step"].append(ev.get("step"))
                for name in PREFERENCE_METRICS:
                    series["pref"][name].append(ev.get(name))
        elif kind == "eval":
            series["eval_step"].append(ev.get("step"))
            series["eval_loss"].append(ev.get("loss"))
        elif kind == "status":
            series["status"] = ev.get("status")
            series["total"] = ev.get("total_steps") or series["total"]
            # A starting job says which stage it is in; a retry after out of memory starts over.
            series["stage"] = (ev.get("stage"), ev.get("message")) if ev.get("status") == Status.PREPARING else None
            if ev.get("status") == Status.RETRY:
                series["retries"].append(ev.get("change") or ev.get("message"))
                series["error"] = None  # the attempt that failed is being retried
        elif kind == "error":
            series["error"] = f"{ev.get('reason')}: {ev.get('message')}"


def attempts(s: dict[str, Any], key: str) -> list[tuple[int, list, list]]:
    """(attempt, steps, values) of one series, split where the job was resumed."""
    out: list[tuple[int, list, list]] = []
    for attempt, step, value in zip(s["attempt"], s["step"], s[key]):
        if not out or out[-1][0] != attempt:
            out.append((attempt, [], []))
        out[-1][1].append(step)
        out[-1][2].append(value)
    return out or [(1, [], [])]


def loss_figure(s: dict[str, Any], lang: str) -> go.Figure:
    fig = go.Figure()
    parts = attempts(s, "loss")
    for attempt, steps, losses in parts:
        name = t(lang, "mon.train_loss") if len(parts) == 1 else t(lang, "mon.attempt", n=attempt)
        fig.add_trace(go.Scatter(x=steps, y=losses, mode="lines+markers", name=name))
    if s["eval_step"]:
        fig.add_trace(go.Scatter(x=s["eval_step"], y=s["eval_loss"], mode="lines+markers",
                                 name=t(lang, "mon.eval_loss")))
    fig.update_layout(height=320, margin=dict(l=50, r=10, t=40, b=40), title=t(lang, "mon.loss"),
                      xaxis_title=t(lang, "mon.step"), uirevision=s["job"])
    return fig


def system_figure(s: dict[str, Any], lang: str) -> go.Figure:
    titles = (t(lang, "mon.lr"), t(lang, "mon.tps"), t(lang, "mon.gpu_mem"))
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles)
    on_gpu = any(m is not None for m in s["mem"])
    for col, key in enumerate(("lr", "tps", "mem") if on_gpu or not s["step"] else ("lr", "tps"), start=1):
        for _attempt, steps, values in attempts(s, key):
            fig.add_trace(go.Scatter(x=steps, y=values, mode="lines", name=titles[col - 1], showlegend=False),
                          row=1, col=col)
    if s["step"] and not on_gpu:
        # A CPU job has no GPU memory to draw: say so instead of a flat zero line.
        fig.update_xaxes(visible=False, row=1, col=3)
        fig.update_yaxes(visible=False, row=1, col=3)
        x0, x1 = fig.layout.xaxis3.domain
        y0, y1 = fig.layout.yaxis3.domain
        fig.add_annotation(text=t(lang, "mon.no_gpu"), showarrow=False, xref="paper", yref="paper",
                           x=(x0 + x1) / 2, y=(y0 + y1) / 2, font=dict(size=13, color="#666"))
    fig.update_layout(height=240, margin=dict(l=50, r=10, t=40, b=30), uirevision=s["job"])
    return fig


# Panels of the preference chart: (title key, metrics drawn in it).
PREFERENCE_PANELS = (("mon.rewards", ("rewards_chosen", "rewards_rejected", "reward_margin")),
                     ("mon.reward_accuracy", ("reward_accuracy",)),
                     ("mon.objective_parts", ("nll_loss", "log_odds_ratio", "kl")))


def has_preference(s: dict[str, Any]) -> bool:
    return bool(s["pref_step"])


def preference_figure(s: dict[str, Any], lang: str) -> go.Figure:
    """Rewards of chosen and rejected completions and their margin, the fraction of pairs ranked
    right, and the objective's own parts (ORPO's NLL and odds-ratio term, KTO's KL)."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=[t(lang, title) for title, _ in PREFERENCE_PANELS])
    for col, (_, names) in enumerate(PREFERENCE_PANELS, start=1):
        for name in names:
            values = s["pref"][name]
            if any(v is not None for v in values):
                fig.add_trace(go.Scatter(x=s["pref_step"], y=values, mode="lines", name=t(lang, f"mon.{name}")),
                              row=1, col=col)
    fig.update_layout(height=260, margin=dict(l=50, r=10, t=40, b=30), uirevision=s["job"])
    return fig


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s"
