"""TransformerConfig from a Hugging Face `config.json`: exact for the dense decoder families timelaw models.

Supported `model_type`s: llama (Llama 2 and 3, TinyLlama), mistral, qwen2 (Qwen2, Qwen2.5), gpt2, olmo
and gemma. What each family implies and the config does not spell out (SwiGLU, RMSNorm, rotary positions,
biases on q/k/v only for Qwen2, OLMo's LayerNorm without weights, Gemma's gated GELU and tied embeddings)
is filled in here, so that `count_params(TransformerConfig.from_hf(cfg))` equals the real model's count.

A config naming something TransformerConfig cannot represent is refused with an UnsupportedConfigError
that names the field: mixture of experts, parallel attention and MLP, a sliding window narrower than the
context, partial rotary, q/k norms, an unknown model_type. Nothing is approximated. An explicit head_dim
(Gemma-7B, Mistral-Nemo) is kept.
"""
from __future__ import annotations

import warnings
from typing import Any, Mapping, Optional

from timelaw.config import TransformerConfig
from timelaw.configs.common import load_mapping, refuse, require

__all__ = ["from_hf", "SUPPORTED_MODEL_TYPES"]

# model_type -> (default of tie_word_embeddings, as in transformers' config class of that family)
_LLAMA_LIKE_TIED = {"llama": False, "mistral": False, "qwen2": False, "olmo": False, "gemma": True}
SUPPORTED_MODEL_TYPES = tuple(_LLAMA_LIKE_TIED) + ("gpt2",)

