"""Readers of the model configs people already have: Hugging Face config.json, nanoGPT GPTConfig, litgpt
model_config.yaml. Each returns an exact TransformerConfig or refuses, naming the field it cannot represent.
"""
from timelaw.configs.common import UnsupportedConfigError, load_mapping
from timelaw.configs.hf import SUPPORTED_MODEL_TYPES, from_hf
from timelaw.configs.litgpt import from_litgpt
from timelaw.configs.nanogpt import from_nanogpt

__all__ = ["from_hf", "from_nanogpt", "from_litgpt", "load_model_config", "UnsupportedConfigError",
           "SUPPORTED_MODEL_TYPES"]


def load_model_config(path, seq_len=None):
    """A TransformerConfig from a file of any known kind: a timelaw TransformerConfig JSON, a Hugging Face
    config.json (or its folder), a litgpt model_config.yaml, or a nanoGPT config .py."""
    from pathlib import Path

    from pydantic import ValidationError

    from timelaw.config import TransformerConfig

    p = Path(path)
    if p.is_dir():
        found = [p / name for name in ("config.json", "model_config.yaml") if (p / name).exists()]
        if not found:
            raise ValueError(f"{p}: a folder without a config.json (Hugging Face) or model_config.yaml (litgpt)")
        p = found[0]
    if p.suffix in (".yaml", ".yml"):
        return from_litgpt(p, seq_len=seq_len)
    if p.suffix == ".py":
        return from_nanogpt(p, seq_len=seq_len)
    data, _ = load_mapping(p)
    if "model_type" in data:
        return from_hf(p, seq_len=seq_len)
    if "n_embd" in data or "model_args" in data:
        return from_nanogpt(p, seq_len=seq_len)
    fields = {**data, **({"seq_len": seq_len} if seq_len else {})}
    try:
        return TransformerConfig(**fields)
    except (TypeError, ValidationError) as err:
        raise ValueError(f"{p}: neither a Hugging Face config (no 'model_type'), a nanoGPT config (no "
                         f"'n_embd') nor a TransformerConfig: {err}") from None
