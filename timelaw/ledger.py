"""The exact inventory of one training step on one device: every operation's flops, bytes and kernels.

One multiply-add counts as 2 flops. Matmul and attention flops are exact for the reference model (tests check
them against torch's FlopCounterMode); bytes and kernel counts of the other operations follow what eager
PyTorch does (one read of each input, one write of each output, one kernel per eager op) and are the
features the step-time models are calibrated on, so a systematic bias there is absorbed by the fit.

Everything is a numpy expression over a `ShapeBatch`, so `step_ops` prices a million shapes as cheaply as one.
Work is per device: tensor parallelism splits heads, MLP width and vocabulary (with Megatron's all-reduces);
pipeline parallelism splits layers, and each op says which stages run it (`Op.stage`: the blocks run on
every stage, the embeddings on the first, the head and loss on the last), so with several stages the ledger
lists one stage's blocks plus both ends; each data-parallel rank runs `grad_accum_steps` micro-batches per
optimizer step, then all-reduces its gradients.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Optional

import numpy as np

from timelaw.config import GATED_MLPS, TrainSetup, TransformerConfig
from timelaw.memory import MemoryFootprint, memory_footprint
from timelaw.params import local_params, n_param_tensors, norm_params, norm_vectors, param_counts
from timelaw.shapes import ShapeBatch

__all__ = ["OP_CLASSES", "Op", "Ledger", "ledger", "step_ops"]

OP_CLASSES = (
    "matmul", "attention", "elementwise", "norm", "softmax", "embedding", "loss", "optimizer", "communication",
)
GRAD_BYTES = 4  # gradients and master weights stay fp32 under autocast mixed precision
INDEX_BYTES = 8  # token ids are int64
# AdamW per parameter: reads the fp32 weight, gradient and two moments, writes the weight and the moments.
ADAMW_BYTES_READ, ADAMW_BYTES_WRITTEN = 16, 12
# Flash attention per (query, key, head channel): 2 products forward (scores, weighted values), 5 backward
# (the kernel recomputes the scores instead of storing them); a multiply-add is 2 flops.
FLASH_FORWARD_FLOPS, FLASH_BACKWARD_FLOPS = 4, 10
# Under autocast the residual stream, the norms and the embeddings stay fp32 (TrainSetup.residual_bytes);
# only the matmul inputs are cast to 16 bits, each by its own kernel. With weights_in_16_bits everything the
# model holds is 16-bit, and fp32 training is 4 bytes throughout: no casts in either.
# torch's default AdamW on a GPU is the foreach implementation: 8 multi-tensor ops per step, each launching
# one kernel per list of up to ~64 tensors or ~21M elements (320 blocks of 65,536), not 12 per tensor.
ADAMW_FOREACH_OPS, FOREACH_TENSORS_PER_KERNEL, FOREACH_ELEMENTS_PER_KERNEL = 8, 64, 320 * 65536


@dataclass(frozen=True)
class Op:
    """One operation; flops, bytes and kernels are per occurrence, `count` occurrences per step."""

    name: str
    cls: str
    phase: str  # forward, backward, recompute, optimizer, communication
    flops: np.ndarray
    bytes_read: np.ndarray
    bytes_written: np.ndarray
    kernels: np.ndarray
    count: np.ndarray = 1.0
    gemm: Optional[tuple] = None  # (batch, m, n, k) of a matrix product: (m x k) @ (k x n)
    collective: Optional[str] = None  # "all_reduce" or "p2p" for communication ops
    # Bytes a collective sends per rank (its message): link traffic, priced by the interconnect, so kept
    # apart from bytes_read / bytes_written, which are memory traffic (a collective's are zero).
    message_bytes: np.ndarray = 0.0
    group_size: int = 1  # ranks taking part in a collective
    axis: Optional[str] = None  # the parallel dimension a collective serves: "tensor", "pipeline" or "data"
    # Kernels when torch runs the op as multi-tensor (foreach) kernels, its default on GPUs; None: `kernels`.
    foreach_kernels: Optional[np.ndarray] = None
    # Which pipeline stages run the op: "all" (the blocks, the weight update), "first" (the embeddings) or
    # "last" (final norm, head, loss). With one stage the first is the last; with several the slowest stage
    # is the last, and the step's critical path depends on where an op runs (see timing/parallel.py).
    stage: str = "all"

    @property
    def bytes(self) -> np.ndarray:
        return self.bytes_read + self.bytes_written

    def times(self, count) -> "Op":
        return replace(self, count=self.count * count)


def _gemm(name, batch, m, n, k, elem_bytes, cls="matmul") -> Op:
    return Op(
        name, cls, "forward", flops=2 * batch * m * n * k,
        bytes_read=batch * (m * k + k * n) * elem_bytes, bytes_written=batch * m * n * elem_bytes,
        kernels=1.0, gemm=(batch, m, n, k),
    )


def _stream(name, cls, read, written, flops_per_element, elem_bytes, kernels=1.0) -> Op:
    """A memory-bound op reading `read` and writing `written` elements."""
    return Op(
        name, cls, "forward", flops=flops_per_element * np.maximum(read, written),
        bytes_read=read * elem_bytes, bytes_written=written * elem_bytes, kernels=kernels,
    )


def _collective(name, kind, message_bytes, group_size, axis, phase="forward") -> Op:
    return Op(
        name, "communication", phase, flops=0.0, bytes_read=0.0, bytes_written=0.0, kernels=1.0,
        message_bytes=message_bytes, collective=kind, group_size=group_size, axis=axis,
    )


def _backward(op: Op) -> list[Op]:
    """The backward of a forward op: two products for a matmul, a read-more stream otherwise."""
    if op.collective is not None:  # an all-gather's gradient is reduce-scattered, and the other way round
        kind = {"all_gather": "reduce_scatter", "reduce_scatter": "all_gather"}.get(op.collective, op.collective)
        return [replace(op, name=op.name + ".grad", phase="backward", collective=kind)]
    if op.gemm is not None:
        batch, m, n, k = op.gemm
        elem = op.bytes_written / (batch * m * n)
        grad_a = _gemm(op.name + ".grad_a", batch, m, k, n, elem, op.cls)  # dA = dC @ B^T
        grad_b = _gemm(op.name + ".grad_b", batch, k, n, m, elem, op.cls)  # dB = A^T @ dC
        return [replace(g, phase="backward", count=op.count) for g in (grad_a, grad_b)]
    # Reads the incoming gradient plus what the forward saved, writes the gradient of each input.
    return [replace(
        op, name=op.name + ".grad", phase="backward", flops=2 * op.flops,
        bytes_read=op.bytes_read + op.bytes_written, bytes_written=op.bytes_read,
    )]


def _norm(name, s: ShapeBatch, tokens, elem_bytes) -> Op:
    flops = 4.0 if s.norm == "rmsnorm" else 8.0
    op = _stream(name, "norm", tokens * s.d_model, tokens * s.d_model, flops, elem_bytes)
    weight = GRAD_BYTES * s.d_model if norm_vectors(s) else 0.0  # a non-parametric LayerNorm reads none
    return replace(op, bytes_read=op.bytes_read + weight)


def _autocast_cast(name, elements, elem_bytes, residual_bytes) -> list[Op]:
    """Autocast's cast of an fp32 activation to 16 bits before a matmul (none when the residual stream is
    already in the matmul's precision)."""
    if np.all(elem_bytes == residual_bytes):
        return []
    return [Op(name, "elementwise", "forward", flops=0.0, bytes_read=elements * residual_bytes,
               bytes_written=elements * elem_bytes, kernels=1.0)]


