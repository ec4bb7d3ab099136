"""Notices: the messages a user reads, as a key and its arguments. The backend prints them in
English (the CLI, the logs); the studio shows the same key in the user's language (studio/i18n.py
holds a text for every key of ENGLISH below, and a test fails when one is missing).

A row error, a detection reason and a job's failure reason are all Notices; an event that reports
a failure carries the key and arguments next to its English text (`to_json`), so a reader of the
job's files can show it in another language. Arguments are names, numbers and paths that read the
same in every language, or other Notices (rendered in the same language). A library's own text
travels as the argument of the `detail` key, unchanged.

Like contracts.py, this module imports nothing of the project and no torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

Arg = Any   # str | int | float | Notice


@dataclass(frozen=True)
class Notice:
    """One message as a key of ENGLISH and its arguments, e.g.

        >>> n = msg("row.not_string", type="number")
        >>> str(n)
        'must be a string, got number'
        >>> n.to_json()
        {'key': 'row.not_string', 'args': {'type': 'number'}}
        >>> Notice.from_json(n.to_json()) == n
        True

    Frozen and made of tuples, so it can sit in a gradio State and compare by value."""
    key: str
    args: tuple[tuple[str, Arg], ...] = ()

    @property
    def params(self) -> dict[str, Arg]:
        return dict(self.args)

    def render(self, texts: Mapping[str, str]) -> str:
        """The text of `texts[key]` (English where it has none) with the arguments filled in,
        nested messages rendered from the same texts."""
        text = texts.get(self.key) or ENGLISH[self.key]
        return text.format(**{k: v.render(texts) if isinstance(v, Notice) else v for k, v in self.args})

    def __str__(self) -> str:
        return self.render(ENGLISH)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "args": {k: v.to_json() if isinstance(v, Notice) else v for k, v in self.args}}

    @classmethod
    def from_json(cls, raw: Any) -> "Notice | None":
        """The Notice a job's file holds, or None for anything else (an older file, a damaged one)."""
        if not isinstance(raw, dict) or raw.get("key") not in ENGLISH or not isinstance(raw.get("args", {}), dict):
            return None
        args = []
        for name, value in raw.get("args", {}).items():
            nested = cls.from_json(value) if isinstance(value, dict) else None
            if isinstance(value, dict) and nested is None:
                return None
            args.append((name, nested if nested is not None else value))
        return cls(raw["key"], tuple(args))


def msg(key: str, /, **args: Arg) -> Notice:
    """A message of a known key (a typo fails here, at the line that writes it)."""
    if key not in ENGLISH:
        raise KeyError(f"no message text for {key!r}")
    return Notice(key, tuple(args.items()))


def joined(notices: list[Notice]) -> Notice:
    """Several messages as one, separated by semicolons."""
    out = notices[-1]
    for notice in reversed(notices[:-1]):
        out = msg("and", first=notice, rest=out)
    return out


class Refusal(ValueError):
    """A ValueError whose text is a notice: a config validator raises it, and pydantic keeps the
    exception in its error's context, where the config's error message finds the notice."""

    def __init__(self, notice: Notice):
        super().__init__(str(notice))
        self.notice = notice


# Why a rendered row is not trained: the keys of a build report's `dropped` counts.
TEMPLATE_ERROR = "drop.template_error"
NO_TRAINED = "drop.no_trained"
NO_TRAINED_AFTER_TRUNCATION = "drop.no_trained_after_truncation"
TOO_LONG = "drop.too_long"
BELOW_MIN = "drop.too_short"
ABOVE_MAX = "drop.over_max_tokens"
PROMPT_DIFFERS = "drop.prompt_differs"
IDENTICAL_AFTER_TRUNCATION = "drop.identical_after_truncation"
EMPTY_AFTER_TRUNCATION = "drop.empty_after_truncation"

