"""Monitor charts: events.jsonl rows accumulated per job, drawn as plotly figures."""
from __future__ import annotations

from dataclasses import dataclass, field

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from studio.i18n import t
from trainer_backend.contracts import PREFERENCE_METRICS, Status
from trainer_backend.messages import Notice, msg


@dataclass
class Series:
    """What the Monitor has read of one job's events so far, accumulated in place (a session's own
    gr.State): one list per drawn quantity, aligned on `step` (train events) or `eval_step`."""
    job: str
    next: int = 0                        # the events line to read from on the next tick
    step: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    tps: list = field(default_factory=list)
    mem: list = field(default_factory=list)            # the largest GPU's GiB, None on a CPU job
    attempt: list = field(default_factory=list)        # 1, then 2 from the first step of a resume
    eval_step: list = field(default_factory=list)
    eval_loss: list = field(default_factory=list)
    total: int | None = None
    eta_s: float | None = None
    status: str | None = None
    error: Notice | None = None          # why the job failed, in the words of its error event
    stage: tuple[str | None, Notice] | None = None   # (stage, what it does) while preparing
    retries: list[Notice] = field(default_factory=list)  # the change of each out-of-memory retry
    pref_step: list = field(default_factory=list)
    pref: dict[str, list] = field(default_factory=lambda: {name: [] for name in PREFERENCE_METRICS})
    metrics: list[dict] = field(default_factory=list)   # eval_metrics events (evaluation_view)
    samples: list[dict] = field(default_factory=list)   # sample answers by step (evaluation_view)
    lang: str | None = None              # the language the charts were drawn in
    shown: list | None = None            # the texts on screen, to skip a tick that changes nothing


def new_series(job_id: str) -> Series:
    return Series(job_id)


def _attempt_of(series: Series, step: int | None) -> int:
    """A resumed job starts again at an earlier step: that begins a new attempt, drawn apart."""
    if not series.attempt:
        return 1
    last_step, last = series.step[-1], series.attempt[-1]
    return last + 1 if step is not None and last_step is not None and step <= last_step else last


def event_notice(event: dict, key: str = "notice", text: str | None = None) -> Notice:
    """What an event says: its notice, or (a job of an older studio) its English text."""
    return Notice.from_json(event.get(key)) or msg("detail", detail=str(text if text is not None else event.get("message")))


def absorb(series: Series, events: list[dict]) -> None:
    """Append the new events of a job to its series (in place: the series is this session's own)."""
    for ev in events:
        kind = ev.get("kind")
        if kind == "train":
            series.attempt.append(_attempt_of(series, ev.get("step")))
            series.step.append(ev.get("step"))
            series.loss.append(ev.get("loss"))
            series.lr.append(ev.get("lr"))
            series.tps.append(ev.get("tokens_per_s"))
            mem = ev.get("gpu_mem_gib") or []          # empty on a CPU job
            series.mem.append(max(mem) if mem else None)
            series.eta_s = ev.get("eta_s")
            if any(name in ev for name in PREFERENCE_METRICS):
                series.pref_step.append(ev.get("step"))
                for name in PREFERENCE_METRICS:
                    series.pref[name].append(ev.get(name))
        elif kind == "eval":
            series.eval_step.append(ev.get("step"))
            series.eval_loss.append(ev.get("loss"))
        elif kind == "status":
            series.status = ev.get("status")
            series.total = ev.get("total_steps") or series.total
            # A starting job says which stage it is in; a retry after out of memory starts over.
            series.stage = (ev.get("stage"), event_notice(ev)) if ev.get("status") == Status.PREPARING else None
            if ev.get("status") == Status.RETRY:
                series.retries.append(event_notice(ev, "change_notice", ev.get("change") or ev.get("message")))
                series.error = None  # the attempt that failed is being retried
        elif kind == "error":
            series.error = event_notice(ev, text=f"{ev.get('reason')}: {ev.get('message')}")


def attempts(s: Series, key: str) -> list[tuple[int, list, list]]:
    """(attempt, steps, values) of one series, split where the job was resumed."""
    out: list[tuple[int, list, list]] = []
    for attempt, step, value in zip(s.attempt, s.step, getattr(s, key)):
        if not out or out[-1][0] != attempt:
            out.append((attempt, [], []))
        out[-1][1].append(step)
        out[-1][2].append(value)
    return out or [(1, [], [])]


def loss_figure(s: Series, lang: str) -> go.Figure:
    fig = go.Figure()
    parts = attempts(s, "loss")
    for attempt, steps, losses in parts:
        name = t(lang, "mon.train_loss") if len(parts) == 1 else t(lang, "mon.attempt", n=attempt)
        fig.add_trace(go.Scatter(x=steps, y=losses, mode="lines+markers", name=name))
    if s.eval_step:
        fig.add_trace(go.Scatter(x=s.eval_step, y=s.eval_loss, mode="lines+markers",
                                 name=t(lang, "mon.eval_loss")))
    fig.update_layout(height=320, margin=dict(l=50, r=10, t=40, b=40), title=t(lang, "mon.loss"),
                      xaxis_title=t(lang, "mon.step"), uirevision=s.job)
    return fig


def system_figure(s: Series, lang: str) -> go.Figure:
    titles = (t(lang, "mon.lr"), t(lang, "mon.tps"), t(lang, "mon.gpu_mem"))
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles)
    on_gpu = any(m is not None for m in s.mem)
    for col, key in enumerate(("lr", "tps", "mem") if on_gpu or not s.step else ("lr", "tps"), start=1):
        for _attempt, steps, values in attempts(s, key):
            fig.add_trace(go.Scatter(x=steps, y=values, mode="lines", name=titles[col - 1], showlegend=False),
                          row=1, col=col)
    if s.step and not on_gpu:
        # A CPU job has no GPU memory to draw: say so instead of a flat zero line.
        fig.update_xaxes(visible=False, row=1, col=3)
        fig.update_yaxes(visible=False, row=1, col=3)
        x0, x1 = fig.layout.xaxis3.domain
        y0, y1 = fig.layout.yaxis3.domain
        fig.add_annotation(text=t(lang, "mon.no_gpu"), showarrow=False, xref="paper", yref="paper",
                           x=(x0 + x1) / 2, y=(y0 + y1) / 2, font=dict(size=13, color="#666"))
    fig.update_layout(height=240, margin=dict(l=50, r=10, t=40, b=30), uirevision=s.job)
    return fig


# Panels of the preference chart: (title key, metrics drawn in it).
PREFERENCE_PANELS = (("mon.rewards", ("rewards_chosen", "rewards_rejected", "reward_margin")),
                     ("mon.reward_accuracy", ("reward_accuracy",)),
                     ("mon.objective_parts", ("nll_loss", "log_odds_ratio", "kl")))


def has_preference(s: Series) -> bool:
    return bool(s.pref_step)


def preference_figure(s: Series, lang: str) -> go.Figure:
    """Rewards of chosen and rejected completions and their margin, the fraction of pairs ranked
    right, and the objective's own parts (ORPO's NLL and odds-ratio term, KTO's KL)."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=[t(lang, title) for title, _ in PREFERENCE_PANELS])
    for col, (_, names) in enumerate(PREFERENCE_PANELS, start=1):
        for name in names:
            values = s.pref[name]
            if any(v is not None for v in values):
                fig.add_trace(go.Scatter(x=s.pref_step, y=values, mode="lines", name=t(lang, f"mon.{name}")),
                              row=1, col=col)
    fig.update_layout(height=260, margin=dict(l=50, r=10, t=40, b=30), uirevision=s.job)
    return fig


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s"
