"""The planner's one code path: shapes -> step time, tokens per step, parameters, memory -> loss in a budget.

`predict_loss` runs it on a batch of one config and `optimize` / `frontier` on a million candidates, so the
loss optimize reports for a shape is the loss predict_loss gives for it, to the last bit.

    seconds_per_step = estimator(shapes, setup)
    steps            = floor(budget_seconds / seconds_per_step)      (whole optimizer steps)
    tokens           = steps x global_batch x seq_len
    loss             = law(N, tokens, unique_tokens, shape, batch, vocab)   (N: total or non-embedding, per the law)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from timelaw.config import TrainSetup, sequences_per_step
from timelaw.memory import memory_footprint
from timelaw.params import param_counts
from timelaw.shapes import ShapeBatch

__all__ = ["Evaluated", "evaluate", "step_seconds", "steps_in", "loss_for_tokens"]


def step_seconds(estimator, shapes: ShapeBatch, setup: TrainSetup, step=None) -> np.ndarray:
    """Seconds per optimizer step; bit-identical for a shape alone and inside a batch (see predict_features).
    `step`: the shapes' ledger when the caller has built it already."""
    return estimator.predict(shapes, setup, step=step)


@dataclass(frozen=True)
class Evaluated:
    """What a budget does not change, for every shape of a batch (arrays broadcast to the batch)."""

    shapes: ShapeBatch
    setup: TrainSetup
    seconds_per_step: np.ndarray
    tokens_per_step: np.ndarray
    n_total: np.ndarray
    n_non_embedding: np.ndarray
    memory_bytes: np.ndarray

    def n_for_law(self, n_count: str) -> np.ndarray:
        return self.n_total if n_count == "total" else self.n_non_embedding

    def law_inputs(self) -> dict:
        """What a law may see besides N and D: the shape, the batch and the vocabulary (see loss_for_tokens)."""
        return law_inputs(self.shapes.d_model, self.shapes.n_layers, self.tokens_per_step, self.shapes.vocab_size)

    def take(self, index) -> "Evaluated":
        arrays = {name: getattr(self, name)[index] for name in _ARRAYS}
        return Evaluated(shapes=self.shapes.take(index), setup=self.setup, **arrays)


_ARRAYS = ("seconds_per_step", "tokens_per_step", "n_total", "n_non_embedding", "memory_bytes")


def tokens_per_step(shapes: ShapeBatch, setup: TrainSetup) -> np.ndarray:
    """Tokens one optimizer step trains on, over all data-parallel ranks."""
    return sequences_per_step(shapes.micro_batch_size, setup.data_parallel, shapes.grad_accum_steps) * shapes.seq_len


def training_memory(shapes: ShapeBatch, setup: TrainSetup) -> np.ndarray:
    """Bytes one device needs to train (the ledger's memory footprint)."""
    return memory_footprint(shapes, setup).total_bytes


def evaluate(shapes: ShapeBatch, setup: TrainSetup, estimator, memory_bytes=None, step=None) -> Evaluated:
    """Step time, tokens per step, parameter counts and memory of every shape (memory and the ledger may be
    passed in)."""
    if memory_bytes is None:
        memory_bytes = training_memory(shapes, setup) if step is None else step.memory.total_bytes
    non_embedding, embedding = param_counts(shapes)
    arrays = np.broadcast_arrays(
        step_seconds(estimator, shapes, setup, step), tokens_per_step(shapes, setup),
        non_embedding + embedding, non_embedding, memory_bytes,
    )
    return Evaluated(shapes, setup, *arrays)


def steps_in(budget_seconds, seconds_per_step) -> np.ndarray:
    """Whole optimizer steps that fit in the budget."""
    return np.floor(np.asarray(budget_seconds) / seconds_per_step)


def law_inputs(d_model, n_layers, tokens_per_step, vocab_size) -> dict:
    """The keyword inputs of LossLaw.predict besides N, D and U."""
    return {"d_model": d_model, "n_layers": n_layers, "batch_tokens": tokens_per_step, "vocab_size": vocab_size}


def loss_for_tokens(law_choice, n_params, tokens, unique_tokens=None, **inputs) -> np.ndarray:
    """The law's loss; infinite where no token is trained (a budget shorter than one step).

    `inputs` (see law_inputs): the shape, the batch in tokens and the vocabulary, which bounds the loss by
    ln(vocab_size); each law uses what its form sees.
    """
    tokens = np.asarray(tokens, dtype=np.float64)
    trained = tokens > 0
    loss = law_choice.law.predict(n_params, np.where(trained, tokens, 1.0), unique_tokens, **inputs)
    return np.where(trained, loss, np.inf)