_EXPERT_FIELDS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts", "num_experts_per_tok")
_PARALLEL_FIELDS = ("parallel_attn", "use_parallel_residual", "parallel_residual", "parallel_block")
_QK_NORM_FIELDS = ("qk_layernorm", "qk_norm", "use_qk_norm")
_SILU = ("silu", "swish")
_GELU = ("gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "gelu_python", "gelu_accurate")


def from_hf(config: Any, seq_len: Optional[int] = None) -> TransformerConfig:
    """The TransformerConfig of a Hugging Face model config (a dict, a config.json path or a model folder).

    seq_len defaults to max_position_embeddings (n_positions for GPT-2); pass the context you train at.
    Raises UnsupportedConfigError naming the field when the model cannot be represented exactly.
    """
    data, source = load_mapping(config)
    _refuse_unrepresentable(data, source)
    model_type = data.get("model_type")
    if model_type == "gpt2":
        fields = _gpt2(data, source, seq_len)
    elif model_type in _LLAMA_LIKE_TIED:
        fields = _llama_like(data, source, model_type, seq_len)
    else:
        raise refuse(source, "model_type", model_type,
                     f"not a family timelaw maps exactly (supported: {', '.join(SUPPORTED_MODEL_TYPES)})")
    _check_window(data, source, fields["seq_len"])
    return _build(fields, source)


def _refuse_unrepresentable(data: Mapping, source: str) -> None:
    for name in _EXPERT_FIELDS:
        if data.get(name) not in (None, 0, 1):
            raise refuse(source, name, data[name], "a mixture-of-experts model")
    for name in _PARALLEL_FIELDS:
        if data.get(name):
            raise refuse(source, name, data[name], "attention and MLP run in parallel from one input")
    for name in _QK_NORM_FIELDS:
        if data.get(name):
            raise refuse(source, name, data[name], "norms on the queries and keys")
    for name in ("partial_rotary_factor", "rotary_pct"):
        if data.get(name) not in (None, 1, 1.0):
            raise refuse(source, name, data[name], "rotary positions on part of each head only")
    for name in ("is_encoder_decoder", "add_cross_attention"):
        if data.get(name):
            raise refuse(source, name, data[name], "timelaw models decoder-only transformers")


def _check_window(data: Mapping, source: str, seq_len: int) -> None:
    """A sliding window at least as wide as the context is full causal attention; a narrower one is not."""
    window = data.get("sliding_window")
    if window is None or data.get("use_sliding_window") is False:
        return
    if window < seq_len:
        raise refuse(source, "sliding_window", window,
                     f"attention limited to a window narrower than seq_len ({seq_len}); timelaw models full "
                     f"causal attention, so pass seq_len <= {window} to train within one window")


def _llama_like(data: Mapping, source: str, model_type: str, seq_len: Optional[int]) -> dict:
    d_model = require(data, source, "hidden_size")
    n_heads = require(data, source, "num_attention_heads")
    head_dim = data.get("head_dim")  # Gemma-7B, Mistral-Nemo: heads wider or narrower than hidden / heads
    act_field = "hidden_activation" if data.get("hidden_activation") is not None else "hidden_act"
    act = data.get(act_field, "silu")
    if act in _SILU:
        mlp = "swiglu"
    elif act in _GELU:
        mlp = "geglu"
    else:
        raise refuse(source, act_field, act, f"a gated MLP with this activation (known: {_SILU + _GELU})")
    fields = dict(
        d_model=d_model, n_layers=require(data, source, "num_hidden_layers"), n_heads=n_heads,
        n_kv_heads=data.get("num_key_value_heads") or n_heads, head_dim=head_dim,
        d_ff=require(data, source, "intermediate_size"),
        mlp=mlp, vocab_size=require(data, source, "vocab_size"),
        seq_len=seq_len or require(data, source, "max_position_embeddings"),
        tied_embeddings=bool(data.get("tie_word_embeddings", _LLAMA_LIKE_TIED[model_type])),
        positions="rotary", norm="nonparametric_layernorm" if model_type == "olmo" else "rmsnorm",
        bias=_llama_bias(data, source, model_type),
    )
    return fields


def _llama_bias(data: Mapping, source: str, model_type: str):
    if model_type == "qwen2":  # Qwen2's q, k and v projections always have biases; o and the MLP none
        return "qkv"
    attention, mlp = bool(data.get("attention_bias")), bool(data.get("mlp_bias"))
    if attention and mlp:
        return True
    if attention:
        raise refuse(source, "attention_bias", data["attention_bias"],
                     "biases on the four attention projections without MLP biases")
    if mlp:
        raise refuse(source, "mlp_bias", data["mlp_bias"], "biases on the MLP without attention biases")
    return False


def _gpt2(data: Mapping, source: str, seq_len: Optional[int]) -> dict:
    d_model = require(data, source, "n_embd", "hidden_size")
    act = data.get("activation_function", "gelu_new")
    if act not in _GELU:
        raise refuse(source, "activation_function", act, f"an MLP activation other than GELU ({_GELU})")
    positions = require(data, source, "n_positions", "n_ctx")
    if seq_len is not None and seq_len > positions:
        raise ValueError(f"{source}: seq_len ({seq_len}) exceeds n_positions ({positions}), the rows of "
                         f"GPT-2's learned position table")
    if seq_len is not None and seq_len < positions:
        warnings.warn(f"{source}: learned positions are counted for seq_len={seq_len} rows, not the model's "
                      f"n_positions={positions}: {positions - seq_len} x {d_model} fewer parameters than "
                      f"the published model", stacklevel=3)
    return dict(
        d_model=d_model, n_layers=require(data, source, "n_layer", "num_hidden_layers"),
        n_heads=require(data, source, "n_head", "num_attention_heads"),
        d_ff=data.get("n_inner") or 4 * d_model, mlp="gelu", vocab_size=require(data, source, "vocab_size"),
        seq_len=seq_len or positions, tied_embeddings=bool(data.get("tie_word_embeddings", True)),
        positions="learned", norm="layernorm", bias=True,
    )


def _build(fields: dict, source: str) -> TransformerConfig:
    from pydantic import ValidationError

    try:
        return TransformerConfig(**fields)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise ValueError(f"{source}: maps to an invalid TransformerConfig: {where}: {first['msg']}") from None