def _residual(name, tokens, d, elem_bytes, residual_bytes) -> Op:
    """x + f(x): the residual stream (fp32 under autocast) plus the block's output, written as the stream."""
    return Op(name, "elementwise", "forward", flops=2 * tokens * d,
              bytes_read=tokens * d * (residual_bytes + elem_bytes), bytes_written=tokens * d * residual_bytes,
              kernels=1.0)


def _attention_core(s: ShapeBatch, heads, kv_heads, tokens, elem_bytes, kernel: str) -> list[Op]:
    """Scores, softmax and weighted values: the only ops whose cost grows with seq_len squared."""
    hd, seq, batch = s.head_dim, s.seq_len, s.micro_batch_size
    ops = []
    repeats = kv_heads != heads  # GQA: keys and values are copied out to every query head
    if np.any(repeats):
        ops.append(_stream("attn.repeat_kv", "elementwise", 2 * tokens * kv_heads * hd * repeats,
                           2 * tokens * heads * hd * repeats, 0.0, elem_bytes, kernels=2.0 * repeats))
    if kernel == "flash":
        qkvo = tokens * heads * hd
        as_gemm = (batch * heads, seq, seq, hd)  # the shape of its products, for efficiency lookups
        fwd = Op("attn.flash", "attention", "forward", flops=FLASH_FORWARD_FLOPS * batch * heads * seq * seq * hd,
                 gemm=as_gemm,
                 bytes_read=3 * qkvo * elem_bytes, bytes_written=qkvo * elem_bytes + 4 * batch * heads * seq,
                 kernels=1.0)
        bwd = Op("attn.flash.grad", "attention", "backward",
                 flops=FLASH_BACKWARD_FLOPS * batch * heads * seq * seq * hd, gemm=as_gemm,
                 bytes_read=5 * qkvo * elem_bytes + 4 * batch * heads * seq,
                 bytes_written=3 * qkvo * elem_bytes, kernels=2.0)
        ops += [fwd, bwd]
    else:
        scores = batch * heads * seq * seq
        ops += [
            _gemm("attn.scores", batch * heads, seq, seq, hd, elem_bytes, cls="attention"),
            # scale, causal mask and softmax: three eager kernels over the score matrix
            _stream("attn.softmax", "softmax", 3 * scores, 3 * scores, 2.0, elem_bytes, kernels=3.0),
            _gemm("attn.values", batch * heads, seq, hd, seq, elem_bytes, cls="attention"),
        ]
    ops.append(_stream("attn.merge_heads", "elementwise", tokens * heads * hd, tokens * heads * hd,
                       0.0, elem_bytes))
    return ops