ENGLISH: dict[str, str] = {
    # ---- one field of one row (RowError.message) ----------------------------------------------
    "row.missing": "is missing",
    "type.null": "null", "type.boolean": "boolean", "type.number": "number", "type.string": "string",
    "type.list": "list", "type.object": "object",
    "row.not_string": "must be a string, got {type}",
    "row.not_utf8": "contains bytes that are not valid UTF-8; re-save the file as UTF-8",
    "row.null_list": "must be a list, got null",
    "row.not_json_list": "must be a list (or a JSON array in a text cell), got a string that is not JSON",
    "row.not_list": "must be a list, got {type}",
    "row.no_chat_turn": "has no user or assistant turn",
    "row.system_not_first": "system message must come first",
    "row.start_not_user": "conversation must start with a user turn (after an optional system message)",
    "row.two_user_turns": "two user turns in a row; merge them or put an assistant turn between",
    "row.two_assistant_turns": "two assistant turns in a row; merge them or put a user turn between",
    "row.empty_turn": "empty {role} turn",
    "row.end_not_assistant": "conversation must end with an assistant turn, not a {role} turn",
    "row.pair_length": "must be a [user, assistant] pair, got list of length {n}",
    "row.pair_type": "must be a [user, assistant] pair, got {type}",
    "row.not_turn_object": "must be an object with '{role_key}' and '{content_key}', got {type}",
    "row.unknown_role": "unknown role {role}; use {roles}",
    "row.empty_text": "empty text",
    "row.not_completion": "must be a string or a list of exactly one {{role: assistant, content: ...}} message",
    "row.bad_label": "must be true (desirable) or false (undesirable), got {value}",
    "row.identical_pair": "chosen and rejected are identical: the pair teaches nothing",
    "row.line_not_utf8": "line {line} is not valid UTF-8; re-save the file as UTF-8",
    "row.line_not_json": "line {line} is not valid JSON: {detail} (column {column})",
    "row.line_refused": "line {line} {problem}",
    "row.duplicate_key": "has the key '{name}' twice in one object; keep one",
    "row.too_deep": "is nested too deeply to read (hundreds of levels of lists or objects); flatten it",
    "row.not_object": "{where} is a {type}, expected a JSON object",
    "row.where_line": "line {n}",
    "row.where_row": "row {n}",
    "row.csv_width": "line {line} has {values} values but the header has {columns} columns",
    "row.dropped": "dropped: {reason} ({tokens} tokens, {trained} trained)",
    "row.dropped_pair": "dropped: {reason}",
    "row.at": "row {row}, field '{field}': {message}",
    "row.not_prefix_stable": "message {message}: template is not prefix-stable for this row (the assistant turn "
                             "renders differently as the last message than inside the conversation), so its tokens "
                             "cannot be masked exactly; edit the row, or set template.name (--template) to a named "
                             "template of this model's chat format",
    "row.template_rejected": "the chat template rejected this conversation: {detail}",
    "row.no_chat_template": "the tokenizer has no chat template: load it with load_tokenizer(path, template=NAME)",
    # A text no key covers yet (a library's own message): shown as it is in every language.
    "detail": "{detail}",
    # ---- why a rendered row is not trained (BuildReport.dropped) -----------------------------
    "drop.template_error": "template error",
    "drop.no_trained": "no trained token",
    "drop.no_trained_after_truncation": "no trained token after truncation",
    "drop.too_long": "longer than max_seq_len",
    "drop.too_short": "shorter than min_tokens",
    "drop.over_max_tokens": "longer than max_tokens",
    "drop.prompt_differs": "the template renders the prompt differently before chosen and rejected",
    "drop.identical_after_truncation": "chosen and rejected are identical after truncation",
    "drop.empty_after_truncation": "empty completion after truncation (the prompt fills template.max_seq_len)",
    # ---- a file that cannot be used as a whole (DataError) ----------------------------------
    "file.no_rows": "no rows found",
    "file.nothing_to_train": "no row is left to train on ({summary}); check data.format, template.max_seq_len and "
                             "the row errors in train.log",
    "file.nothing_to_evaluate": "no valid row to evaluate ({n} invalid rows)",
    "file.no_readable_row": "no row could be read ({n} errors); first: {first}",
    "file.strict": "{first}; strict mode stops at the first invalid row",
    "file.strict_more": "{first} (and {more} more in this row); strict mode stops at the first invalid row",
    "file.missing": "no such file or folder",
    "file.one_object": "the file is one JSON object, not rows; put the rows in a JSON array [{{...}}, {{...}}] or write "
                       "one object per line (JSON lines)",
    "file.unsupported": "unsupported file type '{suffix}'; use .json, .jsonl, .csv, .tsv, .parquet or a datasets "
                        "save_to_disk folder",
    "file.no_extension": "no extension",
    "file.unreadable": "cannot read the file ({detail})",
    "file.bad_json": "not valid JSON at line {line}, column {column}: {detail}",
    "file.refused": "the file {problem}",
    "file.empty": "the file is empty",
    "file.csv_header": "cannot read the CSV header: {detail}",
    "file.csv_open_quote": "line {line} opens a quoted field that is never closed; add the closing quote, or write a "
                            'quote inside a field as ""',
    "file.csv_error": "CSV error at line {line}: {detail}",
    "file.bad_parquet": "not a readable Parquet file ({detail})",
    "file.bad_folder": "a folder must be a datasets save_to_disk folder (dataset_info.json or dataset_dict.json not found)",
    "file.no_train_split": "has splits {splits} and no 'train' split; save the split to use on its own",
    "file.hub_unreachable": "the hub dataset could not be fetched ({detail}); with no network, load it once on a "
                            "machine that has one and copy its datasets cache (HF_DATASETS_CACHE) here, or save it "
                            "to a JSONL file or a save_to_disk folder and set data.path to that",
    "file.map_unknown_field": "column mapping {source}={target}: '{target}' is not a field of any format (fields: {fields})",
    "file.map_no_column": "column mapping {source}={target}: the file has no column '{source}' (columns: {columns})",
    "file.map_clash": "column mapping {source}={target}: the file already has a column '{target}'; map or remove one of them",
    "file.unknown_format": "unknown format '{format}'; use auto, {formats}",
    "file.undetected": "cannot detect the format from the columns ({columns}); expected instruction+output (alpaca), "
                       "conversations (sharegpt), messages, text, prompt+chosen+rejected (preference) or "
                       "prompt+completion+label (kto); pass a format and a column mapping such as "
                       "prompt=instruction,response=output",
    "file.no_columns": "none",
    # ---- why this format (LoadedDataset.reason) ----------------------------------------------
    "detect.given": "format {format} given",
    "detect.column": "column {columns} found → {format}",
    "detect.columns": "columns {columns} found → {format}",
    "detect.column_mapped": "column {columns} found (after mapping {pairs}) → {format}",
    "detect.columns_mapped": "columns {columns} found (after mapping {pairs}) → {format}",
    "preview.timeout": "the preview took longer than {seconds} s",
    # ---- what a run cannot do on its devices (ConfigError) -----------------------------------
    "config.unsloth_needs_cuda": "'model.engine': unsloth needs a CUDA GPU and this run is on {device}; use engine: hf "
                                 "(or auto)",
    "config.fp16_needs_cuda": "'train.precision': fp16 needs a CUDA GPU; use fp32 or bf16 on CPU",
    "config.qlora_needs_cuda": "'method': qlora loads the model in 4-bit with bitsandbytes, which needs a CUDA GPU; use "
                               "method: lora on CPU",
    "config.unsloth_qlora_fixed": "'qlora': the unsloth engine loads 4-bit weights as nf4 with double quantization, "
                                  "computing in train.precision; keep those qlora settings or use model.engine: hf",
    "config.optimizer_needs_cuda": "'train.optimizer': {optimizer} (bitsandbytes) needs a CUDA GPU; use optimizer: "
                                   "adamw on CPU",
    "and": "{first}; {rest}",
    "config.invalid": "invalid run config: {problems}",
    "config.unknown_key": "unknown key '{key}'",
    "config.bad_value": "'{key}': {problem} (got {value})",
    "config.not_sections": "invalid run config: the top level must be a mapping of sections",
    "config.no_layer": "names no layer; list layers such as [q_proj, v_proj] or use all-linear",
    "config.steps": "must be -1 (use epochs) or a positive number of steps",
    "config.batch": "must be >= 1 or 'auto'",
    "config.no_device": "needs at least one device",
    "config.mixed_devices": "mixes cpu and GPU workers",
    "config.gpu_twice": "lists a GPU twice",
    "config.eval_needs_rows": "eval: metrics and samples are measured on held-out rows; set data.eval_ratio (e.g. 0.1) "
                              "or data.eval_path",
    "config.sharded_generation": "eval: answers are generated by one rank, which a sharded model cannot do; with "
                                 "sync.sharding fsdp keep eval.metrics to perplexity and eval.samples at 0, or run "
                                 "`python -m trainer_backend evaluate` on the finished job",
    "config.fsdp_qlora": "sync.sharding: fsdp does not shard bitsandbytes' 4-bit (QLoRA) weights; use method: lora or "
                         "full with fsdp, or sync.sharding: none for QLoRA",
    "config.fsdp_unsloth": "sync.sharding: fsdp runs on the hf engine (Unsloth's kernels are not FSDP-aware); set "
                           "model.engine: auto or hf, or sync.sharding: none",
    "config.fsdp_shm": "sync.sharding: fsdp exchanges shards through torch.distributed (nccl, gloo on CPU); set "
                       "sync.backend: auto or nccl",
    # pydantic's own checks, in its words (a text that no longer matches its message falls back to it)
    "value.greater_than": "Input should be greater than {gt}",
    "value.greater_than_equal": "Input should be greater than or equal to {ge}",
    "value.less_than": "Input should be less than {lt}",
    "value.less_than_equal": "Input should be less than or equal to {le}",
    "value.literal_error": "Input should be {expected}",
    "value.int_parsing": "Input should be a valid integer, unable to parse string as an integer",
    "value.int_from_float": "Input should be a valid integer, got a number with a fractional part",
    "value.float_parsing": "Input should be a valid number, unable to parse string as a number",
    "value.bool_parsing": "Input should be a valid boolean, unable to interpret input",
    # ---- why a job failed (error events, the job's reason) -----------------------------------
    "job.oom": "out of GPU memory at step {step} (train.micro_batch_size {micro_batch_size}, template.max_seq_len "
               "{max_seq_len}, method {method}): {levers}",
    "job.oom_exit": "out of memory ({detail}): {levers}",
    "job.oom_levers": "lower train.micro_batch_size (raise train.grad_accum to keep the effective batch), turn on "
                      "train.gradient_checkpointing, lower template.max_seq_len, or use method: qlora",
    "job.at": "{where}: {message}",
    "job.worker_killed": "{worker} was killed by {signal}; stopped all ranks",
    "job.crash": "{error}: {detail}",
    "job.disk_full": "the disk is full while {what}: free space on that disk (delete old jobs, checkpoints or exports), "
                     "or lower train.keep_checkpoints; then resume the job",
    "job.disk_full_at": "the disk is full while {what} ({path}): free space on that disk (delete old jobs, checkpoints "
                        "or exports), or lower train.keep_checkpoints; then resume the job",
    "job.disk_full_after": "{full} (the trainer ended with: {detail})",
    "job.while_training": "training",
    "job.while_writing": "writing the job's files",
    "job.while_checkpoint": "writing checkpoint {name}",
    "job.diverged": "training diverged at step {step} ({detail}); this step was not applied and {kept}. Lower "
                    "train.lr (now {lr}), keep train.max_grad_norm on (now {max_grad_norm}), add train.warmup_steps, "
                    "or use train.precision bf16/fp32 instead of fp16",
    "job.diverged_kept": "the last good checkpoint {name} is kept (resume continues from it)",
    "job.diverged_none": "no checkpoint had been written",
    "job.diverged_exit": "diverged: {detail}",
    "job.nan": "the loss became NaN or inf",
    "job.bad_loss": "loss {loss}",
    "job.bad_loss_norm": "loss {loss}, gradient norm {norm}",
    "job.bad_weights": "the trainable weights contain NaN/inf",
    "job.stalled": "stalled: no progress for {seconds} s while {stage} (no event, no CPU time, no disk traffic); the "
                   "trainer was killed. See train.log; if the machine is only very busy, resume the job or raise the "
                   "studio's --stall-timeout",
    "job.starting": "starting",
    "prep.reading": "reading {path}",
    "prep.rendering": "rendering and tokenizing {n} rows",
    "prep.planning": "resolving the config for {device}",
    "prep.loading_model": "loading {model} ({method})",
    "job.retry": "out of memory: retry {n} with {change}",
    "job.retry_change": "micro_batch_size {micro} -> {half}, grad_accum {accum} -> {double} (effective batch {batch} "
                        "per device unchanged)",
    "job.stopped": "stopped on request; {resume}",
    "job.stopped_before_first_step": "stopped on request before the first step; {resume}",
    "job.stopped_killed": "stopped on request; killed after the {grace} s grace period (the current step was not "
                          "checkpointed); {resume}",
    "job.stopped_before_command": "stopped on request before the train command started",
    "job.stopped_before_start": "stopped on request before it started",
    "job.resume_from_zero": "no checkpoint was written: a resume starts from step 0",
    "job.resume_from": "a resume continues from checkpoint {checkpoint}",
    "job.lost": "lost: its supervisor process ({pid}) is gone",
    "job.lost_disk_full": "lost: its supervisor process ({pid}) is gone while the disk of {workdir} was full: free "
                          "space, then resume the job",
    "job.supervisor_error": "job supervisor error: {error}: {detail}",
    "job.no_start": "could not start the train command {command}: {detail}",
    "stage.planning": "planning", "stage.loading_data": "loading data", "stage.rendering": "rendering data",
    "stage.loading_model": "loading the model",
    "job.killed": "killed by {signal} from outside the job",
    "job.killed_oom": "killed by {signal} from outside the job (often the system running out of memory)",
    "job.bad_input": "bad input: {detail}",
    "job.see_log": "see train.log",
    "job.exit_code": "exited with code {code}",
}
