"""Interface strings in English and Vietnamese, and the book of components to relabel when the
user switches language (LlamaBoard's approach: one event returns an update for every label)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

LANGUAGES = {"en": "English", "vi": "Tiếng Việt"}

# key: (English, Vietnamese). Placeholders in {braces} are filled by t().
_STRINGS: dict[str, tuple[str, str]] = {
    "app.title": ("# Fine-tuning studio", "# Xưởng tinh chỉnh mô hình"),
    "app.subtitle": ("Data → Template → Train → Monitor → Chat → Export. Signed in as **{user}**.",
                     "Dữ liệu → Mẫu hội thoại → Huấn luyện → Theo dõi → Trò chuyện → Xuất. Đăng nhập: **{user}**."),
    "app.language": ("Language", "Ngôn ngữ"),
    "tab.data": ("Data", "Dữ liệu"), "tab.template": ("Template", "Mẫu hội thoại"),
    "tab.train": ("Train", "Huấn luyện"), "tab.monitor": ("Monitor", "Theo dõi"),
    "tab.jobs": ("Jobs", "Công việc"), "tab.chat": ("Chat", "Trò chuyện"), "tab.export": ("Export", "Xuất mô hình"),
    # Data
    "data.upload": ("Upload a dataset (JSON, JSONL, CSV, Parquet)", "Tải lên tập dữ liệu (JSON, JSONL, CSV, Parquet)"),
    "data.sample": ("…or a bundled sample", "…hoặc một mẫu có sẵn"),
    "data.load_sample": ("Load sample", "Nạp mẫu"),
    "data.format": ("Format", "Định dạng"),
    "data.format_info": ("auto detects Alpaca, ShareGPT, messages, text, preference pairs (prompt/chosen/rejected) "
                         "or KTO rows (prompt/completion/label); pick one to override.",
                         "auto tự nhận Alpaca, ShareGPT, messages, text, cặp ưu tiên (prompt/chosen/rejected) "
                         "hoặc dòng KTO (prompt/completion/label); chọn để ghi đè."),
    "data.columns": ("Column mapping", "Ánh xạ cột"),
    "data.columns_info": ("field=your_column, comma separated.", "trường=cột_của_bạn, cách nhau bằng dấu phẩy."),
    "data.columns_ph": ("prompt=question, response=answer", "prompt=cau_hoi, response=tra_loi"),
    "data.reload": ("Apply format and mapping", "Áp dụng định dạng và ánh xạ"),
    "data.table": ("Rows as the trainer sees them (first 20)", "Các dòng như trình huấn luyện thấy (20 dòng đầu)"),
    "data.errors": ("Row errors", "Lỗi theo dòng"),
    "data.loaded": ("**{name}**: format **{format}** ({reason}). {rows} rows read, {valid} valid, {invalid} with errors.",
                    "**{name}**: định dạng **{format}** ({reason}). Đã đọc {rows} dòng, {valid} hợp lệ, {invalid} có lỗi."),
    "data.no_valid_rows": ("✖ No valid row: fix the errors below or choose another format / column mapping.",
                           "✖ Không có dòng hợp lệ: sửa các lỗi bên dưới hoặc chọn định dạng / ánh xạ cột khác."),
    "data.load_failed": ("✖ Cannot use **{name}**: {error}", "✖ Không dùng được **{name}**: {error}"),
    "data.upload_refused": ("✖ Upload refused: {error}", "✖ Từ chối tệp tải lên: {error}"),
    "data.bad_columns": ("✖ Column mapping '{pair}' is not field=column; write e.g. prompt=question.",
                         "✖ Ánh xạ cột '{pair}' không có dạng trường=cột; ví dụ prompt=cau_hoi."),
    "data.pick_sample": ("Pick a sample first.", "Hãy chọn một mẫu trước."),
    "data.nothing_loaded": ("Load a dataset first.", "Hãy nạp một tập dữ liệu trước."),
    "data.stats_pending": ("Token statistics appear once the template preview has run.",
                           "Thống kê token sẽ hiện khi xem trước mẫu hội thoại chạy xong."),
    "data.stats": ("{rows} rows, {valid} valid, {kept} kept for training, {truncated} truncated ({cut} tokens cut) "
                   "(tokenizer: {model})",
                   "{rows} dòng, {valid} hợp lệ, {kept} giữ lại để huấn luyện, {truncated} bị cắt (mất {cut} token) "
                   "(tokenizer: {model})"),
    "data.split": ("{n} text documents longer than max_seq_len are cut into pieces: no token is lost.",
                   "{n} văn bản dài hơn max_seq_len được chia thành nhiều đoạn: không mất token nào."),
    "data.dropped": ("{n} rows dropped: {reason}", "{n} dòng bị loại: {reason}"),
    "data.tokens": ("tokens", "số token"), "data.rows": ("rows", "số dòng"),
    "data.histogram_title": ("Token length per row", "Độ dài token mỗi dòng"),
    # Template
    "tpl.preset": ("Preset", "Cấu hình có sẵn"),
    "tpl.preset_info": ("Fills the model and template of a preset.", "Điền mô hình và mẫu hội thoại của cấu hình."),
    "tpl.model": ("Model or tokenizer", "Mô hình hoặc tokenizer"),
    "tpl.model_info": ("Local folder or hub id.", "Thư mục cục bộ hoặc mã trên hub."),
    "tpl.template": ("Chat template", "Mẫu hội thoại"),
    "tpl.template_info": ("auto = the tokenizer's own.", "auto = mẫu của chính tokenizer."),
    "tpl.loss": ("Trained tokens", "Token được huấn luyện"),
    "tpl.loss_info": ("response_only: assistant replies; last_turn: the last reply; full: everything.",
                      "response_only: các câu trả lời; last_turn: câu trả lời cuối; full: toàn bộ."),
    "tpl.max_len": ("Max sequence length", "Độ dài chuỗi tối đa"),
    "tpl.run": ("Preview masks", "Xem trước mặt nạ"),
    "tpl.prev": ("◀ Previous", "◀ Trước"), "tpl.next": ("Next ▶", "Sau ▶"), "tpl.row": ("Example", "Ví dụ"),
    "tpl.legend": ("<span class='tok-trained'>green = trained</span> · <span class='tok-masked'>grey = masked</span>",
                   "<span class='tok-trained'>xanh = được huấn luyện</span> · <span class='tok-masked'>xám = bị che</span>"),
    "tpl.load_data_first": ("Load a dataset in the Data tab first.", "Hãy nạp dữ liệu ở thẻ Dữ liệu trước."),
    "tpl.failed": ("✖ Preview failed: {error}", "✖ Xem trước thất bại: {error}"),
    "tpl.done": ("Rendered with **{model}** (template {template}), {rows} rows checked.",
                 "Đã dựng với **{model}** (mẫu {template}), kiểm tra {rows} dòng."),
    "tpl.no_preview": ("No preview yet.", "Chưa có bản xem trước."),
    "tpl.row_info": ("Example {i} of {shown} shown (row {row}): {n} tokens, {trained} trained",
                     "Ví dụ {i} / {shown} (dòng {row}): {n} token, {trained} được huấn luyện"),
    "tpl.truncated": ("truncated to max_seq_len", "bị cắt theo max_seq_len"),
    "tpl.dropped": ("dropped: {reason}", "bị loại: {reason}"),
    "tpl.check_nothing_trained": ("No token is trained in any row: the template or loss mode looks wrong for this "
                                  "data. Pick another template or loss mode.",
                                  "Không có token nào được huấn luyện: mẫu hội thoại hoặc chế độ loss có vẻ sai với "
                                  "dữ liệu này. Hãy chọn mẫu hoặc chế độ khác."),
    "tpl.check_no_trained_rows": ("{n} rows have no trained token and are dropped (rows {rows}).",
                                  "{n} dòng không có token được huấn luyện và bị loại (dòng {rows})."),
    "tpl.check_truncated": ("{n} rows are longer than {max} tokens and truncated, losing {cut} tokens: raise "
                            "max_seq_len or shorten them.",
                            "{n} dòng dài hơn {max} token và bị cắt, mất {cut} token: tăng max_seq_len hoặc rút "
                            "ngắn chúng."),
    "tpl.check_eot_never": ("The end-of-turn token is never trained: the model will not learn to stop. Check the "
                            "template.", "Token kết thúc lượt không bao giờ được huấn luyện: mô hình sẽ không học "
                            "cách dừng. Hãy kiểm tra mẫu hội thoại."),
    "tpl.check_eot_ok": ("The end-of-turn token is trained in {n} of {kept} rows.",
                         "Token kết thúc lượt được huấn luyện ở {n} / {kept} dòng."),
    "tpl.check_dropped": ("{n} rows dropped: {reason} (rows {rows}).", "{n} dòng bị loại: {reason} (dòng {rows})."),
    "tpl.chosen": ("**Chosen** (prompt + chosen completion)", "**Được chọn** (lời nhắc + câu trả lời được chọn)"),
    "tpl.rejected": ("**Rejected** (prompt + rejected completion)", "**Bị loại** (lời nhắc + câu trả lời bị loại)"),
    "tpl.desirable": ("**Desirable** completion", "Câu trả lời **mong muốn**"),
    "tpl.undesirable": ("**Undesirable** completion", "Câu trả lời **không mong muốn**"),
    "tpl.check_all_ok": ("{kept} of {rows} rows ready to train.", "{kept} / {rows} dòng sẵn sàng huấn luyện."),
    # Train
    "train.preset": ("One-click preset", "Cấu hình một chạm"),
    "train.preset_info": ("Fills every field below; your loaded dataset is kept.",
                          "Điền mọi trường bên dưới; giữ nguyên tập dữ liệu bạn đã nạp."),
    "train.gpus": ("GPUs", "GPU"),
    "train.gpus_info": ("Pick the GPUs for this job (free memory shown); none = CPU.",
                        "Chọn GPU cho công việc (hiện bộ nhớ trống); không chọn = CPU."),
    "train.cpu_only": ("CPU only: no GPU on this machine.", "Chỉ CPU: máy này không có GPU."),
    "train.estimate": ("Estimate VRAM", "Ước tính VRAM"),
    "train.launch": ("Launch", "Bắt đầu huấn luyện"),
    "train.yaml": ("Resolved config (YAML)", "Cấu hình đầy đủ (YAML)"),
    "train.yaml_hint": ("The same run, headless: `python -m trainer_backend train config.yaml`",
                        "Chạy lại y hệt không cần giao diện: `python -m trainer_backend train config.yaml`"),
    "train.download": ("Download config.yaml", "Tải config.yaml"),
    "train.bad_config": ("✖ Fix the form: {error}", "✖ Hãy sửa biểu mẫu: {error}"),
    "train.est_cpu": ("CPU training: no GPU memory needed.", "Huấn luyện trên CPU: không cần bộ nhớ GPU."),
    "train.est_sharded": ("The peak is per GPU: the model is sharded over {gpus} GPUs (FSDP2, transformers engine).",
                          "Đỉnh tính cho mỗi GPU: mô hình được chia trên {gpus} GPU (FSDP2, engine transformers)."),
    "train.est_failed": ("⚠ No VRAM estimate: {error}", "⚠ Không ước tính được VRAM: {error}"),
    "train.est_fits": ("Predicted peak {peak:.1f} GiB fits in {free:.1f} GiB free.",
                       "Đỉnh dự kiến {peak:.1f} GiB vừa với {free:.1f} GiB trống."),
    "train.est_too_big": ("Predicted peak {peak:.1f} GiB does NOT fit in {free:.1f} GiB free: lower micro_batch_size "
                          "or max_seq_len, use qlora, or set them to auto.",
                          "Đỉnh dự kiến {peak:.1f} GiB KHÔNG vừa {free:.1f} GiB trống: giảm micro_batch_size hoặc "
                          "max_seq_len, dùng qlora, hoặc đặt auto."),
    "train.launched": ("✔ Job **{job}** queued. Follow it in the Monitor tab.",
                       "✔ Đã xếp hàng công việc **{job}**. Theo dõi ở thẻ Theo dõi."),
    "train.remote_code_off": ("✖ model.trust_remote_code: running code shipped with a model is off for your account. "
                              "Untick it, or ask the admin (trust_remote_code in the users file).",
                              "✖ model.trust_remote_code: tài khoản của bạn không được chạy mã đi kèm mô hình. Hãy bỏ "
                              "chọn, hoặc nhờ quản trị viên (trust_remote_code trong tệp người dùng)."),
    "train.launch_failed": ("✖ Not launched: {error}", "✖ Chưa chạy được: {error}"),
    # Monitor
    "mon.job": ("Job", "Công việc"), "mon.refresh": ("Refresh list", "Làm mới"), "mon.stop": ("Stop", "Dừng"),
    "mon.log": ("Log (last lines)", "Nhật ký (các dòng cuối)"),
    "mon.pick_job": ("Pick a job, or launch one in the Train tab.", "Chọn một công việc, hoặc chạy ở thẻ Huấn luyện."),
    "mon.progress": ("**{state}** · step {step}/{total}{pct} · loss {loss} · ETA {eta}",
                     "**{state}** · bước {step}/{total}{pct} · loss {loss} · còn lại {eta}"),
    "mon.reason": ("Reason: {reason}", "Lý do: {reason}"),
    "mon.job_error": ("✖ {error}", "✖ {error}"),
    "mon.stopping": ("Stopping {job}: it saves a checkpoint, then exits.", "Đang dừng {job}: lưu checkpoint rồi thoát."),
    "mon.loss": ("Loss", "Loss"), "mon.train_loss": ("train", "huấn luyện"), "mon.eval_loss": ("eval", "đánh giá"),
    "mon.step": ("step", "bước"), "mon.lr": ("learning rate", "tốc độ học"), "mon.tps": ("tokens/s", "token/giây"),
    "mon.gpu_mem": ("GPU memory (GiB)", "Bộ nhớ GPU (GiB)"),
    "mon.no_gpu": ("No GPU: this job trains on the CPU", "Không có GPU: công việc này huấn luyện trên CPU"),
    "mon.rewards": ("Rewards", "Phần thưởng"), "mon.rewards_chosen": ("chosen", "được chọn"),
    "mon.rewards_rejected": ("rejected", "bị loại"), "mon.reward_margin": ("margin", "chênh lệch"),
    "mon.reward_accuracy": ("Pairs ranked right", "Tỉ lệ cặp xếp đúng"),
    "mon.objective_parts": ("Loss parts", "Thành phần loss"), "mon.nll_loss": ("NLL (chosen)", "NLL (được chọn)"),
    "mon.log_odds_ratio": ("log σ(odds ratio)", "log σ(tỉ số odds)"), "mon.kl": ("KL estimate", "Ước lượng KL"),
    "state.queued": ("queued", "đang chờ"), "state.running": ("running", "đang chạy"),
    "state.stopping": ("stopping", "đang dừng"), "state.stopped": ("stopped", "đã dừng"),
    "state.completed": ("completed", "hoàn tất"), "state.failed": ("failed", "thất bại"),
    # Jobs
    "jobs.table": ("Your jobs", "Công việc của bạn"), "jobs.pick": ("Job", "Công việc"),
    "jobs.refresh": ("Refresh", "Làm mới"), "jobs.resume": ("Resume", "Tiếp tục"), "jobs.delete": ("Delete", "Xoá"),
    "jobs.pick_first": ("Pick a job first.", "Hãy chọn một công việc trước."),
    "jobs.failed": ("✖ {error}", "✖ {error}"),
    "jobs.resumed": ("Job {job} queued again; it continues from its last checkpoint.",
                     "Công việc {job} được xếp hàng lại; tiếp tục từ checkpoint cuối."),
    "jobs.deleted": ("Job {job} deleted with its files.", "Đã xoá công việc {job} cùng các tệp."),
    # Chat
    "chat.base_model": ("Base model", "Mô hình gốc"),
    "chat.base_info": ("Used when no job is picked.", "Dùng khi không chọn công việc."),
    "chat.job": ("Fine-tuned job", "Công việc đã tinh chỉnh"),
    "chat.job_info": ("A completed job: its base answers on the left, the tuned model on the right.",
                      "Một công việc đã xong: mô hình gốc trả lời bên trái, mô hình tinh chỉnh bên phải."),
    "chat.refresh": ("Refresh", "Làm mới"), "chat.max_new": ("Max new tokens", "Số token tối đa"),
    "chat.base": ("Base", "Gốc"), "chat.tuned": ("Fine-tuned", "Đã tinh chỉnh"),
    "chat.prompt": ("Message", "Tin nhắn"), "chat.prompt_ph": ("Ask both models…", "Hỏi cả hai mô hình…"),
    "chat.send": ("Send", "Gửi"), "chat.clear": ("Clear", "Xoá"),
    "chat.empty": ("Type a message first.", "Hãy nhập tin nhắn trước."),
    "chat.thinking": ("Answering… (the first message loads the models)",
                      "Đang trả lời… (tin nhắn đầu tiên sẽ nạp mô hình)"),
    "chat.failed": ("✖ {error}", "✖ {error}"),
    # Export
    "export.job": ("Completed job", "Công việc đã xong"), "export.refresh": ("Refresh", "Làm mới"),
    "export.adapter": ("Download the adapter (zip)", "Tải adapter (zip)"),
    "export.merge": ("Merge into the base model and download (zip)", "Gộp vào mô hình gốc và tải (zip)"),
    "export.file": ("Export", "Tệp xuất"),
    "export.pick_first": ("Pick a completed job first.", "Hãy chọn một công việc đã xong trước."),
    "export.failed": ("✖ Export failed: {error}", "✖ Xuất thất bại: {error}"),
    "export.done": ("✔ {name} ({mb:.1f} MB) is ready.", "✔ {name} ({mb:.1f} MB) đã sẵn sàng."),
    # Hosting: what a shared studio refuses, and why
    "path.refused.data": ("✖ {field} '{value}' is neither one of your uploads nor a bundled sample: upload it in "
                          "the Data tab.", "✖ {field} '{value}' không phải tệp bạn tải lên hay mẫu có sẵn: hãy "
                          "tải lên ở thẻ Dữ liệu."),
    "path.refused.model": ("✖ {field} '{value}' is not a hub id (org/name), a bundled model, a model folder the admin "
                           "listed, or the output of one of your completed jobs.",
                           "✖ {field} '{value}' không phải mã trên hub (org/name), mô hình có sẵn, thư mục mô hình do "
                           "quản trị viên liệt kê, hay đầu ra của một công việc đã xong của bạn."),
    "room.quota": ("✖ Not enough room in your space: {used:.2f} GiB used of your {quota:.2f} GiB quota, {size:.2f} GiB "
                   "more needed. Delete old jobs, exports or uploads, or ask the admin for a larger quota.",
                   "✖ Không đủ chỗ trong không gian của bạn: đã dùng {used:.2f} / {quota:.2f} GiB, cần thêm "
                   "{size:.2f} GiB. Hãy xoá công việc, tệp xuất hoặc tệp tải lên cũ, hoặc xin quản trị viên thêm."),
    "room.disk": ("✖ The server's disk is nearly full ({free:.2f} GiB free, {floor:.1f} GiB is kept free): try again "
                  "later or tell the admin.", "✖ Ổ đĩa máy chủ gần đầy (còn {free:.2f} GiB, luôn giữ {floor:.1f} GiB): "
                  "hãy thử lại sau hoặc báo quản trị viên."),
    "upload.need_length": ("✖ Upload refused: the request has no Content-Length.",
                           "✖ Từ chối tệp tải lên: yêu cầu không có Content-Length."),
    "upload.too_big": ("✖ Upload refused: {mb:.1f} MB is over the {limit:.0f} MB upload limit.",
                       "✖ Từ chối tệp tải lên: {mb:.1f} MB vượt giới hạn {limit:.0f} MB."),
    "upload.bad_type": ("✖ Upload refused: {name} is not a dataset file; upload {allowed}.",
                        "✖ Từ chối tệp tải lên: {name} không phải tệp dữ liệu; hãy tải lên {allowed}."),
    "upload.not_yours": ("✖ Upload refused: this file was not sent from your session; upload it again.",
                         "✖ Từ chối tệp tải lên: tệp này không được gửi từ phiên của bạn; hãy tải lên lại."),
    # Config form sections
    "cfg.section.model": ("Model", "Mô hình"), "cfg.section.data": ("Data", "Dữ liệu"),
    "cfg.section.template": ("Template and lengths", "Mẫu hội thoại và độ dài"), "cfg.section.lora": ("LoRA", "LoRA"),
    "cfg.section.train": ("Training", "Huấn luyện"), "cfg.section.sync": ("Devices and sync", "Thiết bị và đồng bộ"),
    "cfg.section.preference": ("Preference tuning (DPO, ORPO, SimPO, KTO)",
                               "Tinh chỉnh theo ưu tiên (DPO, ORPO, SimPO, KTO)"),
    "cfg.section.output": ("Output", "Đầu ra"), "cfg.section.planner": ("Memory planner", "Bộ lập kế hoạch bộ nhớ"),
}

# Config keys: (English label, Vietnamese label); the dotted key is shown too, as in the YAML.
_FIELD_LABELS: dict[str, tuple[str, str]] = {
    "name": ("Run name", "Tên lần chạy"), "description": ("Description", "Mô tả"),
    "method": ("Method", "Phương pháp"),
    "model.name_or_path": ("Base model", "Mô hình gốc"), "model.engine": ("Engine", "Bộ máy"),
    "model.attn_implementation": ("Attention", "Cơ chế attention"),
    "model.trust_remote_code": ("Trust remote code", "Tin mã từ xa"),
    "model.architecture": ("Architecture fields", "Thông số kiến trúc"),
    "data.path": ("Dataset file", "Tệp dữ liệu"), "data.format": ("Format", "Định dạng"),
    "data.columns": ("Column mapping", "Ánh xạ cột"), "data.strict": ("Strict", "Nghiêm ngặt"),
    "data.eval_path": ("Eval dataset", "Dữ liệu đánh giá"), "data.eval_ratio": ("Eval ratio", "Tỉ lệ đánh giá"),
    "template.name": ("Chat template", "Mẫu hội thoại"), "template.loss": ("Trained tokens", "Token được huấn luyện"),
    "template.max_seq_len": ("Max sequence length", "Độ dài chuỗi tối đa"),
    "template.overflow": ("Too-long rows", "Dòng quá dài"), "template.min_tokens": ("Min tokens", "Token tối thiểu"),
    "template.max_tokens": ("Max tokens", "Token tối đa"), "template.system_prompt": ("System prompt", "Lời nhắc hệ thống"),
    "template.enable_thinking": ("Thinking (Qwen3)", "Suy luận (Qwen3)"), "template.packing": ("Packing", "Đóng gói"),
    "lora.r": ("LoRA rank", "Hạng LoRA"), "lora.alpha": ("LoRA alpha", "Alpha LoRA"),
    "lora.dropout": ("LoRA dropout", "Dropout LoRA"), "lora.target_modules": ("Target modules", "Mô-đun đích"),
    "lora.rslora": ("rsLoRA", "rsLoRA"),
    "train.objective": ("Objective", "Mục tiêu huấn luyện"),
    "preference.beta": ("Beta", "Beta"), "preference.loss_type": ("DPO loss", "Loss DPO"),
    "preference.label_smoothing": ("Label smoothing", "Làm mượt nhãn"),
    "preference.simpo_gamma": ("SimPO gamma", "Gamma SimPO"), "preference.orpo_lambda": ("ORPO lambda", "Lambda ORPO"),
    "preference.kto_desirable_weight": ("KTO desirable weight", "Trọng số KTO mong muốn"),
    "preference.kto_undesirable_weight": ("KTO undesirable weight", "Trọng số KTO không mong muốn"),
    "train.max_steps": ("Max steps", "Số bước tối đa"), "train.epochs": ("Epochs", "Số epoch"),
    "train.micro_batch_size": ("Micro-batch size", "Kích thước micro-batch"),
    "train.grad_accum": ("Gradient accumulation", "Tích luỹ gradient"),
    "train.effective_batch_size": ("Effective batch size", "Kích thước batch hiệu dụng"),
    "train.lr": ("Learning rate", "Tốc độ học"), "train.scheduler": ("Scheduler", "Lịch tốc độ học"),
    "train.warmup_ratio": ("Warmup ratio", "Tỉ lệ khởi động"), "train.warmup_steps": ("Warmup steps", "Bước khởi động"),
    "train.optimizer": ("Optimizer", "Bộ tối ưu"), "train.weight_decay": ("Weight decay", "Suy giảm trọng số"),
    "train.max_grad_norm": ("Gradient clipping", "Cắt gradient"), "train.precision": ("Precision", "Độ chính xác"),
    "train.gradient_checkpointing": ("Gradient checkpointing", "Lưu điểm gradient"), "train.seed": ("Seed", "Hạt giống"),
    "train.eval_every": ("Eval every", "Đánh giá mỗi"), "train.save_every": ("Checkpoint every", "Lưu checkpoint mỗi"),
    "train.log_every": ("Log every", "Ghi log mỗi"), "train.tensorboard": ("TensorBoard", "TensorBoard"),
    "sync.backend": ("Gradient sync", "Đồng bộ gradient"), "sync.devices": ("Devices", "Thiết bị"),
    "sync.bucket_mb": ("Bucket size (MB)", "Kích thước gói (MB)"), "sync.wire_dtype": ("Wire dtype", "Kiểu dữ liệu truyền"),
    "sync.timeout_s": ("Rank timeout (s)", "Thời gian chờ rank (giây)"),
    "output.dir": ("Output folder", "Thư mục đầu ra"), "output.merge": ("Merge at the end", "Gộp khi kết thúc"),
    "planner.gpu_mem_gib": ("GPU memory budget (GiB)", "Ngân sách bộ nhớ GPU (GiB)"),
    "planner.headroom_gib": ("Headroom (GiB)", "Dự phòng (GiB)"),
    "planner.expected_peak_gib": ("Expected peak (GiB)", "Đỉnh dự kiến (GiB)"),
}

# Tooltips; English falls back to the schema's own description where there is none here.
_FIELD_INFO: dict[str, tuple[str | None, str]] = {
    "method": ("lora: small adapters on a 16-bit model (fast, moderate memory). qlora: adapters on a 4-bit model "
               "(least memory, a bit slower). full: every weight trained (most memory). auto: the planner picks.",
               "lora: adapter nhỏ trên mô hình 16-bit (nhanh, bộ nhớ vừa). qlora: adapter trên mô hình 4-bit (ít bộ "
               "nhớ nhất, chậm hơn chút). full: huấn luyện mọi trọng số (nhiều bộ nhớ nhất). auto: để bộ lập kế "
               "hoạch chọn."),
    "model.name_or_path": (None, "Mã trên hub hoặc thư mục cục bộ của mô hình gốc."),
    "model.engine": (None, "auto = unsloth trên CUDA, hf (transformers+peft) ở nơi khác."),
    "model.trust_remote_code": (None, "Chạy mã đi kèm mô hình; trên máy chủ dùng chung chỉ khi quản trị viên cho phép."),
    "model.architecture": (None, "Các trường config.json đã công bố, cấu hình có sẵn ghi lại để kiểm tra bộ nhớ."),
    "data.path": (None, "Tệp JSON, JSONL, CSV, Parquet hoặc thư mục save_to_disk của datasets."),
    "data.columns": (None, "Ánh xạ tên cột của bạn sang trường của định dạng, vd {prompt: instruction}."),
    "data.strict": (None, "Dừng ở dòng lỗi đầu tiên thay vì bỏ qua các dòng lỗi."),
    "data.eval_ratio": (None, "Tỉ lệ dòng giữ lại để tính loss đánh giá khi không có eval_path."),
    "template.name": (None, "auto = mẫu của tokenizer, nếu không thì một mẫu dự phòng có tên."),
    "template.loss": ("response_only: assistant replies; last_turn: only the last reply; full: every token.",
                      "response_only: các câu trả lời; last_turn: chỉ câu trả lời cuối; full: mọi token."),
    "template.overflow": (None, "Cách xử lý dòng dài hơn max_seq_len: cắt bớt hoặc loại bỏ."),
    "template.system_prompt": (None, "Dùng cho các dòng không có tin nhắn hệ thống."),
    "template.enable_thinking": (None, "Qwen3: bật hoặc tắt suy luận (trống = mặc định của mẫu)."),
    "lora.r": ("Adapter rank: higher learns more, uses more memory (8–64 typical).",
               "Hạng adapter: cao hơn học nhiều hơn, tốn bộ nhớ hơn (thường 8–64)."),
    "lora.alpha": ("Adapter scale; usually 2 × rank.", "Hệ số adapter; thường bằng 2 × hạng."),
    "lora.target_modules": ("all-linear, or a list such as [q_proj, v_proj].",
                            "all-linear, hoặc danh sách như [q_proj, v_proj]."),
    "train.max_steps": (None, "Số bước tối ưu; -1 = chạy theo số epoch."),
    "train.objective": ("sft: learn the responses. dpo, orpo, simpo: learn from prompt/chosen/rejected pairs. "
                        "kto: learn from completions labelled desirable or not.",
                        "sft: học các câu trả lời. dpo, orpo, simpo: học từ các cặp lời nhắc/được chọn/bị loại. "
                        "kto: học từ các câu trả lời được gắn nhãn mong muốn hay không."),
    "preference.beta": (None, "dpo, simpo, kto: mức chính sách được rời xa mô hình tham chiếu (DPO/KTO) hoặc "
                              "thang phần thưởng (SimPO)."),
    "preference.loss_type": (None, "dpo: hàm loss trên chênh lệch phần thưởng (sigmoid = DPO, ipo = IPO, hinge = "
                                   "SLiC, robust = rDPO với label_smoothing)."),
    "preference.label_smoothing": (None, "dpo robust, simpo: tỉ lệ nhãn ưu tiên bị đảo được giả định."),
    "preference.simpo_gamma": (None, "simpo: chênh lệch phần thưởng mục tiêu."),
    "preference.orpo_lambda": (None, "orpo: trọng số của thành phần tỉ số odds bên cạnh NLL của chuỗi được chọn."),
    "preference.kto_desirable_weight": (None, "kto: trọng số của các câu trả lời mong muốn."),
    "preference.kto_undesirable_weight": (None, "kto: trọng số của các câu trả lời không mong muốn."),
    "train.micro_batch_size": (None, "Số chuỗi mỗi lượt forward trên mỗi thiết bị (hoặc auto)."),
    "train.effective_batch_size": (None, "Số chuỗi mỗi bước tối ưu trên mọi thiết bị; bộ lập kế hoạch giữ nguyên nó."),
    "train.lr": ("Step size of the optimizer: 1e-4 to 2e-4 for LoRA, 1e-5 for full.",
                 "Bước của bộ tối ưu: 1e-4 đến 2e-4 cho LoRA, 1e-5 cho full."),
    "train.max_grad_norm": (None, "0 tắt việc cắt gradient."),
    "train.gradient_checkpointing": ("Trades speed for memory: off is fastest; auto lets the planner choose.",
                                     "Đổi tốc độ lấy bộ nhớ: off nhanh nhất; auto để bộ lập kế hoạch chọn."),
    "train.eval_every": (None, "Tính loss đánh giá mỗi N bước (0 = chỉ ở cuối khi có dữ liệu đánh giá)."),
    "train.save_every": (None, "Lưu checkpoint mỗi N bước (0 = chỉ khi dừng và khi kết thúc)."),
    "sync.backend": (None, "auto = nccl giữa các GPU, shm cho các worker CPU."),
    "sync.devices": (None, "[cpu], [0], [0, 1] hoặc [cpu, cpu]: mỗi mục một worker."),
    "sync.timeout_s": (None, "Rank im lặng quá thời gian này bị coi là đã chết."),
    "output.dir": (None, "Thư mục công việc: cấu hình, sự kiện, checkpoint, đầu ra (studio tự đặt)."),
    "output.merge": (None, "Ghi thêm safetensors đã gộp khi kết thúc."),
    "planner.gpu_mem_gib": (None, "Ngân sách mỗi GPU cho các trường auto (trống = tự phát hiện)."),
    "planner.expected_peak_gib": (None, "Đỉnh bộ nhớ GPU bộ lập kế hoạch dự đoán (cấu hình có sẵn khai báo)."),
}

STRINGS: dict[str, dict[str, str]] = {
    lang: {k: v[i] for k, v in _STRINGS.items()} for i, lang in enumerate(LANGUAGES)}


def t(lang: str, key: str, **params: Any) -> str:
    table = STRINGS.get(lang, STRINGS["en"])
    text = table.get(key) or STRINGS["en"][key]
    return text.format(**params) if params else text


def field_label_key(key: str) -> str:
    return f"field:{key}"


def field_info_key(key: str) -> str:
    return f"info:{key}"


def _lookup(lang: str, key: str | None, fallback: str | None) -> str | None:
    """Keys of config fields resolve through the field tables, the others through t()."""
    if key is None:
        return None
    i = list(LANGUAGES).index(lang) if lang in LANGUAGES else 0
    if key.startswith("field:"):
        name = key.removeprefix("field:")
        pair = _FIELD_LABELS.get(name)
        return f"{pair[i]} · {name}" if pair else name
    if key.startswith("info:"):
        pair = _FIELD_INFO.get(key.removeprefix("info:"))
        return (pair[i] or fallback) if pair else fallback
    return t(lang, key)


@dataclass
class _Entry:
    component: Any
    keys: dict[str, str | None]
    fallbacks: dict[str, str | None]


class LabelBook:
    """The components of one studio and the string keys of their labels (built with the layout)."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []

    def add(self, component, *, label: str | None = None, info: str | None = None, value: str | None = None,
            placeholder: str | None = None, fallback_label: str | None = None, fallback_info: str | None = None):
        entry = _Entry(component, {"label": label, "info": info, "value": value, "placeholder": placeholder},
                       {"label": fallback_label, "info": fallback_info})
        self._entries.append(entry)
        self._apply(entry, "en")
        return component

    def _texts(self, entry: _Entry, lang: str) -> dict[str, str]:
        out = {}
        for prop, key in entry.keys.items():
            text = _lookup(lang, key, entry.fallbacks.get(prop))
            if text is not None:
                out[prop] = text
        return out

    def _apply(self, entry: _Entry, lang: str) -> None:
        for prop, text in self._texts(entry, lang).items():
            setattr(entry.component, prop, text)

    @property
    def components(self) -> list:
        return [e.component for e in self._entries]

    def updates(self, lang: str) -> list:
        return [gr.update(**self._texts(e, lang)) for e in self._entries]

    def keys(self) -> set[str]:
        return {k for e in self._entries for k in e.keys.values() if k}