def _mlp(s: ShapeBatch, ff, tokens, elem_bytes) -> list[Op]:
    d = s.d_model
    if s.mlp in GATED_MLPS:
        act, flops = ("silu", 3.0) if s.mlp == "swiglu" else ("gelu", 9.0)
        return [
            _gemm("mlp.gate", 1, tokens, ff, d, elem_bytes),
            _gemm("mlp.up", 1, tokens, ff, d, elem_bytes),
            _stream(f"mlp.{act}_mul", "elementwise", 3 * tokens * ff, 2 * tokens * ff, flops, elem_bytes, 2.0),
            _gemm("mlp.proj", 1, tokens, d, ff, elem_bytes),
        ]
    return [
        _gemm("mlp.fc", 1, tokens, ff, d, elem_bytes),
        _stream("mlp.gelu", "elementwise", tokens * ff, tokens * ff, 8.0, elem_bytes),
        _gemm("mlp.proj", 1, tokens, d, ff, elem_bytes),
    ]


def _layer_forward(s: ShapeBatch, setup: TrainSetup) -> list[Op]:
    """One transformer block's forward pass on one micro-batch, with its backward-pass twin ops."""
    tp, elem, stream = setup.tensor_parallel, setup.bytes_per_element, setup.residual_bytes
    tokens, d, hd = s.micro_batch_size * s.seq_len, s.d_model, s.head_dim
    heads, kv_heads, ff = s.n_heads / tp, s.n_kv_heads / tp, s.d_ff / tp
    sp = setup.sequence_parallel and tp > 1
    local = tokens / tp if sp else tokens  # sequence parallelism splits the norms' and residuals' tokens

    ops = [_norm("attn.norm", s, local, stream), *_autocast_cast("attn.norm.cast", local * d, elem, stream),
           *_sp_gather("attn", tokens * d * elem, tp, sp),
           _gemm("attn.qkv", 1, tokens, (heads + 2 * kv_heads) * hd, d, elem)]
    if s.positions == "rotary":
        rotated = tokens * (heads + kv_heads) * hd
        ops.append(_stream("attn.rotary", "elementwise", 2 * rotated, rotated, 3.0, elem, kernels=8.0))
    ops += _attention_core(s, heads, kv_heads, tokens, elem, setup.attention)
    ops.append(_gemm("attn.out", 1, tokens, d, heads * hd, elem))
    if tp > 1:
        ops.append(_tp_reduce("attn", tokens * d * elem, tp, sp))
    ops.append(_residual("attn.residual", local, d, elem, stream))
    ops.append(_norm("mlp.norm", s, local, stream))
    # each linear layer the norm feeds casts its input again (autocast caches only weight casts)
    ops += _autocast_cast("mlp.norm.cast", local * d, elem, stream) * (2 if s.mlp in GATED_MLPS else 1)
    ops += _sp_gather("mlp", tokens * d * elem, tp, sp)
    ops += _mlp(s, ff, tokens, elem)
    if tp > 1:
        ops.append(_tp_reduce("mlp", tokens * d * elem, tp, sp))
    ops.append(_residual("mlp.residual", local, d, elem, stream))
    return ops


