"""Preference data: detection with its reason, row errors with row numbers, pairs rendered by the SFT
template function with the prompt's ids shared exactly, the studio's views of them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer_backend.config import ConfigError, TemplateConfig
from trainer_backend.data import load_dataset
from trainer_backend.templates.pairs import build_preference_examples
from trainer_backend.train.inputs import check_objective_format

PAIRS = [
    {"prompt": "What is the capital of France?", "chosen": "Paris.", "rejected": "Berlin, I think."},
    {"prompt": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "2 + 2?"}],
     "chosen": [{"role": "assistant", "content": "4"}], "rejected": [{"role": "assistant", "content": "22"}]},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_paired_files_are_detected_with_the_reason(tmp_path):
    data = load_dataset(write_jsonl(tmp_path / "p.jsonl", PAIRS))
    assert data.format == "preference" and str(data.reason) == "columns prompt/chosen/rejected found → preference"
    assert [(c.row, [m.role for m in c.messages], c.rejected) for c in data.conversations] == [
        (0, ["user", "assistant"], "Berlin, I think."), (1, ["system", "user", "assistant"], "22")]
    mapped = load_dataset(write_jsonl(tmp_path / "m.jsonl", [{"q": "Hi", "good": "Hello", "bad": "Go"}]),
                          columns={"q": "prompt", "good": "chosen", "bad": "rejected"})
    assert mapped.format == "preference" and "after mapping q→prompt, good→chosen, bad→rejected" in str(mapped.reason)


def test_kto_files_are_detected_and_csv_labels_read(tmp_path):
    path = tmp_path / "k.csv"
    path.write_text("prompt,completion,label\nHi,Hello,true\nHi,Go away,False\n", encoding="utf-8")
    data = load_dataset(path)
    assert data.format == "kto" and str(data.reason) == "columns prompt/completion/label found → kto"
    assert [c.desirable for c in data.conversations] == [True, False]


def test_bad_rows_are_row_errors_with_their_row_and_field(tmp_path):
    rows = [PAIRS[0],
            {"prompt": "Same?", "chosen": "yes", "rejected": "yes"},
            {"prompt": "Empty?", "chosen": "  ", "rejected": "no"},
            {"prompt": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
             "chosen": "c", "rejected": "d"},
            {"prompt": "Two?", "chosen": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}],
             "rejected": "x"}]
    data = load_dataset(write_jsonl(tmp_path / "bad.jsonl", rows))
    assert [c.row for c in data.conversations] == [0]
    assert [str(e) for e in data.errors] == [
        "row 1, field 'rejected': chosen and rejected are identical: the pair teaches nothing",
        "row 2, field 'chosen': empty assistant turn",
        "row 3, field 'chosen': two assistant turns in a row; merge them or put a user turn between",
        "row 4, field 'chosen': must be a string or a list of exactly one {role: assistant, content: ...} message"]
    kto = load_dataset(write_jsonl(tmp_path / "k.jsonl", [{"prompt": "a", "completion": "b", "label": "yes"}]))
    assert [str(e) for e in kto.errors] == [
        "row 0, field 'label': must be true (desirable) or false (undesirable), got 'yes'"]


@pytest.mark.parametrize("name", ["smollm2", "qwen3"])
def test_pairs_share_the_prompt_ids_of_the_tokenizers_own_chat_template(tokenizers, tmp_path, name):
    tokenizer = tokenizers(name)
    data = load_dataset(write_jsonl(tmp_path / "p.jsonl", PAIRS))
    pairs, report = build_preference_examples(data.conversations, tokenizer, TemplateConfig())
    assert report.kept == 2 and report.dropped == {}
    for pair, raw in zip(pairs, data.conversations):
        prompt = [{"role": m.role, "content": m.content} for m in raw.prompt]
        prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                   return_dict=False)
        for side, text in (("chosen", raw.messages[-1].content), ("rejected", raw.rejected)):
            example = getattr(pair, side)
            full = tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": text}], tokenize=True,
                                                 return_dict=False)
            assert example.input_ids == full[:len(example.input_ids)]           # the template's own ids
            assert example.input_ids[:pair.prompt_len] == prompt_ids[:pair.prompt_len]
            assert not any(example.trained[:pair.prompt_len]) and all(example.trained[pair.prompt_len:])
            # The trained tokens: what the template renders after the generation prompt (Qwen3's empty
            # thinking block included, as in SFT), through the end-of-turn marker, nothing after it.
            assert tokenizer.decode(example.input_ids[pair.prompt_len:]).endswith(text + "<|im_end|>")
            assert len(full) > len(example.input_ids) or full[-1] == example.input_ids[-1]
        assert pair.chosen.input_ids[:pair.prompt_len] == pair.rejected.input_ids[:pair.prompt_len]


def test_truncation_keeps_or_drops_a_pair_whole_and_says_why(tokenizers, tmp_path):
    tokenizer = tokenizers("smollm2")
    long_prompt = {"prompt": "word " * 80, "chosen": "yes", "rejected": "no"}
    long_answers = {"prompt": "Hi", "chosen": "same start " * 30 + "A", "rejected": "same start " * 30 + "B"}
    data = load_dataset(write_jsonl(tmp_path / "p.jsonl", [PAIRS[0], long_prompt, long_answers]))
    pairs, report = build_preference_examples(data.conversations, tokenizer, TemplateConfig(max_seq_len=48))
    assert [p.row for p in pairs] == [0]
    assert [str(e) for e in report.issues] == [
        "row 1, field 'chosen': dropped: empty completion after truncation (the prompt fills template.max_seq_len)",
        "row 2, field 'rejected': dropped: chosen and rejected are identical after truncation"]
    _, dropping = build_preference_examples(data.conversations, tokenizer,
                                            TemplateConfig(max_seq_len=48, overflow="drop"))
    assert dropping.dropped == {"drop.too_long": 2}


def test_the_report_counts_the_tokens_truncation_cut_from_both_sequences_of_a_pair(tokenizers, tmp_path):
    tokenizer = tokenizers("smollm2")
    row = {"prompt": "Hi", "chosen": "good answer " * 30, "rejected": "bad reply " * 20}
    pairs, report = build_preference_examples(load_dataset(write_jsonl(tmp_path / "p.jsonl", [row])).conversations,
                                              tokenizer, TemplateConfig(max_seq_len=48))
    whole = [len(tokenizer.apply_chat_template([{"role": "user", "content": "Hi"},
                                                {"role": "assistant", "content": row[side]}],
                                               tokenize=True, return_dict=False)) for side in ("chosen", "rejected")]
    assert [len(pairs[0].chosen.input_ids), len(pairs[0].rejected.input_ids)] == [48, 48]
    assert (report.truncated, report.cut_tokens) == (1, whole[0] - 48 + whole[1] - 48)
    assert f"1 truncated ({report.cut_tokens} tokens cut)" in report.summary()


def test_kto_rows_carry_a_mismatched_sequence_for_the_kl_term(tokenizers, tmp_path):
    tokenizer = tokenizers("smollm2")
    rows = [{"prompt": f"Q{i}", "completion": f"A{i}", "label": i % 2 == 0} for i in range(3)]
    examples, _ = build_preference_examples(load_dataset(write_jsonl(tmp_path / "k.jsonl", rows)).conversations,
                                            tokenizer, TemplateConfig())
    for e, other in zip(examples, examples[-1:] + examples[:-1]):   # row i with row i-1's completion
        assert e.kl.input_ids == e.sequence.input_ids[:e.prompt_len] + other.sequence.input_ids[other.prompt_len:]
        assert e.kl.trained == [False] * e.prompt_len + [True] * (len(other.sequence.input_ids) - other.prompt_len)
    assert [e.desirable for e in examples] == [True, False, True]


def test_an_objective_refuses_a_file_of_the_other_kind():
    check_objective_format("dpo", "preference", "p.jsonl")
    check_objective_format("kto", "kto", "k.jsonl")
    check_objective_format("sft", "alpaca", "a.jsonl")
    with pytest.raises(ConfigError, match="'train.objective': dpo trains on preference rows .*a.jsonl is a alpaca"):
        check_objective_format("dpo", "alpaca", "a.jsonl")
    with pytest.raises(ConfigError, match="sft cannot train on p.jsonl, a preference file; set train.objective to "
                                          "dpo, orpo or simpo"):
        check_objective_format("sft", "preference", "p.jsonl")
    with pytest.raises(ConfigError, match="kto trains on kto rows"):
        check_objective_format("kto", "preference", "p.jsonl")


def test_config_example_documents_the_objective_and_its_parameters():
    from trainer_backend.commands.config import example_yaml

    text = example_yaml()
    assert "# The loss: sft (next-token loss" in text and "[sft | dpo | orpo | simpo | kto]\n  objective: sft" in text
    for line in ("beta: 0.1", "loss_type: sigmoid", "label_smoothing: 0.0", "simpo_gamma: 0.5", "orpo_lambda: 0.1",
                 "kto_desirable_weight: 1.0", "kto_undesirable_weight: 1.0"):
        assert f"\n  {line}\n" in text, line
    assert "[sigmoid | ipo | hinge | robust]" in text


def test_template_preview_shows_both_sequences_and_the_drops(smollm2_dir, tmp_path):
    from studio.preview import PreviewReport
    from studio.template_tab import checks, row_view
    from trainer_backend.serve.preview import analyze, parse_args

    path = write_jsonl(tmp_path / "p.jsonl", PAIRS + [{"prompt": "word " * 80, "chosen": "a", "rejected": "b"}])
    result = analyze(parse_args(["--data", str(path), "--model", str(smollm2_dir), "--template-config", TemplateConfig(max_seq_len=64).model_dump_json()]))
    first = result["examples"][0]
    assert [text for text, trained in first["runs"] if trained] == ["Paris.<|im_end|>"]
    assert [text for text, trained in first["rejected_runs"] if trained] == ["Berlin, I think.<|im_end|>"]
    assert [text for text, trained in first["runs"] if not trained] == \
        [text for text, trained in first["rejected_runs"] if not trained]          # one prompt, masked in both
    report = PreviewReport.from_json(result)
    lines = checks(report, "en")
    assert "⚠ 1 rows dropped: empty completion after truncation (the prompt fills template.max_seq_len) (rows 2)." \
        in lines
    _, html = row_view(report, 0, "vi")
    assert "<b>Được chọn</b>" in html and "<b>Bị loại</b>" in html and html.count('class="tok-view"') == 2


def test_monitor_draws_the_preference_metrics():
    from studio.charts import absorb, has_preference, new_series, preference_figure

    s = new_series("job")
    absorb(s, [{"kind": "train", "step": 1, "loss": 0.7}])
    assert not has_preference(s)
    absorb(s, [{"kind": "train", "step": 2, "loss": 0.6, "rewards_chosen": 0.2, "rewards_rejected": -0.1,
                "reward_margin": 0.3, "reward_accuracy": 0.75, "nll_loss": 1.5, "log_odds_ratio": -0.6}])
    fig = preference_figure(s, "en")
    assert {tr.name: list(tr.y) for tr in fig.data} == {
        "chosen": [0.2], "rejected": [-0.1], "margin": [0.3], "Pairs ranked right": [0.75],
        "NLL (chosen)": [1.5], "log σ(odds ratio)": [-0.6]}


def test_planner_counts_both_sequences_of_a_pair_and_no_reference_weights():
    from trainer_backend.config import load_config
    from trainer_backend.planner.estimate import estimate_resolved

    sft = load_config("qwen2.5-7b-instruct-80gb", {"train.micro_batch_size": 2, "method": "lora",
                                                   "train.gradient_checkpointing": "on"})
    dpo = sft.with_overrides(["train.objective=dpo"])
    a, b = estimate_resolved(sft).breakdown, estimate_resolved(dpo).breakdown
    assert b["weights"] == a["weights"]                          # the reference adds no copy of the weights
    assert b["reference model (adapters disabled or precomputed)"] == 0.0
    assert b["activations"] == pytest.approx(2 * a["activations"], rel=1e-9)   # chosen + rejected per pair
    # the LM head scores a pass 512 positions at a time: one chunk's fp32 logits and their bf16 copy
    assert b["logits / cross-entropy"] == pytest.approx((4 + 2) * 512 * 152064 / 1024 ** 3, rel=1e-9)
    orpo = estimate_resolved(sft.with_overrides(["train.objective=orpo"])).breakdown
    assert "reference model (adapters disabled or precomputed)" not in orpo


def test_cli_preview_prints_both_sequences_of_a_pair(smollm2_dir, tmp_path, capsys):
    from trainer_backend.__main__ import main

    path = write_jsonl(tmp_path / "p.jsonl", PAIRS[:1])
    assert main(["preview", "--data", str(path), "--model", str(smollm2_dir)]) == 0
    out = capsys.readouterr().out
    assert "--- row 0 chosen:" in out and "[[Paris.<|im_end|>]]" in out
    assert "--- row 0 rejected:" in out and "[[Berlin, I think.<|im_end|>]]" in out
    assert main(["preview", "--data", str(path), "--model", str(smollm2_dir), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["chosen"]["input_ids"][:row["prompt_len"]] == row["rejected"]["input_ids"][:row["prompt_len"]]
