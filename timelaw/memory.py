"""Memory footprint of training on one device: weights, gradients, optimizer state, activations.

Weights, gradients and optimizer state are exact for the reference model trained with torch (fp32 master
weights and gradients under autocast; AdamW keeps two fp32 moments and a 4-byte step counter per tensor).
With weights_in_16_bits (Megatron-LM's layout) the model holds 16-bit weights and the optimizer their fp32
master copies; gradients stay fp32 (Megatron's main_grad).
Activations are an estimate in the manner of Korthikanti et al. 2022 (the tensors autograd saves per block),
with no, full or selective activation checkpointing, and what autocast adds (16-bit weight copies, the fp32
residual stream): within 6% of what the reference model saves, in fp32 and in 16 bits (tests/test_ledger.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from timelaw.config import TrainSetup
from timelaw.params import layer_params, local_params, n_param_tensors
from timelaw.shapes import ShapeBatch

__all__ = ["MemoryFootprint", "memory_footprint"]

FP32 = 4


@dataclass(frozen=True)
class MemoryFootprint:
    weights_bytes: np.ndarray
    gradient_bytes: np.ndarray
    optimizer_bytes: np.ndarray
    activation_bytes_no_checkpointing: np.ndarray
    activation_bytes_full_checkpointing: np.ndarray
    activation_bytes: np.ndarray  # under the setup's checkpointing choice
    activation_bytes_selective_checkpointing: np.ndarray = None  # the attention core recomputed

    @property
    def total_bytes(self) -> np.ndarray:
        return self.weights_bytes + self.gradient_bytes + self.optimizer_bytes + self.activation_bytes

    def as_dict(self) -> dict:
        names = ("weights_bytes", "gradient_bytes", "optimizer_bytes", "activation_bytes_no_checkpointing",
                 "activation_bytes_full_checkpointing", "activation_bytes_selective_checkpointing",
                 "activation_bytes", "total_bytes")
        return {n: getattr(self, n) for n in names}


def _attention_scores(s: ShapeBatch, setup: TrainSetup) -> np.ndarray:
    """Bytes of one block's softmax output under the unfused kernel (none under flash): what selective
    recomputation does not keep."""
    if setup.attention == "flash":
        return np.zeros_like(np.asarray(s.seq_len, dtype=np.float64))
    heads = s.n_heads / setup.tensor_parallel
    return s.micro_batch_size * heads * s.seq_len ** 2 * setup.bytes_per_element


def _saved_per_layer(s: ShapeBatch, setup: TrainSetup) -> np.ndarray:
    """Bytes autograd keeps for one block's backward, for one micro-batch."""
    tp, elem = setup.tensor_parallel, setup.bytes_per_element
    tokens, d, hd = s.micro_batch_size * s.seq_len, s.d_model, s.head_dim
    heads, kv_heads, ff = s.n_heads / tp, s.n_kv_heads / tp, s.d_ff / tp
    norm_stats = (1 if s.norm == "rmsnorm" else 2) * FP32 * tokens  # mean and rstd; rstd alone for RMSNorm
    split = tp if (setup.sequence_parallel and tp > 1) else 1  # sequence parallelism splits the norms' tokens
    saved = (4 * tokens * d * elem + 2 * norm_stats) / split  # each norm's input and output
    saved += tokens * (heads + 2 * kv_heads) * hd * elem  # q, k, v
    if setup.attention == "flash":
        saved += tokens * heads * hd * elem + FP32 * s.micro_batch_size * heads * s.seq_len  # output, lse
    else:
        saved += _attention_scores(s, setup) + tokens * heads * hd * elem
    saved += tokens * heads * hd * elem  # input of the output projection
    saved += (4 if s.mlp in ("swiglu", "geglu") else 2) * tokens * ff * elem
    if setup.autocast:  # fp32 weights cast op by op, as the reference model trains in 16 bits
        saved += _autocast_extra_per_layer(s, setup)
    return saved


