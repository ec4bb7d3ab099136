"""The Vietnamese text of every message the backend produces (trainer_backend/messages.py holds
the English and the keys; a test fails when a key has no text here or its placeholders differ).
Names a user types or a file holds (fields, roles, config keys, formats) stay as they are."""
from __future__ import annotations

VIETNAMESE: dict[str, str] = {
    "row.missing": "bị thiếu",
    "type.null": "null", "type.boolean": "giá trị đúng/sai", "type.number": "số", "type.string": "chuỗi",
    "type.list": "danh sách", "type.object": "đối tượng",
    "row.not_string": "phải là chuỗi, nhưng là {type}",
    "row.not_utf8": "chứa byte không phải UTF-8 hợp lệ; hãy lưu lại tệp dưới dạng UTF-8",
    "row.null_list": "phải là danh sách, nhưng là null",
    "row.not_json_list": "phải là danh sách (hoặc mảng JSON trong một ô văn bản), nhưng là chuỗi không phải JSON",
    "row.not_list": "phải là danh sách, nhưng là {type}",
    "row.no_chat_turn": "không có lượt user hay assistant nào",
    "row.system_not_first": "tin nhắn system phải đứng đầu",
    "row.start_not_user": "hội thoại phải bắt đầu bằng một lượt user (sau tin nhắn system nếu có)",
    "row.two_user_turns": "hai lượt user liền nhau; hãy gộp chúng hoặc thêm một lượt assistant ở giữa",
    "row.two_assistant_turns": "hai lượt assistant liền nhau; hãy gộp chúng hoặc thêm một lượt user ở giữa",
    "row.empty_turn": "lượt {role} rỗng",
    "row.end_not_assistant": "hội thoại phải kết thúc bằng một lượt assistant, không phải lượt {role}",
    "row.pair_length": "phải là một cặp [user, assistant], nhưng là danh sách dài {n}",
    "row.pair_type": "phải là một cặp [user, assistant], nhưng là {type}",
    "row.not_turn_object": "phải là một đối tượng có '{role_key}' và '{content_key}', nhưng là {type}",
    "row.unknown_role": "vai trò {role} không hợp lệ; hãy dùng {roles}",
    "row.empty_text": "văn bản rỗng",
    "row.not_completion": "phải là chuỗi hoặc danh sách gồm đúng một tin nhắn {{role: assistant, content: ...}}",
    "row.bad_label": "phải là true (mong muốn) hoặc false (không mong muốn), nhưng là {value}",
    "row.identical_pair": "chosen và rejected giống hệt nhau: cặp này không dạy được gì",
    "row.line_not_utf8": "dòng {line} không phải UTF-8 hợp lệ; hãy lưu lại tệp dưới dạng UTF-8",
    "row.line_not_json": "dòng {line} không phải JSON hợp lệ: {detail} (cột {column})",
    "row.line_refused": "dòng {line} {problem}",
    "row.duplicate_key": "có khoá '{name}' hai lần trong một đối tượng; hãy giữ một",
    "row.too_deep": "lồng quá sâu để đọc (hàng trăm cấp danh sách hoặc đối tượng); hãy làm phẳng nó",
    "row.not_object": "{where} là {type}, cần một đối tượng JSON",
    "row.where_line": "dòng {n}",
    "row.where_row": "hàng {n}",
    "row.csv_width": "dòng {line} có {values} giá trị nhưng tiêu đề có {columns} cột",
    "row.dropped": "bị loại: {reason} ({tokens} token, {trained} được huấn luyện)",
    "row.dropped_pair": "bị loại: {reason}",
    "row.at": "hàng {row}, trường '{field}': {message}",
    "row.not_prefix_stable": "tin nhắn {message}: mẫu không ổn định theo tiền tố với hàng này (lượt assistant được dựng "
                             "khác nhau khi là tin nhắn cuối và khi ở giữa hội thoại), nên không thể che token chính xác; "
                             "hãy sửa hàng, hoặc đặt template.name (--template) là một mẫu có tên theo định dạng hội thoại "
                             "của mô hình này",
    "row.template_rejected": "mẫu hội thoại từ chối hội thoại này: {detail}",
    "row.no_chat_template": "tokenizer không có mẫu hội thoại: hãy nạp nó bằng load_tokenizer(path, template=NAME)",
    "detail": "{detail}",
    "drop.template_error": "lỗi mẫu hội thoại",
    "drop.no_trained": "không có token nào được huấn luyện",
    "drop.no_trained_after_truncation": "không còn token được huấn luyện sau khi cắt",
    "drop.too_long": "dài hơn max_seq_len",
    "drop.too_short": "ngắn hơn min_tokens",
    "drop.over_max_tokens": "dài hơn max_tokens",
    "drop.prompt_differs": "mẫu dựng lời nhắc khác nhau trước chosen và rejected",
    "drop.identical_after_truncation": "chosen và rejected giống hệt nhau sau khi cắt",
    "drop.empty_after_truncation": "câu trả lời rỗng sau khi cắt (lời nhắc chiếm hết template.max_seq_len)",
    "file.no_rows": "không tìm thấy dòng nào",
    "file.nothing_to_train": "không còn dòng nào để huấn luyện ({summary}); hãy kiểm tra data.format, "
                             "template.max_seq_len và lỗi theo dòng trong train.log",
    "file.nothing_to_evaluate": "không có dòng hợp lệ để đánh giá ({n} dòng lỗi)",
    "file.no_readable_row": "không đọc được dòng nào ({n} lỗi); lỗi đầu tiên: {first}",
    "file.strict": "{first}; chế độ nghiêm ngặt dừng ở dòng lỗi đầu tiên",
    "file.strict_more": "{first} (và {more} lỗi khác trong dòng này); chế độ nghiêm ngặt dừng ở dòng lỗi đầu tiên",
    "file.missing": "không có tệp hay thư mục này",
    "file.one_object": "tệp là một đối tượng JSON duy nhất, không phải các dòng; hãy đặt các dòng trong một mảng JSON "
                       "[{{...}}, {{...}}] hoặc viết mỗi dòng một đối tượng (JSON lines)",
    "file.unsupported": "kiểu tệp '{suffix}' không được hỗ trợ; hãy dùng .json, .jsonl, .csv, .tsv, .parquet hoặc một "
                        "thư mục save_to_disk của datasets",
    "file.no_extension": "không có phần mở rộng",
    "file.unreadable": "không đọc được tệp ({detail})",
    "file.bad_json": "không phải JSON hợp lệ ở dòng {line}, cột {column}: {detail}",
    "file.refused": "tệp {problem}",
    "file.empty": "tệp rỗng",
    "file.csv_header": "không đọc được dòng tiêu đề CSV: {detail}",
    "file.csv_open_quote": "dòng {line} mở một trường trong dấu ngoặc kép nhưng không bao giờ đóng; hãy thêm dấu đóng, "
                           'hoặc viết dấu ngoặc kép bên trong trường là ""',
    "file.csv_error": "lỗi CSV ở dòng {line}: {detail}",
    "file.bad_parquet": "không phải tệp Parquet đọc được ({detail})",
    "file.bad_folder": "thư mục phải là một thư mục save_to_disk của datasets (không thấy dataset_info.json hay "
                       "dataset_dict.json)",
    "file.no_train_split": "có các phần {splits} và không có phần 'train'; hãy lưu riêng phần cần dùng",
    "file.hub_unreachable": "không tải được tập dữ liệu từ hub ({detail}); khi không có mạng, hãy nạp nó một lần trên "
                            "máy có mạng rồi chép bộ nhớ đệm datasets (HF_DATASETS_CACHE) sang đây, hoặc lưu nó thành "
                            "tệp JSONL hay thư mục save_to_disk và đặt data.path là nó",
    "file.map_unknown_field": "ánh xạ cột {source}={target}: '{target}' không phải trường của định dạng nào "
                              "(các trường: {fields})",
    "file.map_no_column": "ánh xạ cột {source}={target}: tệp không có cột '{source}' (các cột: {columns})",
    "file.map_clash": "ánh xạ cột {source}={target}: tệp đã có cột '{target}'; hãy ánh xạ hoặc bỏ một trong hai",
    "file.unknown_format": "định dạng '{format}' không xác định; hãy dùng auto, {formats}",
    "file.undetected": "không nhận ra định dạng từ các cột ({columns}); cần instruction+output (alpaca), conversations "
                       "(sharegpt), messages, text, prompt+chosen+rejected (preference) hoặc prompt+completion+label "
                       "(kto); hãy chọn định dạng và ánh xạ cột",
    "file.no_columns": "không có",
    "detect.given": "định dạng {format} theo lựa chọn",
    "detect.column": "có cột {columns} → {format}",
    "detect.columns": "có các cột {columns} → {format}",
    "detect.column_mapped": "có cột {columns} (sau khi ánh xạ {pairs}) → {format}",
    "detect.columns_mapped": "có các cột {columns} (sau khi ánh xạ {pairs}) → {format}",
    "preview.timeout": "bản xem trước chạy lâu hơn {seconds} giây",
    "config.unsloth_needs_cuda": "'model.engine': unsloth cần GPU CUDA mà lần chạy này ở trên {device}; hãy dùng "
                                 "engine: hf (hoặc auto)",
    "config.fp16_needs_cuda": "'train.precision': fp16 cần GPU CUDA; trên CPU hãy dùng fp32 hoặc bf16",
    "config.qlora_needs_cuda": "'method': qlora nạp mô hình 4-bit bằng bitsandbytes, vốn cần GPU CUDA; trên CPU hãy "
                               "dùng method: lora",
    "config.unsloth_qlora_fixed": "'qlora': bộ máy unsloth nạp trọng số 4-bit dạng nf4 với lượng tử hoá kép, tính theo "
                                  "train.precision; hãy giữ các thiết lập qlora đó hoặc dùng model.engine: hf",
    "config.optimizer_needs_cuda": "'train.optimizer': {optimizer} (bitsandbytes) cần GPU CUDA; trên CPU hãy dùng "
                                   "optimizer: adamw",
    "and": "{first}; {rest}",
    "config.invalid": "cấu hình không hợp lệ: {problems}",
    "config.unknown_key": "khoá '{key}' không tồn tại",
    "config.bad_value": "'{key}': {problem} (nhận được {value})",
    "config.not_sections": "cấu hình không hợp lệ: cấp trên cùng phải là các mục (section) gồm các khoá",
    "config.no_layer": "không nêu lớp nào; hãy liệt kê các lớp như [q_proj, v_proj] hoặc dùng all-linear",
    "config.steps": "phải là -1 (chạy theo epoch) hoặc một số bước dương",
    "config.batch": "phải >= 1 hoặc 'auto'",
    "config.no_device": "cần ít nhất một thiết bị",
    "config.mixed_devices": "trộn worker cpu và GPU",
    "config.gpu_twice": "liệt kê một GPU hai lần",
    "config.eval_needs_rows": "eval: các chỉ số và câu trả lời mẫu được đo trên các dòng giữ lại; hãy đặt "
                              "data.eval_ratio (vd 0.1) hoặc data.eval_path",
    "config.sharded_generation": "eval: câu trả lời được sinh bởi một rank, điều mà mô hình phân mảnh không làm được; "
                                 "với sync.sharding fsdp hãy giữ eval.metrics là perplexity và eval.samples là 0, hoặc "
                                 "chạy `python -m trainer_backend evaluate` trên công việc đã xong",
    "config.fsdp_qlora": "sync.sharding: fsdp không phân mảnh trọng số 4-bit (QLoRA) của bitsandbytes; hãy dùng method: "
                         "lora hoặc full với fsdp, hoặc sync.sharding: none cho QLoRA",
    "config.fsdp_unsloth": "sync.sharding: fsdp chạy trên bộ máy hf (nhân của Unsloth không hỗ trợ FSDP); hãy đặt "
                           "model.engine: auto hoặc hf, hoặc sync.sharding: none",
    "config.fsdp_shm": "sync.sharding: fsdp trao đổi các mảnh qua torch.distributed (nccl, gloo trên CPU); hãy đặt "
                       "sync.backend: auto hoặc nccl",
    "value.greater_than": "giá trị phải lớn hơn {gt}",
    "value.greater_than_equal": "giá trị phải lớn hơn hoặc bằng {ge}",
    "value.less_than": "giá trị phải nhỏ hơn {lt}",
    "value.less_than_equal": "giá trị phải nhỏ hơn hoặc bằng {le}",
    "value.literal_error": "giá trị phải là {expected}",
    "value.int_parsing": "giá trị phải là số nguyên, không đọc được chuỗi thành số nguyên",
    "value.int_from_float": "giá trị phải là số nguyên, nhưng là số có phần thập phân",
    "value.float_parsing": "giá trị phải là một số, không đọc được chuỗi thành số",
    "value.bool_parsing": "giá trị phải là true hoặc false, không hiểu được giá trị nhập",
    "job.oom": "hết bộ nhớ GPU ở bước {step} (train.micro_batch_size {micro_batch_size}, template.max_seq_len "
               "{max_seq_len}, phương pháp {method}): {levers}",
    "job.oom_exit": "hết bộ nhớ ({detail}): {levers}",
    "job.oom_levers": "hãy giảm train.micro_batch_size (tăng train.grad_accum để giữ batch hiệu dụng), bật "
                      "train.gradient_checkpointing, giảm template.max_seq_len, hoặc dùng method: qlora",
    "job.at": "{where}: {message}",
    "job.worker_killed": "{worker} bị dừng bởi {signal}; đã dừng mọi rank",
    "job.crash": "{error}: {detail}",
    "job.disk_full": "đĩa đầy khi đang {what}: hãy giải phóng chỗ trên đĩa đó (xoá công việc, checkpoint hoặc bản xuất "
                     "cũ), hoặc giảm train.keep_checkpoints; rồi tiếp tục công việc",
    "job.disk_full_at": "đĩa đầy khi đang {what} ({path}): hãy giải phóng chỗ trên đĩa đó (xoá công việc, checkpoint "
                        "hoặc bản xuất cũ), hoặc giảm train.keep_checkpoints; rồi tiếp tục công việc",
    "job.disk_full_after": "{full} (trình huấn luyện kết thúc với: {detail})",
    "job.while_training": "huấn luyện",
    "job.while_writing": "ghi các tệp của công việc",
    "job.while_checkpoint": "ghi checkpoint {name}",
    "job.diverged": "huấn luyện phân kỳ ở bước {step} ({detail}); bước này không được áp dụng và {kept}. Hãy giảm "
                    "train.lr (hiện {lr}), giữ train.max_grad_norm bật (hiện {max_grad_norm}), thêm train.warmup_steps, "
                    "hoặc dùng train.precision bf16/fp32 thay cho fp16",
    "job.diverged_kept": "checkpoint tốt cuối cùng {name} được giữ (tiếp tục sẽ chạy từ nó)",
    "job.diverged_none": "chưa có checkpoint nào được ghi",
    "job.diverged_exit": "phân kỳ: {detail}",
    "job.nan": "loss thành NaN hoặc vô cùng",
    "job.bad_loss": "loss {loss}",
    "job.bad_loss_norm": "loss {loss}, chuẩn gradient {norm}",
    "job.bad_weights": "các trọng số huấn luyện chứa NaN/inf",
    "job.stalled": "bị treo: không có tiến triển trong {seconds} giây khi đang {stage} (không sự kiện, không thời gian "
                   "CPU, không đọc ghi đĩa); trình huấn luyện đã bị dừng. Xem train.log; nếu máy chỉ đang rất bận, hãy "
                   "tiếp tục công việc hoặc tăng --stall-timeout của studio",
    "job.starting": "khởi động",
    "prep.reading": "đọc {path}",
    "prep.rendering": "dựng và tách token {n} dòng",
    "prep.planning": "phân giải cấu hình cho {device}",
    "prep.loading_model": "nạp {model} ({method})",
    "job.retry": "hết bộ nhớ: thử lại lần {n} với {change}",
    "job.retry_change": "micro_batch_size {micro} -> {half}, grad_accum {accum} -> {double} (batch hiệu dụng {batch} "
                        "mỗi thiết bị không đổi)",
    "job.stopped": "đã dừng theo yêu cầu; {resume}",
    "job.stopped_before_first_step": "đã dừng theo yêu cầu trước bước đầu tiên; {resume}",
    "job.stopped_killed": "đã dừng theo yêu cầu; bị buộc dừng sau thời gian chờ {grace} giây (bước hiện tại chưa được "
                          "lưu checkpoint); {resume}",
    "job.stopped_before_command": "đã dừng theo yêu cầu trước khi lệnh huấn luyện bắt đầu",
    "job.stopped_before_start": "đã dừng theo yêu cầu trước khi bắt đầu",
    "job.resume_from_zero": "chưa có checkpoint nào: tiếp tục sẽ bắt đầu lại từ bước 0",
    "job.resume_from": "tiếp tục sẽ chạy từ checkpoint {checkpoint}",
    "job.lost": "mất dấu: tiến trình giám sát ({pid}) không còn",
    "job.lost_disk_full": "mất dấu: tiến trình giám sát ({pid}) không còn khi đĩa của {workdir} đầy: hãy giải phóng "
                          "chỗ trống rồi tiếp tục công việc",
    "job.supervisor_error": "lỗi của tiến trình giám sát: {error}: {detail}",
    "job.no_start": "không khởi động được lệnh huấn luyện {command}: {detail}",
    "stage.planning": "lập kế hoạch", "stage.loading_data": "nạp dữ liệu", "stage.rendering": "dựng dữ liệu",
    "stage.loading_model": "nạp mô hình",
    "job.killed": "bị dừng bởi {signal} từ bên ngoài công việc",
    "job.killed_oom": "bị dừng bởi {signal} từ bên ngoài công việc (thường do hệ thống hết bộ nhớ)",
    "job.bad_input": "đầu vào sai: {detail}",
    "job.see_log": "xem train.log",
    "job.exit_code": "thoát với mã {code}",
}