def _tp_reduce(prefix: str, message, tp: int, sp: bool) -> Op:
    """After a row-parallel product: Megatron's all-reduce, or under sequence parallelism a reduce-scatter
    that leaves each rank its share of the tokens."""
    if sp:
        return _collective(f"{prefix}.sp_reduce_scatter", "reduce_scatter", message, tp, "tensor")
    return _collective(f"{prefix}.tp_all_reduce", "all_reduce", message, tp, "tensor")


def _sp_gather(prefix: str, message, tp: int, sp: bool) -> list[Op]:
    """Under sequence parallelism, the all-gather of the split norm output before a column-parallel product,
    and the same all-gather again in the backward: the split input is what is kept for the weight gradient
    (Korthikanti et al. 2022). Nothing without it."""
    if not sp:
        return []
    gather = _collective(f"{prefix}.sp_all_gather", "all_gather", message, tp, "tensor")
    return [gather, replace(gather, name=f"{prefix}.sp_all_gather.regather", phase="backward")]


def _with_backward(forward_ops: list[Op]) -> list[Op]:
    """Forward ops (flash attention brings its own backward op) followed by their backward ops."""
    fwd = [op for op in forward_ops if op.phase == "forward"]
    explicit = [op for op in forward_ops if op.phase == "backward"]
    has_explicit = {op.name.removesuffix(".grad") for op in explicit}
    return fwd + explicit + [b for op in fwd if op.name not in has_explicit for b in _backward(op)]


def _embedding(s: ShapeBatch, setup: TrainSetup) -> list[Op]:
    """Token and position embeddings, forward and backward: the first pipeline stage's extra work."""
    tp, elem, stream = setup.tensor_parallel, setup.bytes_per_element, setup.residual_bytes
    tokens, d, vocab = s.micro_batch_size * s.seq_len, s.d_model, s.vocab_size / tp
    # tables in the stream's precision (autocast does not cast embeddings): the residual stream starts there
    fwd = [Op("embed.tokens", "embedding", "forward", flops=0.0,
              bytes_read=tokens * (INDEX_BYTES + d * stream), bytes_written=tokens * d * stream,
              kernels=1.0)]
    if s.positions == "learned":
        fwd.append(_stream("embed.positions", "elementwise", tokens * d + s.seq_len * d, tokens * d,
                           1.0, stream, kernels=2.0))
    sp = setup.sequence_parallel and tp > 1
    if tp > 1:  # the vocabulary is split over tensor ranks, so each holds part of every token's embedding
        fwd.append(_tp_reduce("embed", tokens * d * elem, tp, sp))
    # the backward of the embedding's all-reduce is the identity (each rank keeps the whole gradient); that of
    # sequence parallelism's reduce-scatter gathers the split gradient back
    backward = [b for op in fwd if op.name != "embed.tokens" and (op.collective is None or sp)
                for b in _backward(op)]
    # The token-embedding gradient is a scatter-add into a dense fp32 table that starts at zero.
    backward.append(Op("embed.tokens.grad", "embedding", "backward", flops=tokens * d,
                       bytes_read=tokens * (INDEX_BYTES + d * stream), bytes_written=vocab * d * GRAD_BYTES,
                       kernels=2.0))
    return [replace(op, stage="first") for op in fwd + backward]


