"""Train the reference model for a fixed wall-clock budget, counting training steps only.

The budget clock runs only while a training step runs (batch assembly, forward, backward, update).
Evaluation on the held-out split and the timing probe run outside it and are reported separately.

The LR schedule's length comes from predicted steps: a short probe of the shape predicts the first plan
(budget / probe step time); before every step the plan is re-predicted as the steps done plus the steps
that still fit, (budget left) / (median of the recent step times). The step that uses up the plan runs at
progress 1 (the final LR) and is the last, so every run ends annealed at the end of its budget however much
the machine's speed drifts. A step is planned only if it fits; if a slow step spends the budget before the
plan reached its end, one more step runs at the final LR, so a run can overrun its budget by one step.
"""
from __future__ import annotations

import math
import os
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional

from timelaw.config import TrainSetup, TransformerConfig
from timelaw.training.data import Batcher, Corpus, heldout_windows
from timelaw.training.schedule import default_lr, lr_at

__all__ = ["TrainOptions", "RunResult", "train_for_budget", "heldout_loss"]

RECENT_STEPS = 16  # step times the plan is re-predicted from: enough to ignore a spike, short enough to follow load


@dataclass(frozen=True)
class TrainOptions:
    """How each pilot run trains and evaluates (the shape, setup, budget and seed are given per run)."""

    schedule: str = "cosine"
    lr: Optional[float] = None  # peak LR; None: default_lr(d_model)
    warmup_fraction: float = 0.05
    final_lr_fraction: float = 0.1
    eval_windows: int = 256  # held-out sequences per evaluation (the same ones for every run on a corpus)
    evals: int = 3  # held-out evaluations during the run, for the curve; the final one comes on top
    probe_steps: int = 3
    curve_points: int = 100

    def peak_lr(self, cfg: TransformerConfig) -> float:
        return self.lr if self.lr is not None else default_lr(cfg.d_model)


@dataclass(frozen=True)
class RunResult:
    config: TransformerConfig
    setup: TrainSetup
    budget_seconds: float
    seed: int
    steps: int
    tokens: int  # training tokens seen (D)
    unique_tokens: int  # size of the training split (U)
    loss: float  # final held-out loss, nats per token
    train_loss: float  # mean training loss over the last curve interval
    train_seconds: float  # what the budget counted
    eval_seconds: float  # held-out evaluation, outside the budget
    probe_seconds: float  # the timing probe, outside the budget
    wall_seconds: float
    predicted_steps: int  # from the probe, before training
    step_seconds: tuple  # every measured step
    lr_peak: float
    lr_last: float  # LR of the last step: the schedule's final LR when the run ended annealed
    lr_final: float  # the schedule's final LR
    threads: int
    load_start: float  # 1-minute load average of the machine, before and after: wall clocks are shared
    load_end: float
    curve: list = field(default_factory=list, repr=False)

    @property
    def seconds_per_step(self) -> float:
        """Mean training seconds per step: what the budget bought, spikes included."""
        return self.train_seconds / self.steps

    @property
    def median_step_seconds(self) -> float:
        return statistics.median(self.step_seconds)

    @property
    def epochs(self) -> float:
        return self.tokens / self.unique_tokens


class _BudgetClock:
    """Training seconds spent, and how many more steps fit, from the recent step times."""

    def __init__(self, budget_seconds: float, first_estimate: float):
        self.budget, self.spent = budget_seconds, 0.0
        self.first_estimate = first_estimate
        self.recent: deque = deque(maxlen=RECENT_STEPS)
        self.all: list = []

    def step_estimate(self) -> float:
        return statistics.median(self.recent) if self.recent else self.first_estimate

    def steps_left(self) -> int:
        return math.floor((self.budget - self.spent) / self.step_estimate())

    def record(self, seconds: float) -> None:
        self.spent += seconds
        self.recent.append(seconds)
        self.all.append(seconds)


def heldout_loss(model, windows, setup: TrainSetup, batch_size: int = 32) -> float:
    """Mean cross-entropy (nats per token) of `model` on held-out windows (seq_len + 1 tokens each)."""
    import torch
    import torch.nn.functional as F

    from timelaw.reference import autocast

    device = next(model.parameters()).device
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for chunk in windows.split(batch_size):
            with autocast(device, setup.precision):
                logits = model(chunk[:, :-1])
            targets = chunk[:, 1:]
            total += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                     reduction="sum").item()
            count += targets.numel()
    model.train()
    return total / count


