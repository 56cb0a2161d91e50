"""Exact parameter counts of the reference transformer (see timelaw/reference.py), vectorised.

Convention: `embedding` counts the token embedding, the learned position embedding and an untied output
head (every matrix indexed by vocabulary or position); `non_embedding` is everything else (Kaplan et al.'s N).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from timelaw.config import GATED_MLPS, TransformerConfig
from timelaw.shapes import ShapeBatch

__all__ = [
    "ParamCount", "count_params", "param_counts", "layer_params", "local_params", "norm_params", "norm_vectors",
    "n_param_tensors", "all_biases", "qkv_biases",
]


@dataclass(frozen=True)
class ParamCount:
    total: int
    non_embedding: int
    embedding: int


def all_biases(s) -> bool:
    """bias=True: every linear layer of the blocks (and LayerNorm) has a bias."""
    return s.bias is True


def qkv_biases(s) -> bool:
    """The query, key and value projections have biases: bias=True or bias="qkv"."""
    return s.bias is True or s.bias == "qkv"


def norm_vectors(s) -> int:
    """Parameter vectors of one norm layer: none, a weight, or a weight and a bias (biased LayerNorm)."""
    if s.norm == "nonparametric_layernorm":
        return 0
    return 2 if (s.norm == "layernorm" and all_biases(s)) else 1


def norm_params(s: ShapeBatch) -> np.ndarray:
    """Parameters of one norm layer."""
    return norm_vectors(s) * s.d_model


def attention_params(s: ShapeBatch) -> np.ndarray:
    qkv_width = (s.n_heads + 2 * s.n_kv_heads) * s.head_dim
    weights = s.d_model * qkv_width + s.n_heads * s.head_dim * s.d_model
    return weights + (qkv_width if qkv_biases(s) else 0) + (s.d_model if all_biases(s) else 0)


def mlp_params(s: ShapeBatch) -> np.ndarray:
    n_in = 2 if s.mlp in GATED_MLPS else 1  # a gated MLP has a gate and an up projection
    weights = (n_in + 1) * s.d_model * s.d_ff
    return weights + (n_in * s.d_ff + s.d_model if all_biases(s) else 0)


def layer_params(s: ShapeBatch) -> np.ndarray:
    """Parameters of one transformer block."""
    return attention_params(s) + mlp_params(s) + 2 * norm_params(s)


def embedding_params(s: ShapeBatch) -> np.ndarray:
    token = s.vocab_size * s.d_model
    position = s.seq_len * s.d_model if s.positions == "learned" else 0
    head = 0 if s.tied_embeddings else s.vocab_size * s.d_model
    return token + position + head


def param_counts(s: ShapeBatch) -> tuple[np.ndarray, np.ndarray]:
    """(non_embedding, embedding) parameter counts as arrays."""
    non_embedding = s.n_layers * layer_params(s) + norm_params(s)  # + the final norm
    return non_embedding, embedding_params(s)


def local_params(s: ShapeBatch, setup) -> np.ndarray:
    """Parameters held by one device: layers split over pipeline stages, matrices over tensor ranks."""
    non_embedding, embedding = param_counts(s)
    return (non_embedding / setup.pipeline_parallel + embedding) / setup.tensor_parallel


def n_param_tensors(s: ShapeBatch) -> np.ndarray:
    """How many parameter tensors the reference model has (optimizer kernels and state scale with it)."""
    norm = norm_vectors(s)
    linears = 2 + (3 if s.mlp in GATED_MLPS else 2)  # qkv, out, then the MLP projections
    biases = linears if all_biases(s) else (1 if qkv_biases(s) else 0)
    per_layer = 2 * norm + linears + biases
    embeddings = 1 + (s.positions == "learned") + (not s.tied_embeddings)
    return s.n_layers * per_layer + norm + embeddings


def count_params(cfg: TransformerConfig) -> ParamCount:
    """Exact parameter counts of `timelaw.reference.build_model(cfg)`."""
    non_embedding, embedding = param_counts(ShapeBatch.from_config(cfg))
    non_embedding, embedding = int(non_embedding), int(embedding)
    return ParamCount(total=non_embedding + embedding, non_embedding=non_embedding, embedding=embedding)