def _head(s: ShapeBatch, setup: TrainSetup) -> list[Op]:
    """Final norm, output head and loss, forward and backward: the last pipeline stage's extra work."""
    tp, elem, stream = setup.tensor_parallel, setup.bytes_per_element, setup.residual_bytes
    tokens, d, vocab = s.micro_batch_size * s.seq_len, s.d_model, s.vocab_size / tp
    sp = setup.sequence_parallel and tp > 1
    local = tokens / tp if sp else tokens
    gather = _sp_gather("final", tokens * d * elem, tp, sp)
    fwd = [_norm("final.norm", s, local, stream), *_autocast_cast("final.norm.cast", local * d, elem, stream),
           *gather, _gemm("head", 1, tokens, vocab, d, elem),
           # logits cast to fp32, log-softmax, negative log-likelihood
           Op("loss.cross_entropy", "loss", "forward", flops=5 * tokens * vocab,
              bytes_read=tokens * vocab * (elem + 4), bytes_written=tokens * vocab * 8, kernels=3.0)]
    if tp > 1:  # a vocabulary-parallel loss reduces the max logit, the target logit and the sum of exps
        fwd.append(_collective("loss.tp_all_reduce", "all_reduce", tokens * 4, tp, "tensor").times(3))
    backward = [b for op in fwd if op.collective is None for b in _backward(op)]
    if s.tied_embeddings and setup.pipeline_parallel == 1:  # the head's weight gradient joins the embedding's
        tied_sum = _stream("embed.tied_grad_sum", "elementwise", 2 * vocab * d, vocab * d, 1.0, GRAD_BYTES)
        backward.append(replace(tied_sum, phase="backward"))
    if sp:  # the head's input gradient, reduce-scattered back to the split tokens
        backward += _backward(gather[0])
    elif tp > 1:
        backward.append(
            _collective("head.tp_all_reduce", "all_reduce", tokens * d * elem, tp, "tensor", "backward"))
    return [replace(op, stage="last") for op in fwd + backward]


def _tied_embedding_sync(s: ShapeBatch, setup: TrainSetup) -> list[Op]:
    """With several stages the first and last each hold the tied embedding; Megatron all-reduces its
    gradient between the two once per step (instead of summing two gradients on one device)."""
    if not (s.tied_embeddings and setup.pipeline_parallel > 1):
        return []
    message = s.vocab_size / setup.tensor_parallel * s.d_model * GRAD_BYTES
    return [_collective("embed.pipeline_tied_all_reduce", "all_reduce", message, 2, "pipeline", "communication")]


def _matmul_weights(s: ShapeBatch, setup: TrainSetup) -> np.ndarray:
    non_embedding, embedding = param_counts(s)
    norms = (2 * s.n_layers + 1) * norm_params(s)  # two per block and the final one
    return ((non_embedding - norms) / setup.pipeline_parallel + embedding) / setup.tensor_parallel


def _weight_ops(s: ShapeBatch, setup: TrainSetup) -> list[Op]:
    """Per-step work on the parameters: precision casts, gradient accumulation, the optimizer update."""
    params = local_params(s, setup)
    tensors = n_param_tensors(s) / setup.pipeline_parallel
    micro = s.grad_accum_steps
    dp, zero = setup.data_parallel, (setup.zero_stage if setup.data_parallel > 1 else 0)
    # ZeRO: each data-parallel rank updates (stage >= 1) and, from stage 2, accumulates its 1 / dp shard
    updated = params / dp if zero >= 1 else params
    accumulated = params / dp if zero >= 2 else params
    ops = []
    if setup.autocast:
        # autocast casts each weight to 16 bits once per forward, and the weight gradient back to fp32
        weights = _matmul_weights(s, setup)
        cast = Op("weights.cast", "elementwise", "forward", flops=weights, bytes_read=4 * weights,
                  bytes_written=2 * weights, kernels=tensors, count=micro)
        ops += [cast, replace(cast, name="weights.cast.grad", phase="backward",
                              bytes_read=2 * weights, bytes_written=4 * weights)]
    elif setup.master_weights:  # the updated fp32 master weights copied to the 16-bit model, once per step
        ops.append(Op("weights.copy_to_model", "elementwise", "optimizer", flops=0.0, bytes_read=4 * updated,
                      bytes_written=2 * updated, kernels=tensors))
    ops.append(Op("grads.accumulate", "elementwise", "backward", flops=accumulated,
                  bytes_read=2 * GRAD_BYTES * accumulated, bytes_written=GRAD_BYTES * accumulated, kernels=tensors,
                  count=micro - 1))
    if setup.optimizer == "adamw":  # reads param, grad, two moments; writes param and moments
        foreach = ADAMW_FOREACH_OPS * np.maximum(np.ceil(tensors / FOREACH_TENSORS_PER_KERNEL),
                                                 np.ceil(updated / FOREACH_ELEMENTS_PER_KERNEL))
        ops.append(Op("optimizer.adamw", "optimizer", "optimizer", flops=16 * updated,
                      bytes_read=ADAMW_BYTES_READ * updated, bytes_written=ADAMW_BYTES_WRITTEN * updated,
                      kernels=12 * tensors, foreach_kernels=foreach))
    else:  # SGD with momentum: param, grad, momentum buffer
        ops.append(Op("optimizer.sgd", "optimizer", "optimizer", flops=4 * updated,
                      bytes_read=12 * updated, bytes_written=8 * updated, kernels=3 * tensors))
    return ops + _data_parallel_collectives(params, setup, micro, zero)


