"""TransformerConfig from a litgpt `model_config.yaml` (or the same fields as a dict).

litgpt's GPT always uses rotary positions (over `rotary_percentage` of each head) and an untied head; the
norm is `norm_class_name`, the MLP `mlp_class_name` (LLaMAMLP: SwiGLU, GemmaMLP: gated GELU, GptNeoxMLP:
GELU), the vocabulary `padded_vocab_size`. Refused, naming the field: parallel residual blocks, a shared
attention norm, mixture of experts, partial rotary, sliding windows narrower than the context, q/k norms,
post-attention / post-MLP norms and a head bias.
Reading YAML needs PyYAML (`pip install pyyaml`), imported only here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

from timelaw.config import TransformerConfig
from timelaw.configs.common import refuse, require

__all__ = ["from_litgpt"]

_MLPS = {"LLaMAMLP": "swiglu", "GemmaMLP": "geglu", "GptNeoxMLP": "gelu"}
_NORMS = {"RMSNorm": "rmsnorm", "LayerNorm": "layernorm"}


def _load(config: Any) -> tuple[Mapping, str]:
    if isinstance(config, Mapping):
        return config, "config"
    path = Path(config)
    if path.is_dir():
        path = path / "model_config.yaml"
    try:
        import yaml
    except ImportError:
        raise ImportError("reading a litgpt model_config.yaml needs PyYAML: pip install pyyaml") from None
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ValueError(f"cannot read litgpt config {str(path)!r}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config fields, got {type(data).__name__}")
    return data, str(path)


def from_litgpt(config: Any, seq_len: Optional[int] = None) -> TransformerConfig:
    """The TransformerConfig of a litgpt Config (model_config.yaml path, its folder, or a dict)."""
    data, source = _load(config)
    refusals = [
        ("parallel_residual", bool(data.get("parallel_residual")), "attention and MLP in parallel"),
        ("shared_attention_norm", bool(data.get("shared_attention_norm")), "one norm shared by attention and MLP"),
        ("n_expert", (data.get("n_expert") or 0) > 0, "a mixture-of-experts model"),
        ("rotary_percentage", data.get("rotary_percentage", 1.0) != 1.0, "rotary positions on part of each head"),
        ("norm_qk", bool(data.get("norm_qk")), "norms on the queries and keys"),
        ("post_attention_norm", bool(data.get("post_attention_norm")), "a norm after attention"),
        ("post_mlp_norm", bool(data.get("post_mlp_norm")), "a norm after the MLP"),
        ("lm_head_bias", bool(data.get("lm_head_bias")), "a bias on the output head"),
    ]
    for field, bad, why in refusals:
        if bad:
            raise refuse(source, field, data[field], why)
    d_model, n_heads = require(data, source, "n_embd"), require(data, source, "n_head")
    mlp_class = data.get("mlp_class_name", "GptNeoxMLP")
    if mlp_class not in _MLPS:
        raise refuse(source, "mlp_class_name", mlp_class, f"an MLP timelaw does not model (known: {sorted(_MLPS)})")
    norm_class = data.get("norm_class_name", "LayerNorm")
    if norm_class not in _NORMS:
        raise refuse(source, "norm_class_name", norm_class, f"a norm timelaw does not model (known: {sorted(_NORMS)})")
    bias = bool(data.get("bias", True))
    if norm_class == "LayerNorm" and not bias:  # litgpt's LayerNorm keeps its bias whatever `bias` says
        raise refuse(source, "bias", data.get("bias"), "LayerNorm biases without linear-layer biases")
    if not bias and data.get("attn_bias"):
        bias = "qkv"
    seq_len = seq_len or require(data, source, "block_size")
    window = data.get("sliding_window_size")
    if window is not None and window < seq_len:
        raise refuse(source, "sliding_window_size", window, f"a window narrower than seq_len ({seq_len})")
    from pydantic import ValidationError

    try:
        return TransformerConfig(
            d_model=d_model, n_layers=require(data, source, "n_layer"), n_heads=n_heads,
            n_kv_heads=data.get("n_query_groups") or n_heads, head_dim=data.get("head_size"),
            d_ff=data.get("intermediate_size") or 4 * d_model, mlp=_MLPS[mlp_class],
            vocab_size=require(data, source, "padded_vocab_size", "vocab_size"), seq_len=seq_len,
            positions="rotary", norm=_NORMS[norm_class], bias=bias,
            tied_embeddings=bool(data.get("tie_embeddings", False)),
        )
    except ValidationError as err:
        first = err.errors()[0]
        raise ValueError(f"{source}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
