"""The shapes optimize searches: a grid of widths, depths, heads, batches, sequence lengths and MLP kinds,
built as flat numpy arrays (one ShapeBatch per MLP kind) without a Python loop over candidates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from timelaw.config import TrainSetup, default_d_ff, sequences_per_step
from timelaw.params import param_counts
from timelaw.shapes import ShapeBatch, categorical_choices, is_categorical_choice

__all__ = ["SearchSpace", "model_grid", "candidate_batches"]

DEFAULT_LAYERS = tuple(range(2, 17)) + tuple(range(18, 33, 2)) + tuple(range(36, 65, 4)) + (72, 80, 96, 112, 128)


@dataclass(frozen=True)
class SearchSpace:
    """What optimize may choose, and the constraints every candidate must meet.

    d_model runs over multiples of `d_model_step` in [d_model_min, d_model_max]; n_heads over the divisors
    that give a head dimension in [head_dim_min, head_dim_max]; the global batch over `tokens_per_step`
    (tokens per optimizer step), each split into micro-batches of `micro_batch_sizes` sequences with
    gradient accumulation. `vocab_size` and the categorical options are fixed. Candidates must fit in the
    device's memory, have between `min_params` and `max_params` parameters (total), an aspect ratio
    d_model / n_layers in [aspect_ratio_min, aspect_ratio_max], and get at least `min_steps` optimizer steps.

    The bounds are wide by default: the default law (composite2026) prices shape and batch, so the optimum
    is where speed stops paying for them, not at a bound (Plan.bounds says when it is). With a law that sees
    only N and D (epoch2024, ...), narrow them by hand: such a law gives every shape of equal N the same loss
    and every batch the same value per token, so the fastest, shallowest shape at the largest batch would win
    (Kaplan et al. 2020, section 3.1, found depth versus width matters little only within reasonable limits,
    aspect ratios of about 20-200).
    """

    d_model_min: int = 128
    d_model_max: int = 8192
    d_model_step: int = 64
    n_layers: tuple = DEFAULT_LAYERS
    head_dim_min: int = 64
    head_dim_max: int = 128
    aspect_ratio_min: float = 1.0
    aspect_ratio_max: float = 4096.0
    tokens_per_step: tuple = tuple(2 ** k for k in range(10, 24))
    micro_batch_sizes: tuple = (1, 2, 4, 8, 16, 32, 64, 128, 256)
    seq_lens: tuple = (1024,)
    mlps: tuple = ("gelu",)
    vocab_size: int = 50257
    min_params: float = 0.0
    max_params: float = math.inf
    min_steps: int = 100
    norm: str = "layernorm"
    positions: str = "learned"
    tied_embeddings: bool = True
    bias: bool = False

    def __post_init__(self):
        for name in ("n_layers", "tokens_per_step", "micro_batch_sizes", "seq_lens", "mlps"):
            value = getattr(self, name)
            object.__setattr__(self, name, tuple(value) if np.ndim(value) else (value,))
        if self.d_model_min % self.d_model_step or self.d_model_min > self.d_model_max:
            raise ValueError(f"d_model_min ({self.d_model_min}) must be a multiple of d_model_step "
                             f"({self.d_model_step}) and at most d_model_max ({self.d_model_max})")
        if self.aspect_ratio_min > self.aspect_ratio_max:
            raise ValueError(f"aspect_ratio_min ({self.aspect_ratio_min}) exceeds aspect_ratio_max "
                             f"({self.aspect_ratio_max})")
        if self.head_dim_min > self.head_dim_max:
            raise ValueError(f"head_dim_min ({self.head_dim_min}) exceeds head_dim_max ({self.head_dim_max})")
        if not self.min_params < self.max_params:
            raise ValueError(f"min_params ({self.min_params:g}) must be below max_params ({self.max_params:g})")
        # The categorical choices every candidate shares, checked against what a shape can count.
        choices = categorical_choices()
        bad = [m for m in self.mlps if not is_categorical_choice(m, choices["mlp"])]
        if bad:
            raise ValueError(f"mlps must each be one of {', '.join(map(repr, choices['mlp']))}; got {bad}")
        for name, value in self.categorical.items():
            if not is_categorical_choice(value, choices[name]):
                raise ValueError(f"{name} must be one of {', '.join(map(repr, choices[name]))}; got {value!r}")
        # the sizes every candidate shares, checked here as TransformerConfig / TrainSetup check one shape's
        for name, values, least in (("vocab_size", (self.vocab_size,), 2), ("seq_lens", self.seq_lens, 1),
                                    ("n_layers", self.n_layers, 1), ("micro_batch_sizes", self.micro_batch_sizes, 1),
                                    ("tokens_per_step", self.tokens_per_step, 1)):
            if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= least for v in values):
                raise ValueError(f"{name} must be {'whole numbers' if len(values) > 1 else 'a whole number'} >= {least}, "
                                 f"got {_shown(values)}")
        if not 0 <= self.min_steps:
            raise ValueError(f"min_steps must be >= 0, got {self.min_steps}")

    def updated(self, **changes) -> "SearchSpace":
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"unknown search-space option(s) {sorted(unknown)}; "
                            f"known: {[f.name for f in fields(self)]}")
        return replace(self, **changes)

    @property
    def categorical(self) -> dict:
        return dict(norm=self.norm, positions=self.positions, tied_embeddings=self.tied_embeddings,
                    bias=self.bias)


def _width_heads(space: SearchSpace) -> tuple[np.ndarray, np.ndarray]:
    """Every (d_model, n_heads) pair whose head dimension lies in the allowed range."""
    widths = np.arange(space.d_model_min, space.d_model_max + 1, space.d_model_step)
    head_dims = np.arange(space.head_dim_min, space.head_dim_max + 1)
    ok = widths[:, None] % head_dims[None, :] == 0
    w, h = np.nonzero(ok)
    return widths[w].astype(np.float64), (widths[w] // head_dims[h]).astype(np.float64)


def model_grid(space: SearchSpace, mlp: str) -> ShapeBatch:
    """Every model shape (width, heads, depth, sequence length) within the parameter and aspect-ratio
    ranges, with a batch of one sequence."""
    width, heads = _width_heads(space)
    layers = np.asarray(space.n_layers, dtype=np.float64)
    seqs = np.asarray(space.seq_lens, dtype=np.float64)
    grid = np.meshgrid(np.arange(width.size), layers, seqs, indexing="ij")
    pair, n_layers, seq_len = (g.ravel() for g in grid)
    d_model = width[pair]
    widths, which = np.unique(d_model, return_inverse=True)
    d_ff = np.array([default_d_ff(int(w), mlp) for w in widths], dtype=np.float64)[which]  # the config's rule
    shapes = ShapeBatch(
        d_model=d_model, n_layers=n_layers, n_heads=heads[pair], n_kv_heads=heads[pair], d_ff=d_ff,
        vocab_size=np.full_like(d_model, space.vocab_size), seq_len=seq_len, micro_batch_size=1.0,
        grad_accum_steps=1.0, mlp=mlp, **space.categorical,
    )
    non_embedding, embedding = param_counts(shapes)
    total, aspect = non_embedding + embedding, d_model / n_layers
    keep = (total >= space.min_params) & (total <= space.max_params)
    keep &= (aspect >= space.aspect_ratio_min) & (aspect <= space.aspect_ratio_max)
    return shapes.take(keep)


def _batch_choices(space: SearchSpace, setup: TrainSetup) -> np.ndarray:
    """Rows (seq_len, micro_batch_size, grad_accum_steps) of every way to split each tokens_per_step."""
    rows = []
    for seq in space.seq_lens:
        for tokens in space.tokens_per_step:
            for micro in space.micro_batch_sizes:
                per_pass = seq * sequences_per_step(micro, setup.data_parallel)
                if tokens % per_pass == 0:
                    rows.append((seq, micro, tokens // per_pass))
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


def candidate_batches(space: SearchSpace, setup: TrainSetup) -> list[ShapeBatch]:
    """Every candidate: each model shape crossed with each batch split of its sequence length."""
    choices = _batch_choices(space, setup)
    batches = []
    for mlp in space.mlps:
        models = model_grid(space, mlp)
        m, c = np.nonzero(models.seq_len[:, None] == choices[None, :, 0])
        one = models.take(m)
        batches.append(replace(one, micro_batch_size=choices[c, 1], grad_accum_steps=choices[c, 2]))
    return batches


def _shown(values) -> str:
    return " ".join(map(str, values)) if len(values) > 1 else str(values[0])
