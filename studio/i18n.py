"""Interface strings in English and Vietnamese, and the book of components to relabel when the
user switches language (LlamaBoard's approach: one event returns an update for every label)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from studio.backend_texts import VIETNAMESE
from trainer_backend.messages import ENGLISH, Notice

LANGUAGES = {"en": "English", "vi": "Tiếng Việt"}

# key: (English, Vietnamese). Placeholders in {braces} are filled by t().
_STRINGS: dict[str, tuple[str, str]] = {
    "app.title": ("# Fine-tuning studio", "# Xưởng tinh chỉnh mô hình"),
    "app.subtitle": ("Data → Template → Train → Monitor → Chat → Export. Signed in as **{user}**.",
                     "Dữ liệu → Mẫu hội thoại → Huấn luyện → Theo dõi → Trò chuyện → Xuất. Đăng nhập: **{user}**."),
    "app.language": ("Language", "Ngôn ngữ"),
    # Gradio has no Vietnamese texts of its own: a marker element lets the CSS replace them.
    "app.lang_marker": ("", "<span id='studio-lang-vi'></span>"),
    "tab.data": ("Data", "Dữ liệu"), "tab.template": ("Template", "Mẫu hội thoại"),
    "tab.train": ("Train", "Huấn luyện"), "tab.monitor": ("Monitor", "Theo dõi"),
    "tab.jobs": ("Jobs", "Công việc"), "tab.chat": ("Chat", "Trò chuyện"), "tab.export": ("Export", "Xuất mô hình"),
    # Data
    "data.upload": ("Upload a dataset (JSON, JSONL, CSV, Parquet)", "Tải lên tập dữ liệu (JSON, JSONL, CSV, Parquet)"),
    "data.sample": ("…or a bundled sample", "…hoặc một mẫu có sẵn"),
    "data.load_sample": ("Load sample", "Nạp mẫu"),
    "data.hub_id": ("…or a hub dataset", "…hoặc một tập dữ liệu trên hub"),
    "data.hub_id_info": ("org/name, optionally :config and @split (read through the datasets cache).",
                         "org/name, tuỳ chọn thêm :config và @split (đọc qua bộ nhớ đệm của datasets)."),
    "data.hub_id_ph": ("org/name:config@train", "org/name:config@train"),
    "data.load_hub": ("Load from the hub", "Nạp từ hub"),
    "data.hub_refused": ("✖ Hub datasets are not offered on a shared server; upload the file instead.",
                         "✖ Máy chủ dùng chung không cho nạp dữ liệu từ hub; hãy tải tệp lên."),
    "data.bad_hub_id": ("✖ '{name}' is not a hub dataset id; write org/name (optionally :config and @split).",
                        "✖ '{name}' không phải mã tập dữ liệu trên hub; hãy viết org/name (tuỳ chọn :config và @split)."),
    "data.format": ("Format", "Định dạng"),
    "data.format_info": ("auto detects Alpaca, ShareGPT, messages, text, preference pairs (prompt/chosen/rejected) "
                         "or KTO rows (prompt/completion/label); pick one to override.",
                         "auto tự nhận Alpaca, ShareGPT, messages, text, cặp ưu tiên (prompt/chosen/rejected) "
                         "hoặc dòng KTO (prompt/completion/label); chọn để ghi đè."),
    "data.drop_user": ("Drop a trailing user turn", "Bỏ lượt người dùng ở cuối"),
    "data.drop_user_info": ("A chat that ends on an unanswered question keeps its answered turns.",
                            "Hội thoại kết thúc bằng câu hỏi chưa được trả lời vẫn giữ các lượt đã trả lời."),
    "data.mapping_hint": ("**Column mapping:** for each field of the format, pick the column of your file that "
                          "holds it (— = none).",
                          "**Ánh xạ cột:** với mỗi trường của định dạng, chọn cột trong tệp của bạn chứa nó "
                          "(— = không có)."),
    "data.field.instruction": ("instruction (the question)", "instruction (câu hỏi)"),
    "data.field.input": ("input (extra context)", "input (ngữ cảnh thêm)"),
    "data.field.output": ("output (the answer)", "output (câu trả lời)"),
    "data.field.system": ("system (system prompt)", "system (lời nhắc hệ thống)"),
    "data.field.history": ("history (earlier turns)", "history (các lượt trước)"),
    "data.field.conversations": ("conversations (ShareGPT turns)", "conversations (các lượt ShareGPT)"),
    "data.field.messages": ("messages (role/content turns)", "messages (các lượt role/content)"),
    "data.field.text": ("text (raw text)", "text (văn bản thô)"),
    "data.map_below": ("Pick the format and, for each of its fields, the column that holds it below; then press "
                       "Apply.", "Chọn định dạng và, với mỗi trường, cột chứa nó ở bên dưới; rồi nhấn Áp dụng."),
    "data.trimmed": ("{n} chats ended on a user turn: that turn was dropped.",
                     "{n} hội thoại kết thúc bằng lượt người dùng: lượt đó đã được bỏ."),
    "data.col.row": ("row", "dòng"), "data.col.turns": ("turns", "số lượt"), "data.col.system": ("system", "hệ thống"),
    "data.col.user": ("user", "người dùng"), "data.col.assistant": ("assistant", "trợ lý"),
    "data.col.field": ("field", "trường"), "data.col.message": ("message", "thông báo"),
    "data.limit_off_chart": ("max_seq_len {max} is far right of the longest row",
                             "max_seq_len {max} vượt xa dòng dài nhất"),
    "data.field.prompt": ("prompt (the question)", "prompt (câu hỏi)"),
    "data.field.chosen": ("chosen (the preferred answer)", "chosen (câu trả lời được chọn)"),
    "data.field.rejected": ("rejected (the worse answer)", "rejected (câu trả lời bị loại)"),
    "data.field.completion": ("completion (the answer)", "completion (câu trả lời)"),
    "data.field.label": ("label (desirable: true/false)", "label (mong muốn: true/false)"),
    "data.col.rejected": ("rejected", "bị loại"), "data.col.desirable": ("desirable", "mong muốn"),
    "data.reload": ("Apply format and mapping", "Áp dụng định dạng và ánh xạ"),
    "data.table": ("Rows as the trainer sees them (first 20)", "Các dòng như trình huấn luyện thấy (20 dòng đầu)"),
    "data.errors": ("Row errors", "Lỗi theo dòng"),
    "data.loaded": ("**{name}**: format **{format}** ({reason}). {rows} rows read, {valid} valid, {invalid} rows with errors.",
                    "**{name}**: định dạng **{format}** ({reason}). Đã đọc {rows} dòng, {valid} hợp lệ, {invalid} dòng có lỗi."),
    "data.no_valid_rows": ("✖ No valid row: fix the errors below or choose another format / column mapping.",
                           "✖ Không có dòng hợp lệ: sửa các lỗi bên dưới hoặc chọn định dạng / ánh xạ cột khác."),
    "data.load_failed": ("✖ Cannot use **{name}**: {error}", "✖ Không dùng được **{name}**: {error}"),
    "data.upload_refused": ("✖ Upload refused: {error}", "✖ Từ chối tệp tải lên: {error}"),
    "data.pick_sample": ("Pick a sample first.", "Hãy chọn một mẫu trước."),
    "data.nothing_loaded": ("Load a dataset first.", "Hãy nạp một tập dữ liệu trước."),
    "data.stats_pending": ("Token statistics appear once the template preview has run.",
                           "Thống kê token sẽ hiện khi xem trước mẫu hội thoại chạy xong."),
    "data.stats": ("{rows} rows, {valid} valid, {kept} kept for training, {truncated} truncated at {max} tokens "
                   "({cut} tokens cut) (tokenizer: {model})",
                   "{rows} dòng, {valid} hợp lệ, {kept} giữ lại để huấn luyện, {truncated} bị cắt ở {max} token "
                   "(mất {cut} token) (tokenizer: {model})"),
    "data.split": ("{n} text documents longer than max_seq_len are cut into pieces: no token is lost.",
                   "{n} văn bản dài hơn max_seq_len được chia thành nhiều đoạn: không mất token nào."),
    "data.dropped": ("{n} rows dropped: {reason}", "{n} dòng bị loại: {reason}"),
    "data.tokens": ("tokens", "số token"), "data.rows": ("rows", "số dòng"),
    "data.histogram_title": ("Token length per row", "Độ dài token mỗi dòng"),
    # Template
    "tpl.basis": ("Previewing the run prepared in the Train tab: model **{model}**, template **{template}**, trained "
                  "tokens **{loss}**, max_seq_len **{max}** ({overflow}). Change them there; the job trains the same.",
                  "Xem trước lần chạy đang chuẩn bị ở thẻ Huấn luyện: mô hình **{model}**, mẫu **{template}**, token "
                  "được huấn luyện **{loss}**, max_seq_len **{max}** ({overflow}). Đổi ở thẻ đó; công việc huấn "
                  "luyện y như vậy."),
    "tpl.stale": ("The run changed since this preview was made: press Preview masks to see what it trains now.",
                  "Lần chạy đã thay đổi từ khi tạo bản xem trước này: nhấn Xem trước mặt nạ để thấy nội dung huấn "
                  "luyện hiện tại."),
    "tpl.jump": ("Go to row", "Đến dòng"),
    "tpl.jump_info": ("A row number of the file (e.g. one named in an error); Enter shows the rows from there.",
                      "Số dòng trong tệp (vd dòng được nêu trong lỗi); nhấn Enter để xem từ dòng đó."),
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
    "tpl.row_error": ("Example {i} of {shown} shown (row {row}) cannot be trained: {error}",
                      "Ví dụ {i} / {shown} (dòng {row}) không thể huấn luyện: {error}"),
    "tpl.timeout": ("✖ The preview took too long and was stopped: load a smaller file or lower max_seq_len.",
                    "✖ Bản xem trước chạy quá lâu nên đã bị dừng: hãy nạp tệp nhỏ hơn hoặc giảm max_seq_len."),
    "tpl.stand_in": ("ℹ The model hub cannot be reached: rendered with the offline tokenizer {tokenizer} of the "
                     "same family as {model}. The model's own tokenizer may split some words differently.",
                     "ℹ Không kết nối được hub: đã dựng bằng tokenizer ngoại tuyến {tokenizer} cùng họ với {model}. "
                     "Tokenizer của chính mô hình có thể tách một số từ khác đi."),
    "tpl.note_mistral_v3": ("ℹ mistral-v3 follows mistral-common's fine-tuning encoding, except that a system "
                            "prompt joins the first user turn (mistral-common: the last one), so that every turn "
                            "of a multi-turn row can be trained; rows with one user turn are identical.",
                            "ℹ mistral-v3 theo cách mã hóa tinh chỉnh của mistral-common, trừ việc lời nhắc hệ thống "
                            "đi cùng lượt người dùng đầu tiên (mistral-common: lượt cuối), để mọi lượt của một dòng "
                            "nhiều lượt đều huấn luyện được; dòng chỉ có một lượt người dùng thì giống hệt."),
    "tpl.check_unlike_inference": ("{n} rows train earlier assistant turns in a form the model never generates "
                                   "(this template writes history turns differently, e.g. Qwen3 without their think "
                                   "block): set the trained tokens to last_turn.",
                                   "{n} dòng huấn luyện các lượt trợ lý trước đó ở dạng mô hình không bao giờ sinh ra "
                                   "(mẫu này viết các lượt lịch sử khác đi, vd Qwen3 bỏ khối think): hãy chọn "
                                   "last_turn cho token được huấn luyện."),
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
    "train.form_too_long": ("'{field}': {size} bytes is over the {limit}-byte limit of a field",
                            "'{field}': {size} byte vượt giới hạn {limit} byte của một trường"),
    "train.form_not_int": ("'{field}': '{value}' is neither a whole number nor auto",
                           "'{field}': '{value}' không phải số nguyên cũng không phải auto"),
    "train.cpu_blocked": ("This run cannot train on the CPU: {problems}. Pick a GPU above or change these fields.",
                          "Lần chạy này không huấn luyện được trên CPU: {problems}. Hãy chọn GPU ở trên hoặc đổi các "
                          "trường này."),
    "train.est_planned_fits": ("On the {budget:g} GiB GPU this preset is sized for, the predicted peak is {peak:.1f} "
                               "GiB: it fits.", "Trên GPU {budget:g} GiB mà cấu hình này nhắm tới, đỉnh dự kiến là "
                               "{peak:.1f} GiB: vừa."),
    "train.est_planned_too_big": ("On the {budget:g} GiB GPU this preset is sized for, the predicted peak is "
                                  "{peak:.1f} GiB: it does NOT fit.", "Trên GPU {budget:g} GiB mà cấu hình này nhắm "
                                  "tới, đỉnh dự kiến là {peak:.1f} GiB: KHÔNG vừa."),
    "train.est_no_budget": ("For a GPU estimate here, set planner.gpu_mem_gib (Advanced) to the memory of the GPU you "
                            "plan for, or pick a preset sized for one (-24gb, -48gb, -80gb).",
                            "Để ước tính cho GPU tại đây, đặt planner.gpu_mem_gib (Nâng cao) bằng bộ nhớ của GPU bạn "
                            "định dùng, hoặc chọn cấu hình theo cỡ (-24gb, -48gb, -80gb)."),
    "train.dataset": ("Dataset: **{name}** ({format}, {rows} valid rows), from the Data tab.",
                      "Dữ liệu: **{name}** ({format}, {rows} dòng hợp lệ), từ thẻ Dữ liệu."),
    "train.dataset_preset": ("Dataset: **{name}**, the preset's own; load another in the Data tab.",
                             "Dữ liệu: **{name}**, của cấu hình có sẵn; nạp tệp khác ở thẻ Dữ liệu."),
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
    "mon.preparing": ("**{state}** · preparing: {stage} ({message})", "**{state}** · đang chuẩn bị: {stage} ({message})"),
    "mon.retry": ("Out-of-memory retry {n}: {change}", "Thử lại lần {n} do hết bộ nhớ: {change}"),
    "stage.planning": ("planning", "lập kế hoạch"), "stage.loading_data": ("loading data", "nạp dữ liệu"),
    "stage.rendering": ("rendering data", "dựng dữ liệu"), "stage.loading_model": ("loading the model", "nạp mô hình"),
    "mon.job_error": ("✖ {error}", "✖ {error}"),
    "mon.stopping": ("Stopping {job}: it saves a checkpoint, then exits.", "Đang dừng {job}: lưu checkpoint rồi thoát."),
    "mon.loss": ("Loss", "Loss"), "mon.system": ("Learning rate, speed, memory", "Tốc độ học, tốc độ, bộ nhớ"), "mon.train_loss": ("train", "huấn luyện"), "mon.eval_loss": ("eval", "đánh giá"),
    "mon.attempt": ("train, attempt {n}", "huấn luyện, lần {n}"),
    "mon.step": ("step", "bước"), "mon.lr": ("learning rate", "tốc độ học"), "mon.tps": ("tokens/s", "token/giây"),
    "mon.gpu_mem": ("GPU memory (GiB)", "Bộ nhớ GPU (GiB)"),
    "mon.eval_title": ("Held-out metrics ({rows} rows)", "Chỉ số trên dữ liệu giữ lại ({rows} dòng)"),
    "mon.eval_metric": ("metric", "chỉ số"), "mon.eval_base": ("base", "mô hình gốc"),
    "mon.eval_tuned": ("fine-tuned", "đã tinh chỉnh"), "mon.eval_tuned_at": ("fine-tuned (step {step})", "đã tinh chỉnh (bước {step})"),
    "mon.eval_change": ("change", "thay đổi"), "mon.eval_lower": ("lower is better", "càng thấp càng tốt"),
    "mon.samples": ("Sample answers by step (newest first)", "Câu trả lời mẫu theo bước (mới nhất trước)"),
    "mon.no_gpu": ("No GPU: this job<br>trains on the CPU", "Không có GPU:<br>công việc này<br>huấn luyện trên CPU"),
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
    "jobs.col.id": ("id", "mã"), "jobs.col.name": ("name", "tên"), "jobs.col.state": ("state", "trạng thái"),
    "jobs.col.devices": ("devices", "thiết bị"), "jobs.col.created": ("created", "tạo lúc"),
    "jobs.col.duration": ("duration", "thời lượng"), "jobs.col.final_loss": ("final loss", "loss cuối"),
    "jobs.col.reason": ("reason", "lý do"),
    "jobs.compare": ("Compare jobs", "So sánh công việc"),
    "jobs.compare_pick": ("Jobs to compare", "Các công việc cần so sánh"),
    "jobs.compare_run": ("Compare", "So sánh"),
    "jobs.compare_title": ("Loss, eval loss and held-out metrics by step (step 0 = base model)",
                           "Loss, loss đánh giá và chỉ số trên dữ liệu giữ lại theo bước (bước 0 = mô hình gốc)"),
    "jobs.curve_loss": ("train loss", "loss huấn luyện"), "jobs.curve_eval_loss": ("eval loss", "loss đánh giá"),
    "jobs.compare_diff": ("Config keys that differ", "Các khoá cấu hình khác nhau"),
    "jobs.compare_need": ("Pick at least one of your jobs.", "Hãy chọn ít nhất một công việc của bạn."),
    "jobs.compare_same": ("The configs are identical (apart from the output folder).",
                          "Các cấu hình giống hệt nhau (trừ thư mục đầu ra)."),
    "jobs.pick_first": ("Pick a job first.", "Hãy chọn một công việc trước."),
    "jobs.failed": ("✖ {error}", "✖ {error}"),
    "jobs.resumed": ("Job {job} queued again; it continues from checkpoint {checkpoint}.",
                     "Công việc {job} được xếp hàng lại; tiếp tục từ checkpoint {checkpoint}."),
    "jobs.resumed_fresh": ("Job {job} queued again; it has no checkpoint, so it starts over from step 0.",
                           "Công việc {job} được xếp hàng lại; chưa có checkpoint nên chạy lại từ bước 0."),
    "jobs.deleted": ("Job {job} deleted with its files.", "Đã xoá công việc {job} cùng các tệp."),
    # Chat
    "chat.base_model": ("Base model", "Mô hình gốc"),
    "chat.base_info": ("Used when no job is picked.", "Dùng khi không chọn công việc."),
    "chat.job": ("Fine-tuned job", "Công việc đã tinh chỉnh"),
    "chat.job_info": ("A completed job: its base answers on the left, the tuned model on the right.",
                      "Một công việc đã xong: mô hình gốc trả lời bên trái, mô hình tinh chỉnh bên phải."),
    "chat.refresh": ("Refresh", "Làm mới"), "chat.max_new": ("Max new tokens", "Số token tối đa"),
    "chat.base": ("Base", "Gốc"), "chat.tuned": ("Fine-tuned", "Đã tinh chỉnh"),
    "chat.prompt": ("Notice", "Tin nhắn"), "chat.prompt_ph": ("Ask both models…", "Hỏi cả hai mô hình…"),
    "chat.send": ("Send", "Gửi"), "chat.clear": ("Clear", "Xoá"),
    "chat.empty": ("Type a message first.", "Hãy nhập tin nhắn trước."),
    "chat.thinking": ("Answering… (the first message loads the models)",
                      "Đang trả lời… (tin nhắn đầu tiên sẽ nạp mô hình)"),
    "chat.failed": ("✖ {error}", "✖ {error}"),
    # Export
    "export.job": ("Job (completed, or stopped with a checkpoint)", "Công việc (đã xong, hoặc đã dừng và có checkpoint)"), "export.refresh": ("Refresh", "Làm mới"),
    "export.adapter": ("Download the adapter (zip)", "Tải adapter (zip)"),
    "export.merge": ("Merge into the base model and download (zip)", "Gộp vào mô hình gốc và tải (zip)"),
    "export.file": ("Export", "Tệp xuất"),
    "export.dtype": ("Merged weights dtype", "Kiểu số của trọng số đã gộp"),
    "export.dtype_info": ("auto = the base model's; fp32 keeps every update of the adapter.",
                          "auto = như mô hình gốc; fp32 giữ mọi cập nhật của adapter."),
    "export.gguf_type": ("GGUF type", "Kiểu GGUF"),
    "export.gguf_info": ("For llama.cpp, Ollama, LM Studio: f16/bf16 full precision, q8_0 half the size.",
                         "Cho llama.cpp, Ollama, LM Studio: f16/bf16 đủ độ chính xác, q8_0 nhỏ bằng một nửa."),
    "export.gguf": ("Export GGUF + Ollama Modelfile (zip)", "Xuất GGUF + Modelfile của Ollama (zip)"),
    "export.check": ("Merge check ({dtype}, from {source}): logits differ from base + adapter by at most {diff:.4g}; "
                     "greedy answers agree on {agree}/{prompts} prompts.",
                     "Kiểm tra gộp ({dtype}, từ {source}): logit lệch so với gốc + adapter tối đa {diff:.4g}; "
                     "câu trả lời tham lam trùng trên {agree}/{prompts} câu hỏi."),
    "export.check_material": ("⚠ Rounding to {dtype} changed the model: export the merged model in fp32 to keep it exactly.",
                              "⚠ Làm tròn về {dtype} đã làm mô hình thay đổi: hãy xuất mô hình gộp ở fp32 để giữ nguyên."),
    "export.pick_first": ("Pick a job first.", "Hãy chọn một công việc trước."),
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
    # Presets (the files describe them in English)
    "preset.planned": ("the planner picks LoRA or QLoRA, checkpointing and micro-batch for your GPU",
                       "bộ lập kế hoạch chọn LoRA hoặc QLoRA, checkpoint và micro-batch cho GPU của bạn"),
    "preset.sized": ("{method} for a {gb} GB GPU", "{method} cho GPU {gb} GB"),
    "preset.llama-3.1-8b-instruct": ("Llama-3.1-8B-Instruct: Meta's general chat model, 128k vocabulary, many languages",
                                     "Llama-3.1-8B-Instruct: mô hình trò chuyện tổng quát của Meta, từ vựng 128k, "
                                     "nhiều ngôn ngữ"),
    "preset.mistral-7b-instruct-v0.3": ("Mistral-7B-Instruct-v0.3: compact European-made chat model, good at English "
                                        "and code", "Mistral-7B-Instruct-v0.3: mô hình trò chuyện gọn nhẹ của châu Âu, "
                                        "giỏi tiếng Anh và lập trình"),
    "preset.qwen2.5-7b-instruct": ("Qwen2.5-7B-Instruct: general chat and instructions, strong in English and Chinese",
                                   "Qwen2.5-7B-Instruct: trò chuyện và làm theo chỉ dẫn, mạnh về tiếng Anh và tiếng "
                                   "Trung"),
    "preset.qwen3-8b": ("Qwen3-8B (thinking on): answers with a visible reasoning trace (<think>); longer sequences",
                        "Qwen3-8B (bật suy luận): trả lời kèm phần suy luận hiển thị (<think>); chuỗi dài hơn"),
    "preset.qwen3-8b-nothink": ("Qwen3-8B (thinking off): direct answers without a reasoning trace",
                                "Qwen3-8B (tắt suy luận): trả lời trực tiếp, không có phần suy luận"),
    "preset.vistral-7b-chat": ("Vistral-7B-Chat: Vietnamese chat model (Mistral extended with Vietnamese vocabulary)",
                               "Vistral-7B-Chat: mô hình trò chuyện tiếng Việt (Mistral mở rộng từ vựng tiếng Việt)"),
    "preset.smollm2-135m-demo": ("Tiny offline demo: teaches SmolLM2-135M the sample Alpaca answers on a CPU",
                                 "Bản thử nhỏ chạy ngoại tuyến: dạy SmolLM2-135M các câu trả lời Alpaca mẫu trên CPU"),
    # Config form sections
    "cfg.section.model": ("**Model**", "**Mô hình**"), "cfg.section.data": ("**Data**", "**Dữ liệu**"),
    "cfg.section.template": ("**Template and lengths**", "**Mẫu hội thoại và độ dài**"), "cfg.section.lora": ("**LoRA**", "**LoRA**"),
    "cfg.section.train": ("**Training**", "**Huấn luyện**"), "cfg.section.sync": ("**Devices and sync**", "**Thiết bị và đồng bộ**"),
    "cfg.section.output": ("**Output**", "**Đầu ra**"), "cfg.section.planner": ("**Memory planner**", "**Bộ lập kế hoạch bộ nhớ**"),
    "cfg.section.eval": ("**Held-out evaluation**", "**Đánh giá trên dữ liệu giữ lại**"),
    "cfg.section.qlora": ("**QLoRA**", "**QLoRA**"), "cfg.section.run": ("**Run**", "**Lần chạy**"),
    "cfg.advanced": ("Advanced", "Nâng cao"),
    "cfg.section.preference": ("**Preference tuning (DPO, ORPO, SimPO, KTO)**",
                               "**Tinh chỉnh theo ưu tiên (DPO, ORPO, SimPO, KTO)**"),
}

# Config keys: (English label, Vietnamese label); the dotted key is shown in the hint below it.
_FIELD_LABELS: dict[str, tuple[str, str]] = {
    "name": ("Run name", "Tên lần chạy"), "description": ("Description", "Mô tả"),
    "method": ("Method", "Phương pháp"),
    "model.name_or_path": ("Base model", "Mô hình gốc"), "model.engine": ("Engine", "Bộ máy"),
    "model.attn_implementation": ("Attention", "Cơ chế attention"),
    "model.trust_remote_code": ("Trust remote code", "Tin mã từ xa"),
    "model.offline_tokenizer": ("Offline tokenizer", "Tokenizer ngoại tuyến"),
    "data.eval_path": ("Eval dataset", "Dữ liệu đánh giá"), "data.eval_ratio": ("Eval ratio", "Tỉ lệ đánh giá"),
    "template.name": ("Chat template", "Mẫu hội thoại"), "template.loss": ("Trained tokens", "Token được huấn luyện"),
    "template.max_seq_len": ("Max sequence length", "Độ dài chuỗi tối đa"),
    "template.overflow": ("Too-long rows", "Dòng quá dài"), "template.min_tokens": ("Min tokens", "Token tối thiểu"),
    "template.max_tokens": ("Max tokens", "Token tối đa"), "template.system_prompt": ("System prompt", "Lời nhắc hệ thống"),
    "template.enable_thinking": ("Thinking (Qwen3)", "Suy luận (Qwen3)"), "template.packing": ("Packing", "Đóng gói"),
    "lora.r": ("LoRA rank", "Hạng LoRA"), "lora.alpha": ("LoRA alpha", "Alpha LoRA"),
    "lora.dropout": ("LoRA dropout", "Dropout LoRA"), "lora.target_modules": ("Target modules", "Mô-đun đích"),
    "lora.rslora": ("rsLoRA", "rsLoRA"),
    "qlora.quant_type": ("4-bit type", "Kiểu 4-bit"), "qlora.double_quant": ("Double quantization", "Lượng tử hoá kép"),
    "qlora.compute_dtype": ("Compute dtype", "Kiểu dữ liệu tính toán"),
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
    "train.keep_checkpoints": ("Checkpoints kept", "Số checkpoint giữ lại"),
    "train.log_every": ("Log every", "Ghi log mỗi"), "train.tensorboard": ("TensorBoard", "TensorBoard"),
    "train.wandb": ("Weights & Biases", "Weights & Biases"), "train.wandb_project": ("W&B project", "Dự án W&B"),
    "sync.backend": ("Gradient sync", "Đồng bộ gradient"), "sync.sharding": ("Sharding", "Phân mảnh"),
    "sync.bucket_mb": ("Bucket size (MB)", "Kích thước gói (MB)"), "sync.wire_dtype": ("Wire dtype", "Kiểu dữ liệu truyền"),
    "sync.timeout_s": ("Rank timeout (s)", "Thời gian chờ rank (giây)"),
    "data.strict": ("Strict", "Nghiêm ngặt"), "output.merge": ("Merge at the end", "Gộp khi kết thúc"),
    "eval.metrics": ("Metrics", "Chỉ số"), "eval.max_rows": ("Rows answered", "Số dòng trả lời"),
    "eval.max_new_tokens": ("Max answer tokens", "Số token trả lời tối đa"),
    "eval.batch_size": ("Generation batch", "Batch sinh văn bản"), "eval.temperature": ("Temperature", "Nhiệt độ"),
    "eval.top_p": ("Top-p", "Top-p"), "eval.samples": ("Sample rows shown", "Số dòng mẫu hiển thị"),
    "eval.sample_prompts": ("Sample prompts", "Lời nhắc mẫu"),
    "planner.gpu_mem_gib": ("GPU memory budget (GiB)", "Ngân sách bộ nhớ GPU (GiB)"),
    "planner.headroom_gib": ("Headroom (GiB)", "Dự phòng (GiB)"),
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
    "model.offline_tokenizer": (None, "Một tokenizer cục bộ cùng họ mà bản xem trước dùng khi không kết nối được hub."),
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
    "train.keep_checkpoints": (None, "Số checkpoint giữ lại: N cái mới nhất, cộng cái có loss đánh giá tốt nhất."),
    "sync.backend": (None, "auto = nccl giữa các GPU, shm cho các worker CPU."),
    "sync.timeout_s": (None, "Rank im lặng quá thời gian này bị coi là đã chết."),
    "output.merge": (None, "Ghi thêm safetensors đã gộp khi kết thúc."),
    "eval.metrics": ("Measured on the held-out rows at each eval, base → fine-tuned: exact_match, token_f1, rouge_l, "
                     "bleu, chrf and numeric (MAE of the first number) answer the prompts; perplexity uses the eval loss.",
                     "Đo trên các dòng giữ lại ở mỗi lần đánh giá, gốc → đã tinh chỉnh: exact_match, token_f1, rouge_l, "
                     "bleu, chrf và numeric (MAE của số đầu tiên) trả lời các lời nhắc; perplexity dùng loss đánh giá."),
    "eval.max_rows": (None, "Số dòng giữ lại được trả lời ở mỗi lần đánh giá (các dòng đầu)."),
    "eval.max_new_tokens": (None, "Câu trả lời dài nhất, tính bằng token."),
    "eval.batch_size": (None, "Số lời nhắc sinh cùng lúc (đệm bên trái)."),
    "eval.temperature": (None, "0 = trả lời tham lam (greedy); lớn hơn 0 thì lấy mẫu (hạt giống train.seed)."),
    "eval.top_p": (None, "Lấy mẫu nucleus khi nhiệt độ > 0."),
    "eval.samples": (None, "Số dòng giữ lại có câu trả lời hiện ở thẻ Theo dõi mỗi lần đánh giá."),
    "eval.sample_prompts": ("Your own prompts, one a line, answered at each eval.",
                            "Lời nhắc của bạn, mỗi dòng một lời nhắc, được trả lời mỗi lần đánh giá."),
    "train.wandb": (None, "Ghi thêm lên Weights & Biases, tệp của lần chạy ở <output.dir>/wandb (WANDB_MODE=offline: không cần tài khoản)."),
    "train.wandb_project": (None, "Dự án Weights & Biases của lần chạy."),
    "planner.gpu_mem_gib": (None, "Ngân sách mỗi GPU cho các trường auto (trống = tự phát hiện)."),
    "name": ("Names the job in the Monitor, Jobs and Chat tabs.", "Tên công việc ở các thẻ Theo dõi, Công việc và Trò chuyện."),
    "description": ("A note for yourself; not used in training.", "Ghi chú cho bạn; không dùng khi huấn luyện."),
    "train.epochs": (None, "Số lượt qua dữ liệu khi max_steps là -1 (cho phép số lẻ)."),
    "template.max_seq_len": ("Longest row in tokens after rendering; longer rows are cut or dropped.",
                             "Dòng dài nhất tính bằng token sau khi dựng; dòng dài hơn bị cắt hoặc loại."),
    "model.attn_implementation": (None, "Nhân attention của bộ máy hf (auto = mặc định của transformers, SDPA)."),
    "model.trust_remote_code": (None, "Chạy mã mô hình đi kèm mô hình (chỉ với mô hình bạn tin tưởng)."),
    "data.eval_path": (None, "Một tệp đánh giá riêng (cùng định dạng với dữ liệu); thay cho eval_ratio."),
    "template.min_tokens": (None, "Loại các dòng ngắn hơn số token này."),
    "template.max_tokens": (None, "Loại các dòng dài hơn số token này (trống = không giới hạn dưới max_seq_len)."),
    "template.packing": (None, "Ghép nhiều dòng vào một chuỗi không cần đệm (attention vẫn trong từng dòng)."),
    "lora.dropout": (None, "Dropout trên đầu vào của LoRA."),
    "lora.rslora": (None, "Hệ số LoRA ổn định theo hạng (alpha / sqrt(r))."),
    "qlora.quant_type": ("Used with method qlora: 4-bit type of the frozen weights (nf4 = QLoRA's NormalFloat).",
                         "Dùng với phương pháp qlora: kiểu 4-bit của trọng số đóng băng (nf4 = NormalFloat của QLoRA)."),
    "qlora.double_quant": ("Used with method qlora: also quantize the quantization constants (about 0.4 bits "
                           "per weight less).", "Dùng với phương pháp qlora: lượng tử hoá cả các hằng số lượng tử "
                           "(bớt khoảng 0,4 bit mỗi trọng số)."),
    "qlora.compute_dtype": ("Used with method qlora: dtype of each matmul (auto = the training precision).",
                            "Dùng với phương pháp qlora: kiểu dữ liệu của mỗi phép nhân ma trận (auto = độ chính "
                            "xác huấn luyện)."),
    "train.grad_accum": (None, "Số micro-batch mỗi bước tối ưu trên mỗi thiết bị."),
    "train.scheduler": (None, "Cách giảm tốc độ học sau giai đoạn khởi động."),
    "train.warmup_ratio": (None, "Khởi động theo tỉ lệ của tổng số bước (dùng khi warmup_steps là 0)."),
    "train.warmup_steps": (None, "Số bước tăng tuyến tính tốc độ học từ 0 đến lr."),
    "train.optimizer": (None, "adamw (bản fused trên CUDA); các bản 8-bit và paged dùng bitsandbytes và cần CUDA."),
    "train.weight_decay": (None, "Suy giảm trọng số tách rời trên các ma trận (không trên norm hay bias)."),
    "train.precision": (None, "auto = bf16 trên GPU hỗ trợ (nếu không thì fp16), fp32 trên CPU."),
    "train.seed": (None, "Hạt giống cho khởi tạo LoRA, thứ tự dữ liệu, dropout và phần tách đánh giá."),
    "train.log_every": (None, "Ghi một sự kiện huấn luyện mỗi N bước."),
    "train.tensorboard": (None, "Ghi thêm log TensorBoard vào <output.dir>/tensorboard (cần gói tensorboard)."),
    "sync.bucket_mb": ("Gradients are exchanged in buckets of this size.", "Gradient được trao đổi theo gói cỡ này."),
    "sync.wire_dtype": ("Dtype of the gradients exchanged between ranks.", "Kiểu dữ liệu của gradient trao đổi giữa các rank."),
    "planner.headroom_gib": ("GPU memory the planner keeps free.", "Bộ nhớ GPU bộ lập kế hoạch để trống."),
    "sync.sharding": (None, "none = mỗi rank giữ cả mô hình (song song dữ liệu); fsdp = tham số, gradient và trạng thái "
                            "bộ tối ưu chia trên các rank bằng torch FSDP2 (bộ máy hf); auto = bộ lập kế hoạch chỉ "
                            "chia khi một GPU không chứa nổi."),
}

STRINGS: dict[str, dict[str, str]] = {
    lang: {k: v[i] for k, v in _STRINGS.items()} for i, lang in enumerate(LANGUAGES)}


def t(lang: str, key: str, **params: Any) -> str:
    table = STRINGS.get(lang, STRINGS["en"])
    text = table.get(key) or STRINGS["en"][key]
    return text.format(**params) if params else text


# The backend's messages (row errors, detection reasons, failure reasons) by language.
MESSAGE_TEXTS: dict[str, dict[str, str]] = {"en": ENGLISH, "vi": VIETNAMESE}


def say(lang: str, message: Notice) -> str:
    """A backend message in the user's language."""
    return message.render(MESSAGE_TEXTS.get(lang, ENGLISH))


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
        return pair[i] if pair else name
    if key.startswith("info:"):
        # The dotted key goes with the hint: it is what the YAML and `--set` call the field.
        name = key.removeprefix("info:")
        pair = _FIELD_INFO.get(name)
        text = (pair[i] or fallback) if pair else fallback
        return f"{name} · {text}" if text else name
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