def _data_parallel_collectives(params, setup: TrainSetup, micro, zero: int) -> list[Op]:
    """The gradient (and, under ZeRO, weight) collectives of the data-parallel group, fp32 messages.

    Stage 0 all-reduces the gradients once per step. Stage 1 reduce-scatters them once (each rank gets the
    sum of its shard), updates its shard, and all-gathers the updated weights. Stage 2 shards the gradients
    too, so each micro-batch's gradients are reduce-scattered as they are produced. Stage 3 (FSDP) also
    shards the weights: each micro-batch all-gathers them for the forward and again for the backward, and
    reduce-scatters the gradients; the weights stay sharded after the update.
    """
    dp, message = setup.data_parallel, GRAD_BYTES * params
    if dp == 1:
        return []
    if zero == 0:
        return [_collective("grads.dp_all_reduce", "all_reduce", message, dp, "data", "communication")]
    # the weights travel as the model holds them: fp32 under autocast, 16-bit with weights_in_16_bits
    weights = params * (setup.bytes_per_element if setup.master_weights else GRAD_BYTES)
    scatter = _collective("grads.dp_reduce_scatter", "reduce_scatter", message, dp, "data", "backward")
    gather = _collective("params.dp_all_gather", "all_gather", weights, dp, "data", "communication")
    if zero == 1:
        return [replace(scatter, phase="communication"), gather]
    if zero == 2:
        return [scatter.times(micro), gather]
    return [replace(gather, phase="forward").times(micro),
            replace(gather, name="params.dp_all_gather.bwd", phase="backward").times(micro),
            scatter.times(micro)]


# Selective recomputation (Korthikanti et al. 2022) reruns the attention core, whose saved tensors grow with
# seq_len squared. torch's non-reentrant checkpoint of the unfused core stops once the softmax output (the
# last tensor the backward needs) is rebuilt, so the scores and the softmax run again and the weighted values
# do not (Megatron's reentrant checkpoint reruns that product too). A flash kernel saves no score matrix and
# recomputes it inside its own backward, so there is nothing more to rerun.
SELECTIVE = ("attn.scores", "attn.softmax")


def _recomputed(layer_fwd: list[Op]) -> list[Op]:
    """The block ops torch's checkpoint runs again in the backward.

    Non-reentrant checkpointing stops recomputing once it has rebuilt the last tensor the backward needs,
    the MLP activation (the input of mlp.proj), so the output projection and what follows it are not rerun.
    """
    forward = [op for op in layer_fwd if op.phase == "forward"]
    last = next(i for i, op in enumerate(forward) if op.name == "mlp.proj")
    return forward[:last]


def step_ops(s: ShapeBatch, setup: TrainSetup) -> list[Op]:
    """Every operation of one optimizer step on one device, with occurrence counts."""
    micro = s.grad_accum_steps
    layers = s.n_layers / setup.pipeline_parallel
    layer_fwd = _layer_forward(s, setup)
    ops = [op.times(layers * micro) for op in _with_backward(layer_fwd)]
    if setup.activation_checkpointing == "full":
        ops += [replace(op, phase="recompute").times(layers * micro) for op in _recomputed(layer_fwd)]
    elif setup.activation_checkpointing == "selective":
        ops += [replace(op, phase="recompute").times(layers * micro) for op in layer_fwd if op.name in SELECTIVE]
    ops += [op.times(micro) for op in _embedding(s, setup) + _head(s, setup)]
    if setup.pipeline_parallel > 1:
        ops += _pipeline_exchanges(s, setup)
    return ops + _tied_embedding_sync(s, setup) + _weight_ops(s, setup)