def _probe(cfg, setup, device, options: TrainOptions, seed: int) -> float:
    from timelaw.reference import time_training_steps

    return time_training_steps(cfg, setup, device, steps=options.probe_steps, warmup_steps=1, seed=seed).seconds


def _timed_eval(model, windows, setup) -> tuple[float, float]:
    start = time.perf_counter()
    loss = heldout_loss(model, windows, setup)
    return loss, time.perf_counter() - start


def train_for_budget(cfg: TransformerConfig, setup: TrainSetup, corpus: Corpus, budget_seconds: float,
                     seed: int = 0, options: TrainOptions = TrainOptions(), device: str = "cpu",
                     on_step: Optional[Callable[[float, float], None]] = None) -> RunResult:
    """Train `cfg` on `corpus` for `budget_seconds` of training steps; `on_step(fraction, loss)` follows it."""
    import torch

    from timelaw.reference import build_model, make_optimizer, train_step

    wall_start, load_start = time.perf_counter(), os.getloadavg()[0]
    probe_step = _probe(cfg, setup, device, options, seed)
    probe_seconds = time.perf_counter() - wall_start
    if probe_step > budget_seconds:
        raise ValueError(f"budget of {budget_seconds:g}s is shorter than one training step of "
                         f"d_model={cfg.d_model}, n_layers={cfg.n_layers} ({probe_step:.2f}s); raise the budget")

    torch.manual_seed(seed)
    model = build_model(cfg, setup).to(device)
    optimizer = make_optimizer(model, setup)
    batcher = Batcher(corpus.train, cfg.seq_len, seed)
    windows = torch.from_numpy(heldout_windows(corpus.heldout, cfg.seq_len, options.eval_windows)).to(device)
    peak = options.peak_lr(cfg)
    schedule = dict(peak=peak, schedule=options.schedule, warmup_fraction=options.warmup_fraction,
                    final_fraction=options.final_lr_fraction)
    clock = _BudgetClock(budget_seconds, probe_step)
    predicted_steps = clock.steps_left()
    tokens_per_step = setup.global_batch_size * cfg.seq_len
    log_every = max(1, predicted_steps // options.curve_points)
    recent_losses = deque(maxlen=log_every)  # training loss is reported as the mean over a curve interval
    eval_marks = deque(budget_seconds * k / (options.evals + 1) for k in range(1, options.evals + 1))
    curve, eval_seconds, steps, progress = [], 0.0, 0, 0.0

    def point(**values) -> dict:
        return dict(step=steps, tokens=steps * tokens_per_step, train_seconds=clock.spent, **values)

    while progress < 1.0:
        # At least one step left: when a slow step spent the budget early, one more runs at the final LR.
        left = max(clock.steps_left(), 1)
        progress = (steps + 1) / (steps + left)
        lr = lr_at(progress, **schedule)
        for group in optimizer.param_groups:
            group["lr"] = lr
        start = time.perf_counter()
        batches = [tuple(t.to(device) for t in batcher.next(setup.micro_batch_size))
                   for _ in range(setup.grad_accum_steps)]
        recent_losses.append(float(train_step(model, optimizer, batches, setup)))  # float() syncs the device
        clock.record(time.perf_counter() - start)
        steps += 1
        if on_step:
            on_step(clock.spent / budget_seconds, recent_losses[-1])
        if steps % log_every == 0:
            curve.append(point(lr=lr, train_loss=statistics.fmean(recent_losses)))
        if eval_marks and clock.spent >= eval_marks[0]:
            eval_marks.popleft()
            loss, seconds = _timed_eval(model, windows, setup)
            curve.append(point(heldout_loss=loss))
            eval_seconds += seconds

    final, seconds = _timed_eval(model, windows, setup)
    curve.append(point(heldout_loss=final))
    return RunResult(
        config=cfg, setup=setup, budget_seconds=budget_seconds, seed=seed, steps=steps,
        tokens=steps * tokens_per_step, unique_tokens=corpus.unique_tokens, loss=final,
        train_loss=statistics.fmean(recent_losses), train_seconds=clock.spent, eval_seconds=eval_seconds + seconds,
        probe_seconds=probe_seconds, wall_seconds=time.perf_counter() - wall_start,
        predicted_steps=predicted_steps, step_seconds=tuple(clock.all), lr_peak=peak, lr_last=lr,
        lr_final=peak * options.final_lr_fraction, threads=torch.get_num_threads(), load_start=load_start,
        load_end=os.getloadavg()[0], curve=curve,
    )
