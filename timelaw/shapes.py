"""Model and batch shapes as numpy arrays, so one code path serves one config and a million candidates.

The ledger, the parameter count and the step-time estimators read a `ShapeBatch`: numeric fields are float64
arrays (broadcastable against each other), categorical choices (MLP kind, norm, positions, tying, biases)
are shared by the whole batch. A batch built from one config holds 0-d arrays.
"""
from __future__ import annotations

import functools
import types
import typing
from dataclasses import dataclass, fields, replace
from typing import Literal

import numpy as np

from timelaw.config import TrainSetup, TransformerConfig, check_compatible, default_d_ff

__all__ = ["ShapeBatch"]


@dataclass(frozen=True)
class ShapeBatch:
    d_model: np.ndarray
    n_layers: np.ndarray
    n_heads: np.ndarray
    n_kv_heads: np.ndarray
    d_ff: np.ndarray
    vocab_size: np.ndarray
    seq_len: np.ndarray
    micro_batch_size: np.ndarray
    grad_accum_steps: np.ndarray
    mlp: Literal["gelu", "swiglu", "geglu"] = "gelu"
    norm: Literal["layernorm", "rmsnorm", "nonparametric_layernorm"] = "layernorm"
    positions: Literal["learned", "rotary"] = "learned"
    tied_embeddings: bool = True
    bias: bool | Literal["qkv"] = False  # True: every block linear and LayerNorm; "qkv": q, k, v only
    explicit_head_dim: np.ndarray | None = None  # a head width other than d_model / n_heads (Gemma-7B)

    NUMERIC = (
        "d_model", "n_layers", "n_heads", "n_kv_heads", "d_ff",
        "vocab_size", "seq_len", "micro_batch_size", "grad_accum_steps",
    )

    def __post_init__(self):
        for name, allowed in _choices().items():  # a typo would otherwise be priced as the default kind
            value = getattr(self, name)
            if not is_categorical_choice(value, allowed):
                raise ValueError(f"ShapeBatch.{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
        for name in self.NUMERIC:
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        if self.explicit_head_dim is not None:
            object.__setattr__(self, "explicit_head_dim", np.asarray(self.explicit_head_dim, dtype=np.float64))

    @classmethod
    def from_config(cls, cfg: TransformerConfig, setup: TrainSetup | None = None) -> "ShapeBatch":
        # the door of count_params, ledger and predict_loss: a wrong type is named here, not as an AttributeError
        if not isinstance(cfg, TransformerConfig):
            raise TypeError(f"expected a timelaw.TransformerConfig, got {type(cfg).__name__} {_short(cfg)}")
        setup = setup or TrainSetup()
        if not isinstance(setup, TrainSetup):
            raise TypeError(f"setup must be a timelaw.TrainSetup or None, got {type(setup).__name__} {_short(setup)}")
        check_compatible(cfg, setup)
        return cls(
            d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads, n_kv_heads=cfg.n_kv_heads,
            d_ff=cfg.d_ff, vocab_size=cfg.vocab_size, seq_len=cfg.seq_len,
            micro_batch_size=setup.micro_batch_size, grad_accum_steps=setup.grad_accum_steps,
            mlp=cfg.mlp, norm=cfg.norm, positions=cfg.positions,
            tied_embeddings=cfg.tied_embeddings, bias=cfg.bias,
            explicit_head_dim=None if cfg.head_dim * cfg.n_heads == cfg.d_model else cfg.head_dim,
        )

    @classmethod
    def from_arrays(
        cls, d_model, n_layers, n_heads, vocab_size, seq_len, micro_batch_size=8, grad_accum_steps=1,
        n_kv_heads=None, d_ff=None, mlp: str = "gelu", **categorical,
    ) -> "ShapeBatch":
        """Build a batch from arrays; n_kv_heads and d_ff default as in TransformerConfig."""
        d_model = np.asarray(d_model, dtype=np.float64)
        if d_ff is None:
            d_ff = np.vectorize(lambda d: default_d_ff(int(d), mlp), otypes=[np.float64])(d_model)
        return cls(
            d_model=d_model, n_layers=n_layers, n_heads=n_heads,
            n_kv_heads=n_heads if n_kv_heads is None else n_kv_heads, d_ff=d_ff,
            vocab_size=vocab_size, seq_len=seq_len, micro_batch_size=micro_batch_size,
            grad_accum_steps=grad_accum_steps, mlp=mlp, **categorical,
        )

    @property
    def head_dim(self) -> np.ndarray:
        return self.d_model / self.n_heads if self.explicit_head_dim is None else self.explicit_head_dim

    @property
    def size(self) -> int:
        return int(np.broadcast(*(getattr(self, n) for n in self.NUMERIC)).size)

    def take(self, index) -> "ShapeBatch":
        """The sub-batch at `index` (numeric fields broadcast to the full batch first)."""
        names = self.NUMERIC + (("explicit_head_dim",) if self.explicit_head_dim is not None else ())
        arrays = np.broadcast_arrays(*(getattr(self, n) for n in names))
        return replace(self, **{n: a[index] for n, a in zip(names, arrays)})

    def to_config(self, index=()) -> TransformerConfig:
        """The TransformerConfig of one element of the batch."""
        one = self.take(index)
        ints = {n: int(getattr(one, n)) for n in self.NUMERIC[:7]}
        cats = {f.name: getattr(one, f.name) for f in fields(self)
                if f.name not in self.NUMERIC and f.name != "explicit_head_dim"}
        if one.explicit_head_dim is not None:
            cats["head_dim"] = int(one.explicit_head_dim)
        return TransformerConfig(**ints, **cats)


@functools.cache
def _choices() -> dict[str, tuple]:
    """The allowed values of each categorical field, read from its annotation (Literal, bool, or both)."""
    choices = {}
    for name, hint in typing.get_type_hints(ShapeBatch).items():
        options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        allowed = []
        for option in options:
            if option is bool:
                allowed += [True, False]
            elif typing.get_origin(option) is Literal:
                allowed += list(typing.get_args(option))
            else:
                break
        else:
            choices[name] = tuple(allowed)
    return choices


def categorical_choices() -> dict[str, tuple]:
    """The allowed values of each categorical field of a shape (mlp, norm, positions, tied_embeddings, bias)."""
    return dict(_choices())


def is_categorical_choice(value, allowed: tuple) -> bool:
    """A flag for a bool field (numpy's too; not 1, though 1 == True), or one of the field's strings."""
    if isinstance(value, (bool, np.bool_)):
        return any(a is True for a in allowed)
    return isinstance(value, str) and value in [a for a in allowed if isinstance(a, str)]


def _short(value, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
