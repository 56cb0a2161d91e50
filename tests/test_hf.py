"""Model configs from Hugging Face, nanoGPT and litgpt: exact parameter counts against published numbers.

The expected counts are the models' published totals (Hub safetensors metadata, model cards, technical
reports), not values computed by timelaw; the config.json fixtures are the public files (tests/data/README.md).
"""
import json
from pathlib import Path

import pytest

from timelaw import TransformerConfig, count_params
from timelaw.configs import UnsupportedConfigError, from_nanogpt, load_model_config

HF = Path(__file__).parent / "data" / "hf"

PUBLISHED = {
    "tinyllama-1.1b": 1_100_048_384,
    "llama-2-7b": 6_738_415_616,
    "llama-3-8b": 8_030_261_248,
    "llama-3.2-1b": 1_235_814_400,
    "qwen2.5-0.5b": 494_032_768,
    "qwen2.5-7b": 7_615_616_512,
    "gpt2": 124_439_808,
    "olmo-1b": 1_176_764_416,
    "olmo-7b": 6_888_095_744,
    "gemma-2b": 2_506_172_416,
    "gemma-7b": 8_537_680_896,  # head_dim 256 x 16 heads over a 3072 residual
    "mistral-nemo-base-2407": 12_247_782_400,  # head_dim 128 x 32 heads over a 5120 residual
}


def _load(name):
    return json.loads((HF / name / "config.json").read_text())


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_equals_the_published_count(name):
    assert count_params(TransformerConfig.from_hf(HF / name / "config.json")).total == PUBLISHED[name]


def test_mistral_within_its_sliding_window_is_exact_and_refused_beyond_it():
    # A 4096-token window over a context of at most 4096 tokens is full causal attention.
    cfg = TransformerConfig.from_hf(HF / "mistral-7b-v0.1", seq_len=4096)
    assert count_params(cfg).total == 7_241_732_096
    with pytest.raises(UnsupportedConfigError, match="sliding_window"):
        TransformerConfig.from_hf(HF / "mistral-7b-v0.1")  # max_position_embeddings 32768 > window


def test_family_traits_are_filled_in():
    llama = TransformerConfig.from_hf(_load("llama-3-8b"))
    assert (llama.n_kv_heads, llama.d_ff, llama.mlp, llama.norm, llama.positions) == (8, 14336, "swiglu", "rmsnorm", "rotary")
    assert (llama.tied_embeddings, llama.bias, llama.seq_len) == (False, False, 8192)
    qwen = TransformerConfig.from_hf(_load("qwen2.5-0.5b"), seq_len=2048)
    assert (qwen.bias, qwen.tied_embeddings, qwen.seq_len) == ("qkv", True, 2048)
    gpt2 = TransformerConfig.from_hf(_load("gpt2"))
    assert (gpt2.bias, gpt2.norm, gpt2.positions, gpt2.mlp, gpt2.d_ff) == (True, "layernorm", "learned", "gelu", 3072)
    assert TransformerConfig.from_hf(_load("olmo-1b")).norm == "nonparametric_layernorm"
    assert TransformerConfig.from_hf(_load("gemma-2b")).mlp == "geglu"


@pytest.mark.parametrize("change, field", [
    ({}, "num_local_experts"),  # Mixtral as published
    ({"num_local_experts": None, "num_experts_per_tok": None, "model_type": "mistral"}, None),
])
def test_mixture_of_experts_is_refused_naming_the_field(change, field):
    data = {**_load("mixtral-8x7b-v0.1"), **change}
    if field is None:  # with the experts removed it is a dense Mistral with no window: accepted
        assert TransformerConfig.from_hf(data, seq_len=4096).n_kv_heads == 8
    else:
        with pytest.raises(UnsupportedConfigError, match=field):
            TransformerConfig.from_hf(data)


@pytest.mark.parametrize("change, field", [
    ({"model_type": "gpt_neox", "use_parallel_residual": True}, "use_parallel_residual"),
    ({"model_type": "falcon", "parallel_attn": True}, "parallel_attn"),
    ({"model_type": "phi", "partial_rotary_factor": 0.4}, "partial_rotary_factor"),
    ({"model_type": "olmo2"}, "model_type"),
    ({"attention_bias": True}, "attention_bias"),
    ({"hidden_act": "relu"}, "hidden_act"),
])
def test_unrepresentable_configs_are_refused_naming_the_field(change, field):
    with pytest.raises(UnsupportedConfigError, match=field):
        TransformerConfig.from_hf({**_load("tinyllama-1.1b"), **change})


def test_explicit_head_dim_is_kept_and_round_trips():
    gemma = TransformerConfig.from_hf(HF / "gemma-7b")
    assert (gemma.d_model, gemma.n_heads, gemma.head_dim) == (3072, 16, 256)
    assert TransformerConfig.model_validate_json(gemma.model_dump_json()) == gemma
    llama = TransformerConfig.from_hf(HF / "llama-3.2-1b")  # head_dim 64 = 2048 / 32: the default
    assert llama.head_dim == 64 and "head_dim" not in llama.model_dump()


