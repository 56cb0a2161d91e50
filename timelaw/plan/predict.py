"""predict_loss: the final loss of one configuration trained for a wall-clock budget on one device."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from timelaw.config import TrainSetup, TransformerConfig
from timelaw.ledger import ledger
from timelaw.plan.evaluate import Evaluated, evaluate, loss_for_tokens, steps_in
from timelaw.plan.inputs import LawChoice, resolve_device, resolve_law, resolve_setup, single_budget
from timelaw.plan.uncertainty import BAND_LEVEL, loss_band, time_uncertainty
from timelaw.shapes import ShapeBatch

__all__ = ["Prediction", "predict_loss", "GIB"]

GIB = 2.0 ** 30
COMMUNICATION_NOTE_SHARE = 0.25  # a step spending more than this on collectives gets a note
MODEL_FLOP_CLASSES = ("matmul", "attention")


@dataclass(frozen=True)
class Prediction:
    """What training `config` under `setup` for `budget_seconds` on a device reaches, and why.

    Losses are in nats per token on the data the law was fitted on. `loss_low`/`loss_high` is a ~90% band
    (see `band`). `notes` lists everything a reader should be warned about (spec-sheet profile, default law).
    """

    loss: float
    loss_low: float
    loss_high: float
    band: str
    tokens: float
    steps: int
    seconds_per_step: float
    tokens_per_step: float
    tokens_per_second: float
    epochs: Optional[float]
    mfu: float
    n_params: int
    n_params_law: int
    n_count: str
    memory_bytes: float
    device_memory_bytes: float
    budget_seconds: float
    breakdown: dict
    config: TransformerConfig
    setup: TrainSetup
    profile: str
    spec_sheet: bool
    law: str
    default_law: bool
    method: str
    unique_tokens: Optional[float] = None
    notes: tuple = field(default_factory=tuple)
    devices: int = 1  # tensor x pipeline x data parallel
    dollars: Optional[float] = None  # devices x hours x price per device-hour, when a price is given
    energy_kwh: Optional[float] = None  # devices x hours x watts per device, when the power is given

    @property
    def hours(self) -> float:
        return self.budget_seconds / 3600.0

    @property
    def text(self) -> str:
        c = self.config
        lines = [
            f"predicted loss {self.loss:.4f} nats/token  (band {self.loss_low:.4f} .. {self.loss_high:.4f})",
            f"  model      d_model={c.d_model} n_layers={c.n_layers} n_heads={c.n_heads} mlp={c.mlp} "
            f"seq_len={c.seq_len} vocab={c.vocab_size}: {self.n_params / 1e6:.1f}M parameters "
            f"(law sees {self.n_count}: {self.n_params_law / 1e6:.1f}M)",
            f"  budget     {_duration(self.budget_seconds)}: {self.steps:,} steps x {self.tokens_per_step:,.0f} "
            f"tokens = {self.tokens:.4g} tokens" + (f" = {self.epochs:.2f} epochs" if self.epochs else ""),
            f"  speed      {self.seconds_per_step:.4g} s/step, {self.tokens_per_second:,.0f} tokens/s, "
            f"MFU {self.mfu:.1%}",
            f"  memory     {self.memory_bytes / GIB:.2f} of {self.device_memory_bytes / GIB:.1f} GiB"
            + (f" per device, {self.devices} devices" if self.devices > 1 else ""),
            f"  layout     {_layout_text(self.setup)}",
            f"  profile    {self.profile} ({self.method} step-time model)",
            f"  law        {self.law}",
            f"  band       {self.band}",
        ]
        if self.dollars is not None or self.energy_kwh is not None:
            paid = [f"${self.dollars:,.2f}" if self.dollars is not None else None,
                    f"{self.energy_kwh:,.1f} kWh" if self.energy_kwh is not None else None]
            lines.append(f"  cost       {' and '.join(x for x in paid if x)} ({self.devices} device{'s' if self.devices > 1 else ''} x "
                         f"{self.hours:.4g} h)")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return (f"Prediction(loss={self.loss:.4f} [{self.loss_low:.4f}, {self.loss_high:.4f}], "
                f"{self.n_params / 1e6:.1f}M params, {self.tokens:.3g} tokens in {_duration(self.budget_seconds)}, "
                f"{self.seconds_per_step:.4g} s/step, MFU {self.mfu:.1%}, profile {self.profile!r}, law {self.law!r})")

    def _repr_html_(self) -> str:
        return _pre(self.text)

    def to_dict(self) -> dict:
        """JSON-ready: plain numbers, the config and setup as dicts."""
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out.update(config=self.config.model_dump(), setup=self.setup.model_dump(), notes=list(self.notes),
                   breakdown={k: float(v) for k, v in self.breakdown.items()}, hours=self.hours)
        return out


def _pre(text: str) -> str:
    """Notebook display of a result: its text report, preformatted."""
    import html

    return f"<pre>{html.escape(text)}</pre>"


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.4g} h"
    return f"{seconds / 60:.4g} min" if seconds >= 60 else f"{seconds:.4g} s"


def model_flops_per_step(step) -> float:
    """Matmul and attention flops of the forward pass x 3 (backward = 2 x forward; recomputation and the
    flash kernel's extra backward work excluded), as in PaLM's MFU."""
    forward = sum(float(np.sum(op.flops * op.count)) for op in step.ops
                  if op.cls in MODEL_FLOP_CLASSES and op.phase == "forward")
    return 3.0 * forward


def check_memory(ev: Evaluated, device, cfg: TransformerConfig) -> None:
    need, have = float(ev.memory_bytes), float(device.memory_bytes)
    if need > have:
        raise ValueError(
            f"d_model={cfg.d_model}, n_layers={cfg.n_layers} needs {need / GIB:.2f} GiB per device to train "
            f"(weights, gradients, optimizer state, activations) but {device.name} has {have / GIB:.2f} GiB: "
            f"{(need - have) / GIB:.2f} GiB too much. Use a smaller micro_batch_size, "
            "activation_checkpointing='full', or tensor/pipeline parallelism."
        )


def _layout_text(s) -> str:
    """How the step runs, in one line: batch split, parallel layout (when there is one), precision choices."""
    parts = [f"{s.global_batch_size} sequences/step = micro-batch {s.micro_batch_size} x {s.grad_accum_steps} "
             f"accumulation x {s.data_parallel} data parallel"]
    if s.n_devices > 1:
        parts.append(f"tensor {s.tensor_parallel} x pipeline {s.pipeline_parallel}"
                     + (f" (interleave {s.pipeline_interleave})" if s.pipeline_interleave > 1 else "")
                     + (", sequence parallel" if s.sequence_parallel else "")
                     + (f", ZeRO {s.zero_stage}" if s.zero_stage else "")
                     + (", overlapped gradient reduction" if s.overlap_grad_reduce else ""))
    parts.append(f"{s.precision}" + (" with 16-bit weights" if s.weights_in_16_bits else "")
                 + f", {s.optimizer}, checkpointing {s.activation_checkpointing}, {s.attention} attention")
    return "; ".join(parts)


def law_notes(law_choice: LawChoice, excursions, inputs: dict, loss: float, steps: float | None = None) -> list:
    """What a reader should know about the law at this point: extrapolation, the batch term (and whether
    `steps` optimizer steps lie below the runs it was measured on), the bounds."""
    law, notes = law_choice.law, [f"outside the law's fitted range: {e.text}" for e in excursions]
    if getattr(law, "range_", None) is None:
        notes.append(f"{law_choice.name} does not record the range it was fitted on, so extrapolation is not checked")
    if not getattr(law, "uses_shape", False):
        notes.append(f"{law_choice.name} does not see the model's shape: at equal N every width and depth gets the "
                     "same loss, so the planner favours the fastest (shallowest) shapes")
    critical = getattr(law, "critical_batch_", None)
    if critical is None:
        notes.append(f"{law_choice.name} has no batch term: a larger batch looks free to it")
    else:
        ratio = float(inputs["batch_tokens"]) / float(critical.tokens(loss))
        if ratio > 1:
            notes.append(f"the batch ({float(inputs['batch_tokens']):,.0f} tokens) is {ratio:.2g} x the critical batch "
                         f"at this loss ({float(critical.tokens(loss)):,.0f} tokens): each token counts "
                         f"{1 / (1 + ratio):.0%} of a small-batch token")
        if steps is not None and critical.min_steps is not None and steps < critical.min_steps:
            source = critical.source.split(" (")[0]
            notes.append(f"{steps:,.0f} optimizer steps is below the {critical.min_steps:,.0f} of the runs the batch "
                         f"term was measured on ({source}): so short a run is mostly warmup, and its batch "
                         "discount is an extrapolation")
    if loss >= 0.9 * math.log(float(inputs["vocab_size"])):
        notes.append(f"the loss is near ln(vocab) = {math.log(float(inputs['vocab_size'])):.2f}, a uniform guess: "
                     "the model has barely started training")
    return notes


def communication_note(breakdown: dict) -> list:
    """A note when collectives (the breakdown's *_parallel entries) take more than COMMUNICATION_NOTE_SHARE."""
    total = sum(breakdown.values())
    parts = {k: v for k, v in breakdown.items() if k.endswith("_parallel") and v > 0}
    share = sum(parts.values()) / total if total > 0 else 0.0
    if share <= COMMUNICATION_NOTE_SHARE:
        return []
    largest = max(parts, key=parts.get)
    return [f"communication takes {share:.0%} of the step (most: {largest.replace('_', ' ')}, "
            f"{parts[largest] / total:.0%}): more devices buy less than they cost"]


def _notes(device, law_choice: LawChoice, unique_tokens, epochs) -> tuple:
    notes = []
    if not device.calibrated:
        notes.append(f"profile {device.name!r} is a spec sheet, not measured on this machine: step times rest "
                     "on published peaks and assumed efficiencies (run `timelaw calibrate` to measure)")
    if law_choice.is_default:
        notes.append(f"no law given: using the preset {law_choice.name!r} (docs/laws.md); absolute losses are on "
                     "the data its constants were fitted on (its citation says which), so trust differences "
                     "between shapes and batches more than the value")
    if unique_tokens is not None and not law_choice.uses_unique_tokens:
        notes.append(f"{law_choice.name} does not model repeated data: unique_tokens only sets the epoch count")
    elif epochs is not None and epochs > 1:
        notes.append(f"the data is seen {epochs:.1f} times; the law discounts repeated tokens")
    return tuple(notes)


def prediction_for(ev: Evaluated, budget: float, estimator, law_choice: LawChoice, unique_tokens,
                   method: str, step=None) -> Prediction:
    """The Prediction of the single shape in `ev` (a batch of one), the budget already checked; `step` is its
    ledger, when built already."""
    device, setup = getattr(estimator, "system", None) or estimator.profile, ev.setup  # a System labels itself
    cfg = ev.shapes.to_config()
    check_memory(ev, device, cfg)
    seconds = float(ev.seconds_per_step)
    steps = float(steps_in(budget, seconds))
    if steps < 1:
        raise ValueError(f"the budget ({_duration(budget)}) is shorter than one optimizer step "
                         f"({seconds:.4g} s) of this configuration")
    tokens = steps * float(ev.tokens_per_step)
    n_law = ev.n_for_law(law_choice.n_count)
    inputs = ev.law_inputs()
    loss = float(loss_for_tokens(law_choice, n_law, tokens, unique_tokens, **inputs))
    fit_range = getattr(law_choice.law, "range_", None)
    excursions = [] if fit_range is None else fit_range.excursions(
        float(n_law), tokens, cfg.d_model / cfg.n_layers, cfg.n_layers, float(ev.tokens_per_step))
    band = loss_band(law_choice, n_law, tokens, unique_tokens, loss, *time_uncertainty(estimator, device, method),
                     inputs=inputs, excursions=excursions)
    epochs = None if unique_tokens is None else tokens / float(unique_tokens)
    step = ledger(ev.shapes, setup) if step is None else step
    breakdown = estimator.breakdown(cfg, setup, step=step) if hasattr(estimator, "breakdown") else {method: seconds}
    flops = model_flops_per_step(step)
    return Prediction(
        loss=loss, loss_low=band.low, loss_high=band.high, band=f"~{BAND_LEVEL:.0%}: {band.description}",
        tokens=tokens, steps=int(steps), seconds_per_step=seconds, tokens_per_step=float(ev.tokens_per_step),
        tokens_per_second=float(ev.tokens_per_step) / seconds, epochs=epochs,
        mfu=flops / (seconds * device.peak(setup.precision)),
        n_params=int(ev.n_total), n_params_law=int(n_law), n_count=law_choice.n_count,
        memory_bytes=float(ev.memory_bytes), device_memory_bytes=float(device.memory_bytes),
        budget_seconds=budget, breakdown={k: float(v) for k, v in breakdown.items()}, config=cfg, setup=setup,
        profile=device.label, spec_sheet=not device.calibrated, law=law_choice.name,
        default_law=law_choice.is_default, method=method,
        unique_tokens=None if unique_tokens is None else float(unique_tokens),
        notes=_notes(device, law_choice, unique_tokens, epochs)
        + tuple(law_notes(law_choice, excursions, inputs, loss, steps))
        + tuple(communication_note(breakdown)),
        devices=setup.n_devices,
    )


def predict_resolved(cfg: TransformerConfig, budget: float, setup: TrainSetup, estimator,
                     law_choice: LawChoice, unique_tokens, method: str) -> Prediction:
    """predict_loss once its inputs are resolved (optimize calls this on the shape it picked). The step's
    ledger is built once and serves the step time, the memory, the breakdown and the MFU."""
    shapes = ShapeBatch.from_config(cfg, setup)
    step = ledger(shapes, setup)
    ev = evaluate(shapes, setup, estimator, step=step)
    return prediction_for(ev, budget, estimator, law_choice, unique_tokens, method, step=step)


def predict_loss(cfg: TransformerConfig, hours=None, minutes=None, seconds=None, *,
                 setup: TrainSetup | None = None, profile=None, law=None, unique_tokens=None,
                 method: str = "roofline", n_count: str | None = None) -> Prediction:
    """The loss `cfg` reaches when trained for the budget (exactly one of hours, minutes, seconds).

    profile: a DeviceProfile, a profile name or path, a fitted time model, or None for this machine's
      calibrated profile if there is one, else the shipped default (a spec sheet; the Prediction says so).
    law: a preset name, a law JSON path, a law object, or None for "epoch2024" ("muennighoff2023" when
      unique_tokens is given). setup: None for TrainSetup() (in fp32 if the profile has no bf16 peak).
    n_count: the parameter count the law sees, "total" (Chinchilla, Epoch,
      Muennighoff) or "non_embedding" (Kaplan); by default the one the law's form was fitted on.
    unique_tokens: size of the data set in tokens; training past it repeats data.
    Raises ValueError for a bad budget (naming the argument), a config that does not fit in the device's
    memory (saying by how much), or a budget shorter than one step.
    """
    budget = single_budget(hours, minutes, seconds)
    estimator, device = resolve_device(profile, method)
    setup = resolve_setup(setup, device)
    law_choice = resolve_law(law, unique_tokens, n_count)
    return predict_resolved(cfg, budget, setup, estimator, law_choice, unique_tokens, method)
