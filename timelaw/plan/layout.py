"""best_layout: the fastest way to lay a fixed model and global batch out over n devices.

Every layout the setup's fields allow is tried: tensor parallel t (a power of two dividing the heads and KV
heads, inside one node of a System: Megatron's practice, since a group across nodes all-reduces every layer
over the network), pipeline stages p (dividing the layers), data parallel d = n / (t p) (dividing the global batch),
interleaved chunks v (when p > 1 and p v divides the layers), sequence parallelism (when t > 1), the ZeRO
stage (0-3, when d > 1), activation checkpointing (none, selective, full) and the micro-batch (the powers of
two dividing the per-rank batch). The setup's other choices (precision, optimizer, attention kernel, DDP
overlap) are kept. The micro-batches of one structural
layout are priced together, as one ShapeBatch (no Python loop over them); layouts that do not fit in the
device's memory are dropped, and the fastest step wins (on a tie, fewer devices per tensor group, then
less memory).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from timelaw.config import TrainSetup, TransformerConfig, check_compatible
from timelaw.memory import memory_footprint
from timelaw.plan.inputs import resolve_device, resolve_setup
from timelaw.plan.predict import GIB, model_flops_per_step
from timelaw.shapes import ShapeBatch

__all__ = ["Layout", "best_layout", "LAYOUT_COLUMNS"]

LAYOUT_COLUMNS = ("rank", "tensor_parallel", "pipeline_parallel", "pipeline_interleave", "data_parallel",
                  "sequence_parallel", "zero_stage", "micro_batch_size", "grad_accum_steps",
                  "activation_checkpointing", "seconds_per_step", "tokens_per_second", "memory_gib")
ZERO_STAGES = (0, 1, 2, 3)
INTERLEAVES = (1, 2, 4)


@dataclass(frozen=True)
class Layout:
    """The fastest feasible layout (`setup`) and its step, with the ranked table of the layouts tried."""

    config: TransformerConfig
    setup: TrainSetup
    devices: int
    seconds_per_step: float
    tokens_per_step: float
    tokens_per_second: float
    mfu: float
    memory_bytes: float
    device_memory_bytes: float
    profile: str
    table: list
    n_layouts: int
    n_feasible: int
    notes: tuple = ()

    @property
    def text(self) -> str:
        from timelaw.plan.report import format_table

        s = self.setup
        head = (f"fastest of {self.n_feasible:,} feasible layouts ({self.n_layouts:,} tried) on {self.devices} "
                f"devices of {self.profile}: tensor {s.tensor_parallel} x pipeline {s.pipeline_parallel} "
                f"(interleave {s.pipeline_interleave}) x data {s.data_parallel}, sequence parallel "
                f"{s.sequence_parallel}, ZeRO {s.zero_stage}, micro-batch {s.micro_batch_size}, "
                f"checkpointing {s.activation_checkpointing}: {self.seconds_per_step:.4g} s/step, "
                f"{self.tokens_per_second / self.devices:,.0f} tokens/s per device, MFU {self.mfu:.1%}, "
                f"{self.memory_bytes / GIB:.1f} of {self.device_memory_bytes / GIB:.0f} GiB")
        return "\n".join([head, format_table(self.table, LAYOUT_COLUMNS)] + [f"note: {n}" for n in self.notes])

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict:
        """JSON-ready: the scalar fields, the config and setup (model_dump), the ranked table and the notes."""
        return {"config": self.config.model_dump(), "setup": self.setup.model_dump(), "devices": self.devices,
                "seconds_per_step": self.seconds_per_step, "tokens_per_step": self.tokens_per_step,
                "tokens_per_second": self.tokens_per_second, "mfu": self.mfu, "memory_bytes": self.memory_bytes,
                "device_memory_bytes": self.device_memory_bytes, "profile": self.profile,
                "n_layouts": self.n_layouts, "n_feasible": self.n_feasible, "table": [dict(r) for r in self.table],
                "notes": list(self.notes)}


def _powers_of_two_dividing(n: int) -> list[int]:
    return [k for k in (2 ** i for i in range(int(np.log2(n)) + 1)) if n % k == 0]


def _structures(cfg: TransformerConfig, setup: TrainSetup, devices: int, node_size: int | None = None):
    """(tensor, pipeline, interleave, data, sequence parallel, ZeRO stage, checkpointing) of every layout the
    model and batch allow; tensor-parallel groups stay inside a node of `node_size` devices."""
    checkpointing = [c for c in ("none", "selective", "full")
                     if c in TrainSetup.model_fields["activation_checkpointing"].annotation.__args__]
    for t in _powers_of_two_dividing(devices):
        if cfg.n_heads % t or cfg.n_kv_heads % t or (node_size is not None and t > node_size):
            continue
        for p in (k for k in range(1, devices // t + 1) if (devices // t) % k == 0 and cfg.n_layers % k == 0):
            d = devices // (t * p)
            if setup.global_batch_size % d:
                continue
            for v in (INTERLEAVES if p > 1 else (1,)):
                if cfg.n_layers % (p * v):
                    continue
                for sp in ((False, True) if t > 1 else (False,)):
                    for z in (ZERO_STAGES if d > 1 else (0,)):
                        for c in checkpointing:
                            yield t, p, v, d, sp, z, c


def best_layout(cfg: TransformerConfig, setup: TrainSetup | None = None, *, profile=None, devices: int,
                method: str = "roofline", top: int = 10) -> Layout:
    """The fastest feasible layout of `cfg` on `devices` devices for the setup's global batch (sequences per
    optimizer step) and precision. profile: a System, a DeviceProfile or a name, as elsewhere."""
    if isinstance(devices, bool) or not isinstance(devices, (int, np.integer)) or devices < 1:
        raise ValueError(f"devices must be a whole number >= 1, got {devices!r}")
    estimator, device = resolve_device(profile, method)
    setup = resolve_setup(setup, device)
    rows, tried = [], 0
    system = getattr(estimator, "system", None)
    node_size = None if system is None else system.devices_per_node
    for t, p, v, d, sp, z, c in _structures(cfg, setup, devices, node_size):
        per_rank = setup.global_batch_size // d
        micros = np.array(_powers_of_two_dividing(per_rank), dtype=np.float64)
        fields = {**setup.model_dump(), "tensor_parallel": t, "pipeline_parallel": p, "data_parallel": d,
                  "activation_checkpointing": c, "micro_batch_size": int(micros[0]), "pipeline_interleave": v,
                  "sequence_parallel": sp, "zero_stage": z}
        try:
            layout_setup = TrainSetup(**fields)
            check_compatible(cfg, layout_setup)  # heads, KV heads, MLP width, context and layers split evenly
        except ValueError:
            continue
        shapes = replace(ShapeBatch.from_config(cfg, layout_setup), micro_batch_size=micros,
                         grad_accum_steps=per_rank / micros)
        tried += micros.size
        seconds = np.broadcast_to(estimator.predict(shapes, layout_setup), micros.shape)
        memory = np.broadcast_to(memory_footprint(shapes, layout_setup).total_bytes, micros.shape)
        for micro, s, m in zip(micros, seconds, memory):
            if m <= device.memory_bytes:
                rows.append((float(s), t, layout_setup.model_copy(update={"micro_batch_size": int(micro)}), float(m)))
    if not rows:
        raise ValueError(f"no layout of d_model={cfg.d_model}, n_layers={cfg.n_layers} on {devices} devices fits "
                         f"in {device.memory_bytes / GIB:.0f} GiB per device with global batch "
                         f"{setup.global_batch_size}: use more devices or a smaller model")
    rows.sort(key=lambda r: (r[0], r[1], r[3]))  # fastest; then smaller tensor groups, then less memory
    seconds, _, best, memory = rows[0]
    tokens_per_step = setup.global_batch_size * cfg.seq_len
    from timelaw.ledger import ledger

    step = ledger(ShapeBatch.from_config(cfg, best), best)
    mfu = model_flops_per_step(step) / (seconds * device.peak(best.precision))
    notes = () if device.calibrated else (f"profile {device.name!r} is a spec sheet, not measured",)
    table = [{"rank": i + 1, "tensor_parallel": s.tensor_parallel, "pipeline_parallel": s.pipeline_parallel,
              "pipeline_interleave": s.pipeline_interleave, "data_parallel": s.data_parallel,
              "sequence_parallel": s.sequence_parallel, "zero_stage": s.zero_stage,
              "micro_batch_size": s.micro_batch_size, "grad_accum_steps": s.grad_accum_steps,
              "activation_checkpointing": s.activation_checkpointing, "seconds_per_step": sec,
              "tokens_per_second": tokens_per_step / sec, "memory_gib": mem / GIB}
             for i, (sec, _, s, mem) in enumerate(rows[:top])]
    label = getattr(getattr(estimator, "system", None), "name", None) or device.label
    return Layout(config=cfg, setup=best, devices=devices, seconds_per_step=seconds, tokens_per_step=tokens_per_step,
                  tokens_per_second=tokens_per_step / seconds, mfu=mfu, memory_bytes=memory,
                  device_memory_bytes=float(device.memory_bytes), profile=label, table=table, n_layouts=tried,
                  n_feasible=len(rows), notes=notes)