def _pipeline_exchanges(s: ShapeBatch, setup: TrainSetup) -> list[Op]:
    """The activations a stage passes on in the forward and the gradients it passes back, per micro-batch
    and model chunk. 1F1B pairs each send with the receive going the other way on the same link (Megatron's
    send_forward_recv_backward and send_backward_recv_forward), so on full-duplex links one exchange per
    micro-batch and direction is on the critical path. Under tensor parallelism each rank sends 1 / tp of
    the activation (Megatron's scatter/gather of pipeline tensors, Narayanan et al. 2021 section 4.1), and
    the receiving group all-gathers it inside the node; with sequence parallelism it is split already."""
    tp, micro = setup.tensor_parallel, s.grad_accum_steps
    activation = s.micro_batch_size * s.seq_len * s.d_model * setup.residual_bytes  # the residual stream
    exchanges = micro * setup.pipeline_interleave  # an interleaved stage sends once per model chunk
    p2p = _collective("pipeline.p2p", "p2p", activation / tp, 2, "pipeline")
    ops = [p2p.times(exchanges), replace(p2p, phase="backward").times(exchanges)]
    if tp > 1 and not setup.sequence_parallel:
        gather = _collective("pipeline.tp_all_gather", "all_gather", activation, tp, "tensor")
        ops += [gather.times(exchanges), replace(gather, phase="backward").times(exchanges)]
    return ops


def _as_number(value):
    value = np.asarray(value)
    return float(value) if value.ndim == 0 else value


@dataclass(frozen=True)
class Ledger:
    """One training step on one device: its operations and their totals; the memory it needs on request.

    The inventory is all the step-time estimators read. The memory footprint (timelaw.memory) is computed
    the first time `.memory` is asked for, and the text table lives in timelaw.ledger_table.
    """

    ops: tuple[Op, ...]
    shapes: Optional[ShapeBatch] = None
    setup: Optional[TrainSetup] = None

    def total(self, field: str, cls: Optional[str] = None, phase: Optional[str] = None):
        """Sum of `field` ("flops", "bytes_read", "bytes_written", "bytes", "kernels", "message_bytes")
        times count. "bytes" is memory traffic only; what collectives send is "message_bytes"."""
        return _as_number(sum(
            getattr(op, field) * op.count for op in self.ops
            if (cls is None or op.cls == cls) and (phase is None or op.phase == phase)
        ))

    @property
    def totals(self) -> dict:
        return {f: self.total(f) for f in ("flops", "bytes_read", "bytes_written", "kernels", "message_bytes")}

    def by_class(self) -> dict[str, dict]:
        present = [c for c in OP_CLASSES if any(op.cls == c for op in self.ops)]
        fields = ("flops", "bytes", "kernels", "message_bytes")
        return {c: {f: self.total(f, cls=c) for f in fields} for c in present}

    @cached_property
    def memory(self) -> MemoryFootprint:
        """Weights, gradients, optimizer state and activations on one device (computed once, when asked)."""
        if self.shapes is None or self.setup is None:
            raise ValueError("this Ledger was built from ops alone; build it with ledger(cfg, setup) for memory")
        return memory_footprint(self.shapes, self.setup)

    def rows(self) -> list[dict]:
        """One dict per operation with per-step totals (count x per-occurrence values)."""
        from timelaw.ledger_table import op_rows

        return op_rows(self)

    def table(self) -> str:
        """A readable per-operation table of one config's step (flops, bytes, kernels, messages)."""
        from timelaw.ledger_table import render

        return render(self)


def ledger(cfg: TransformerConfig | ShapeBatch, setup: TrainSetup | None = None) -> Ledger:
    """The inventory of one full training step of `cfg` under `setup` (default TrainSetup()).

    Pass a ShapeBatch instead of a config to get every total as an array over many shapes at once.
    """
    setup = setup or TrainSetup()
    shapes = cfg if isinstance(cfg, ShapeBatch) else ShapeBatch.from_config(cfg, setup)
    return Ledger(ops=tuple(step_ops(shapes, setup)), shapes=shapes, setup=setup)
