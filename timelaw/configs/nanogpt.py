"""TransformerConfig from a nanoGPT `GPTConfig`: a dict (a checkpoint's `model_args`), a JSON file, or a
nanoGPT config script (`config/train_gpt2.py`: top-level `name = value` lines, read without running it).

nanoGPT's model: learned positions, LayerNorm, a 4 x GELU MLP, the token embedding tied to the head, and
`bias` (default True) on every linear layer and LayerNorm, exactly timelaw's bias=True. Its GPTConfig
defaults fill missing keys (block_size 1024, vocab_size 50304, 12 layers, 12 heads, n_embd 768).
"""
from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any, Mapping, Optional

from timelaw.config import TransformerConfig
from timelaw.configs.common import load_mapping

__all__ = ["from_nanogpt", "GPTCONFIG_DEFAULTS"]

GPTCONFIG_DEFAULTS = dict(block_size=1024, vocab_size=50304, n_layer=12, n_head=12, n_embd=768, bias=True)


def _read_script(path: Path) -> dict:
    """The literal top-level assignments of a nanoGPT config script (other statements are skipped)."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as err:
        raise ValueError(f"{path}: line {err.lineno}: not valid Python ({err.msg})") from None
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue  # a computed value (e.g. wandb_run_name = 'x' + str(time.time())): not a model field
    return values


def from_nanogpt(config: Any, seq_len: Optional[int] = None) -> TransformerConfig:
    """The TransformerConfig of a nanoGPT GPTConfig (dict, .json or config .py); seq_len defaults to block_size."""
    if isinstance(config, (str, os.PathLike)) and Path(config).suffix == ".py":
        data, source = _read_script(Path(config)), str(config)
    else:
        data, source = load_mapping(config)
    if isinstance(data, Mapping) and isinstance(data.get("model_args"), Mapping):  # a whole checkpoint dict
        data = data["model_args"]
    values = {**GPTCONFIG_DEFAULTS, **{k: data[k] for k in GPTCONFIG_DEFAULTS if data.get(k) is not None}}
    from pydantic import ValidationError

    try:
        return TransformerConfig(
            d_model=values["n_embd"], n_layers=values["n_layer"], n_heads=values["n_head"], mlp="gelu",
            vocab_size=values["vocab_size"], seq_len=seq_len or values["block_size"], positions="learned",
            norm="layernorm", tied_embeddings=True, bias=bool(values["bias"]),
        )
    except ValidationError as err:
        first = err.errors()[0]
        raise ValueError(f"{source}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
