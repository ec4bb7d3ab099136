"""Chat tab: the base model and a finished job's adapter answer the same prompt side by side,
each through its own worker process (trainer_backend.serve) and the job's chat template."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from studio.context import JOB_ERRORS, StudioContext, user_of
from studio.i18n import t
from studio.space import PathKind, PathRefused, refusal_text, user_space
from trainer_backend.config import ConfigError, RunConfig, load_config
from studio.common import finished_jobs
from trainer_backend.serve.client import WorkerError, WorkerSpec

BASE, TUNED = "base", "tuned"


@dataclass
class ChatTab:
    job: gr.Dropdown
    refresh: object     # fn(current, request) -> dropdown update


def specs_for(ctx: StudioContext, user: str, job_id: str | None, base_model: str) -> dict[str, WorkerSpec]:
    """The base worker, and the fine-tuned one when a job is picked (its base model wins; the
    job's paths were confined when it was launched)."""
    if not job_id:
        return {BASE: WorkerSpec(user_space(ctx, user).confine("chat.base_model", base_model, PathKind.MODEL))}
    info = ctx.runner.get(job_id, user)
    cfg: RunConfig = load_config(info.config_path)
    output = Path(info.job_dir) / "output"
    adapter = str(output) if (output / "adapter_config.json").exists() else None
    tuned_model = cfg.model.name_or_path if adapter else str(output)
    return {BASE: WorkerSpec(cfg.model.name_or_path, template=cfg.template),
            TUNED: WorkerSpec(tuned_model, adapter=adapter, template=cfg.template)}


def build(ctx: StudioContext, lang: gr.Dropdown) -> ChatTab:
    L = ctx.labels
    with gr.Row():
        base_model = L.add(gr.Textbox(value=RunConfig().model.name_or_path, scale=3, elem_id="chat-base"),
                           label="chat.base_model", info="chat.base_info")
        job = L.add(gr.Dropdown([], value=None, allow_custom_value=True, scale=3, elem_id="chat-job"), label="chat.job", info="chat.job_info")
        refresh_btn = L.add(gr.Button(size="sm", scale=1), value="chat.refresh")
        max_new = L.add(gr.Slider(8, 512, value=96, step=8, scale=2), label="chat.max_new")
    with gr.Row():
        left = L.add(gr.Chatbot(elem_id="chat-left", height=380), label="chat.base")
        right = L.add(gr.Chatbot(elem_id="chat-right", height=380), label="chat.tuned")
    with gr.Row():
        prompt = L.add(gr.Textbox(scale=5, elem_id="chat-prompt"), label="chat.prompt", placeholder="chat.prompt_ph")
        send = L.add(gr.Button(variant="primary", scale=1, elem_id="chat-send"), value="chat.send")
        clear = L.add(gr.Button(scale=1), value="chat.clear")
    status = gr.Markdown(elem_id="chat-status")

    def ask(spec: WorkerSpec, user: str, slot: str, history: list[dict], n: int) -> str:
        worker = ctx.chats.worker(user, slot, spec)
        return worker.chat([{"role": m["role"], "content": _text(m["content"])} for m in history], int(n))

    def on_send(text: str, hist_l: list, hist_r: list, job_id: str | None, base: str, n: float, lang_v: str,
                request: gr.Request):
        if not (text or "").strip():
            yield gr.skip(), gr.skip(), gr.skip(), t(lang_v, "chat.empty")
            return
        user = user_of(request)
        space = user_space(ctx, user)
        try:
            specs = specs_for(ctx, user, job_id, base)
        except PathRefused as err:
            yield gr.skip(), gr.skip(), gr.skip(), refusal_text(err, lang_v)
            return
        except (*JOB_ERRORS, ConfigError) as err:
            yield gr.skip(), gr.skip(), gr.skip(), t(lang_v, "chat.failed", error=space.shown(str(err)))
            return
        turn = {"role": "user", "content": text}
        histories = {BASE: [*(hist_l or []), turn], TUNED: [*(hist_r or []), turn]}
        # The question shows at once on each side that answers; the first answer loads the models.
        yield "", histories[BASE], histories[TUNED] if TUNED in specs else gr.skip(), t(lang_v, "chat.thinking")
        with ThreadPoolExecutor(max_workers=2) as pool:   # both workers answer at the same time
            futures = {slot: pool.submit(ask, spec, user, slot, histories[slot], n) for slot, spec in specs.items()}
        errors = []
        for slot, fut in futures.items():
            try:
                histories[slot].append({"role": "assistant", "content": fut.result()})
            except (WorkerError, *JOB_ERRORS) as err:
                errors.append(t(lang_v, "chat.failed", error=space.shown(str(err))))
                histories[slot].pop()
        right_out = histories[TUNED] if TUNED in specs else hist_r
        yield "", histories[BASE], right_out, "\n\n".join(errors)

    def refresh(current: str | None, request: gr.Request):
        choices = finished_jobs(ctx.runner.list(user_of(request)))
        ids = {c[1] for c in choices}
        return gr.update(choices=choices, value=current if current in ids else (choices[0][1] if choices else None))

    inputs = [prompt, left, right, job, base_model, max_new, lang]
    gr.on([send.click, prompt.submit], on_send, inputs, [prompt, left, right, status], api_name="chat",
          show_progress="minimal")
    clear.click(lambda: ([], [], ""), None, [left, right, status])
    job.change(lambda: ([], []), None, [left, right])
    refresh_btn.click(refresh, job, job)
    return ChatTab(job, refresh)


def _text(content) -> str:
    """Chatbot history content is a string or, in Gradio 6, a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)