def _autocast_extra_per_layer(s: ShapeBatch, setup: TrainSetup) -> np.ndarray:
    """What autocast makes a block keep beyond the 16-bit estimate (measured on the reference model with
    saved-tensor hooks, tests/test_ledger.py): the residual stream stays fp32, so each norm's saved input
    is 4 bytes, not 2; each linear layer casts the norm's output again (autocast caches weight casts only),
    so a gated MLP keeps two 16-bit copies; torch's RMSNorm keeps an fp32 tensor of its own; and each weight
    matrix's 16-bit copy, cast for this micro-batch, is saved for the backward of its product."""
    tp, elem = setup.tensor_parallel, setup.bytes_per_element
    split = tp if (setup.sequence_parallel and tp > 1) else 1
    tokens, d, hd = s.micro_batch_size * s.seq_len, s.d_model, s.head_dim
    heads, kv_heads, ff = s.n_heads / tp, s.n_kv_heads / tp, s.d_ff / tp
    gated = s.mlp in ("swiglu", "geglu")
    norms = 2 * tokens * d * (FP32 - elem)  # the two norms' fp32 inputs
    norms = norms + (tokens * d * elem if gated else 0.0)  # the MLP's second cast of its norm's output
    norms = norms + (2 * tokens * d * FP32 if s.norm == "rmsnorm" else 0.0)
    matrices = d * (heads + 2 * kv_heads) * hd + heads * hd * d + (3 if gated else 2) * d * ff
    return norms / split + matrices * elem


def memory_footprint(s: ShapeBatch, setup: TrainSetup) -> MemoryFootprint:
    tp, pp = setup.tensor_parallel, setup.pipeline_parallel
    params = local_params(s, setup)
    tensors = n_param_tensors(s) / pp
    if setup.optimizer == "adamw":
        optimizer = 2 * FP32 * params + FP32 * tensors
    else:
        optimizer = FP32 * params  # momentum buffer
    if setup.master_weights:  # 16-bit weights in the model, their fp32 master copies in the optimizer
        optimizer = optimizer + FP32 * params
    weight_bytes = setup.bytes_per_element if setup.master_weights else FP32
    # ZeRO over the data-parallel ranks: stage 1 shards the optimizer state, 2 also the gradients, 3 (FSDP)
    # also the weights, of which two blocks are whole at a time: the one computing and the one prefetched
    dp, zero = setup.data_parallel, setup.zero_stage
    shard = {part: (dp if zero >= stage else 1) for part, stage in (("optimizer", 1), ("gradients", 2),
                                                                     ("weights", 3))}
    gathered = 2 * layer_params(s) / tp * weight_bytes if (zero >= 3 and dp > 1) else 0.0

    tokens, elem, stream = s.micro_batch_size * s.seq_len, setup.bytes_per_element, setup.residual_bytes
    layers = s.n_layers / pp
    # 1F1B keeps up to `pp` micro-batches in flight on the first stage. Interleaved over v chunks, the first
    # stage warms up with 2 (pp - 1) + (v - 1) pp + 1 chunk passes of layers / v each: pp + (pp - 1) / v
    # micro-batches' worth, the (1 + (p - 1) / (p v)) of Korthikanti et al. 2022.
    v = setup.pipeline_interleave
    in_flight = np.minimum(pp if v == 1 else pp + (pp - 1) / v, s.grad_accum_steps)
    per_layer = _saved_per_layer(s, setup)
    logits = tokens * s.vocab_size / tp * (elem + 2 * FP32)  # logits, fp32 copy, log-softmax
    outside_layers = logits + 2 * tokens * s.d_model * stream  # the embeddings' output, the final norm's input
    no_ckpt = in_flight * layers * per_layer + outside_layers
    # Only block inputs (the residual stream: fp32 under autocast) are kept; one block's activations live
    # again while it is recomputed.
    full_ckpt = in_flight * layers * tokens * s.d_model * stream + per_layer + outside_layers
    # Selective: every block keeps all but its softmax output; one block's lives again while it is recomputed.
    scores = _attention_scores(s, setup)
    selective = in_flight * layers * (per_layer - scores) + scores + outside_layers
    chosen = {"full": full_ckpt, "selective": selective}.get(setup.activation_checkpointing, no_ckpt)
    return MemoryFootprint(
        weights_bytes=weight_bytes * params / shard["weights"] + gathered,
        gradient_bytes=FP32 * params / shard["gradients"],
        optimizer_bytes=optimizer / shard["optimizer"],
        activation_bytes_no_checkpointing=no_ckpt, activation_bytes_full_checkpointing=full_ckpt,
        activation_bytes=chosen, activation_bytes_selective_checkpointing=selective,
    )
