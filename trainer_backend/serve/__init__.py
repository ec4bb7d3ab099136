"""Out-of-process services for the studio: anything that needs torch or a model runs here, in a
process of its own, so that a crash or an OOM never takes the UI down.

- `preview`: render + mask a dataset with a model's chat template (short-lived, prints JSON).
- `worker`: a chat inference server holding one model (base, or base + a job's adapter).
- `client`: the torch-free side the studio uses to start, query and stop workers.
"""