def test_qwen_sliding_window_counts_only_when_enabled():
    data = {**_load("qwen2.5-0.5b"), "sliding_window": 4096}
    assert TransformerConfig.from_hf(data).seq_len == 32768  # use_sliding_window is false
    with pytest.raises(UnsupportedConfigError, match="sliding_window"):
        TransformerConfig.from_hf({**data, "use_sliding_window": True})


def test_bad_files_are_named(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text('{"model_type": "llama",')
    with pytest.raises(ValueError, match="config.json.*line 1"):
        TransformerConfig.from_hf(bad)
    with pytest.raises(ValueError, match="missing required field 'hidden_size'"):
        TransformerConfig.from_hf({"model_type": "llama"})
    with pytest.raises(ValueError, match="cannot read"):
        TransformerConfig.from_hf(tmp_path / "missing.json")


def test_gpt2_seq_len_beyond_its_position_table_is_refused():
    with pytest.raises(ValueError, match="n_positions"):
        TransformerConfig.from_hf(_load("gpt2"), seq_len=2048)
    with pytest.warns(UserWarning, match="n_positions"):
        TransformerConfig.from_hf(_load("gpt2"), seq_len=512)


def test_nanogpt_gpt2_config_gives_gpt2_count(tmp_path):
    # nanoGPT's from_pretrained('gpt2') arguments; its README quotes 124M. vocab 50257 as in the OpenAI weights.
    args = dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, block_size=1024, bias=True)
    assert count_params(from_nanogpt(args)).total == 124_439_808
    assert count_params(TransformerConfig.from_nanogpt({"model_args": args})).total == 124_439_808
    script = tmp_path / "train_shakespeare_char.py"  # the shape of nanoGPT's config/train_shakespeare_char.py
    script.write_text("out_dir = 'out-shakespeare-char'\nn_layer = 6\nn_head = 6\nn_embd = 384\n"
                      "dropout = 0.2\nblock_size = 256 # context of up to 256 previous characters\n"
                      "import time\nwandb_run_name = 'mini-gpt' + str(time.time())\n")
    cfg = load_model_config(script)
    assert (cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.seq_len, cfg.vocab_size, cfg.bias) == (384, 6, 6, 256, 50304, True)


LITGPT_TINYLLAMA = """\
name: tiny-llama-1.1b
hf_config: {name: TinyLlama-1.1B-intermediate-step-1431k-3T, org: TinyLlama}
scale_embeddings: false
block_size: 2048
vocab_size: 32000
padding_multiple: 64
padded_vocab_size: 32000
n_layer: 22
n_head: 32
head_size: 64
n_embd: 2048
rotary_percentage: 1.0
parallel_residual: false
bias: false
lm_head_bias: false
n_query_groups: 4
shared_attention_norm: false
norm_class_name: RMSNorm
norm_eps: 1.0e-05
mlp_class_name: LLaMAMLP
gelu_approximate: none
intermediate_size: 5632
rope_condense_ratio: 1
rope_base: 10000
n_expert: 0
n_expert_per_token: 0
"""


def test_litgpt_model_config_yaml(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "model_config.yaml"
    path.write_text(LITGPT_TINYLLAMA)
    assert count_params(TransformerConfig.from_litgpt(path)).total == 1_100_048_384
    assert load_model_config(tmp_path).n_kv_heads == 4
    path.write_text(LITGPT_TINYLLAMA.replace("parallel_residual: false", "parallel_residual: true"))
    with pytest.raises(UnsupportedConfigError, match="parallel_residual"):
        TransformerConfig.from_litgpt(path)
    path.write_text(LITGPT_TINYLLAMA.replace("n_expert: 0", "n_expert: 8"))
    with pytest.raises(UnsupportedConfigError, match="n_expert"):
        TransformerConfig.from_litgpt(path)


def test_config_json_of_timelaw_fields_also_loads(tmp_path):
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"d_model": 256, "n_layers": 4, "n_heads": 4, "bias": "qkv"}))
    assert load_model_config(path, seq_len=128) == TransformerConfig(d_model=256, n_layers=4, n_heads=4,
                                                                     bias="qkv", seq_len=128)


def test_optimize_keeps_the_base_config_block_options(capsys):
    from timelaw.cli import main

    assert main(["optimize", "--config", str(HF / "gpt2"), "--hours", "0.05", "--max-params", "5e7",
                 "--profile", "a100-sxm-80gb", "--json"]) == 0
    best = json.loads(capsys.readouterr().out)["best"]["config"]
    gpt2 = _load("gpt2")
    assert (best["vocab_size"], best["seq_len"]) == (gpt2["vocab_size"], gpt2["n_positions"])
    assert (best["bias"], best["positions"], best["norm"], best["tied_embeddings"], best["mlp"]) == \
        (True, "learned", "layernorm", True, "gelu")
    assert main(["optimize", "--config", str(HF / "qwen2.5-0.5b"), "--seq-len", "512", "--hours", "0.05",
                 "--max-params", "3e8", "--profile", "a100-sxm-80gb", "--json"]) == 0
    best = json.loads(capsys.readouterr().out)["best"]["config"]
    assert (best["vocab_size"], best["seq_len"], best["bias"], best["mlp"], best["norm"]) == \
        (151936, 512, "qkv", "swiglu", "rmsnorm")
