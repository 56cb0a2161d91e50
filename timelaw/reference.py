"""The reference decoder-only transformer, built from a TransformerConfig (needs torch).

Written to be read, in the manner of nanoGPT's model.py. Every option of TransformerConfig is covered, and
its parameter count and matmul/attention flops equal what timelaw.count_params and timelaw.ledger say.
`time_training_steps` runs and times real training steps of it on any torch device.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

from timelaw._optional import require

require("torch", "timelaw.reference (the reference model)")  # one line naming the extra, if torch is missing
import torch  # noqa: E402
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from timelaw.config import TrainSetup, TransformerConfig

__all__ = ["build_model", "Transformer", "make_optimizer", "train_step", "time_training_steps", "StepTiming",
           "autocast"]


class RMSNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return F.rms_norm(x, (x.shape[-1],), self.weight)


def make_norm(cfg: TransformerConfig) -> nn.Module:
    if cfg.norm == "rmsnorm":
        return RMSNorm(cfg.d_model)
    if cfg.norm == "nonparametric_layernorm":  # OLMo: normalise only, no weight or bias
        return nn.LayerNorm(cfg.d_model, elementwise_affine=False)
    return nn.LayerNorm(cfg.d_model, bias=cfg.bias is True)


def rotary_tables(seq_len: int, head_dim: int, base: float = 10000.0):
    """cos and sin of the rotary angles, (seq_len, head_dim / 2) each."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2).float() / head_dim)
    angles = torch.outer(torch.arange(seq_len).float(), inv_freq)
    return angles.cos(), angles.sin()


def apply_rotary(x, cos, sin):
    """Rotate pairs (x1, x2) of the head dimension by position-dependent angles. x: (B, heads, S, hd)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig, attention_kernel: str):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        qkv_width = (cfg.n_heads + 2 * cfg.n_kv_heads) * cfg.head_dim
        # bias=True: every projection has a bias; bias="qkv" (Qwen2): the q, k, v projections only
        self.qkv = nn.Linear(cfg.d_model, qkv_width, bias=cfg.bias in (True, "qkv"))
        self.out = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.d_model, bias=cfg.bias is True)
        self.attention_kernel = attention_kernel
        self.recompute_core = False  # selective recomputation of the unfused core (set by Transformer)
        self.rotary = cfg.positions == "rotary"
        if self.rotary:
            cos, sin = rotary_tables(cfg.seq_len, cfg.head_dim)
            self.register_buffer("cos", cos, persistent=False)
            self.register_buffer("sin", sin, persistent=False)

    def forward(self, x):
        batch, seq, _ = x.shape
        q, k, v = self.qkv(x).split(
            [self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim, self.n_kv_heads * self.head_dim],
            dim=-1,
        )
        q = q.view(batch, seq, self.n_heads, self.head_dim).transpose(1, 2)
        k = k.view(batch, seq, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(batch, seq, self.n_kv_heads, self.head_dim).transpose(1, 2)
        if self.rotary:
            cos, sin = self.cos[:seq], self.sin[:seq]
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if self.n_kv_heads != self.n_heads:  # grouped-query attention: share each kv head across a group
            group = self.n_heads // self.n_kv_heads
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        if self.attention_kernel == "flash":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif self.recompute_core and self.training:  # selective recomputation: the core reruns in the backward
            y = checkpoint(self._unfused_core, q, k, v, use_reentrant=False)
        else:
            y = self._unfused_core(q, k, v)
        y = y.transpose(1, 2).contiguous().view(batch, seq, self.n_heads * self.head_dim)
        return self.out(y)

    def _unfused_core(self, q, k, v):
        """Scores, causal mask, softmax and weighted values: the attention core."""
        seq = q.shape[-2]
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
        mask = torch.ones(seq, seq, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~mask, float("-inf"))
        return F.softmax(scores, dim=-1) @ v


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.kind = cfg.mlp
        bias = cfg.bias is True
        if self.kind in ("swiglu", "geglu"):  # gated: act(gate(x)) * up(x)
            self.gate = nn.Linear(cfg.d_model, cfg.d_ff, bias=bias)
            self.up = nn.Linear(cfg.d_model, cfg.d_ff, bias=bias)
        else:
            self.fc = nn.Linear(cfg.d_model, cfg.d_ff, bias=bias)
        self.proj = nn.Linear(cfg.d_ff, cfg.d_model, bias=bias)

    def forward(self, x):
        if self.kind == "swiglu":
            hidden = F.silu(self.gate(x)) * self.up(x)
        elif self.kind == "geglu":  # Gemma's gelu_pytorch_tanh
            hidden = F.gelu(self.gate(x), approximate="tanh") * self.up(x)
        else:
            hidden = F.gelu(self.fc(x))
        return self.proj(hidden)


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig, attention_kernel: str):
        super().__init__()
        self.attn_norm = make_norm(cfg)
        self.attn = CausalSelfAttention(cfg, attention_kernel)
        self.mlp_norm = make_norm(cfg)
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.attn_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig, attention_kernel: str = "flash", checkpointing: bool | str = False):
        """checkpointing: True or "full" (each block rerun in the backward), "selective" (only the unfused
        attention core; a flash kernel recomputes its own), or False / "none"."""
        super().__init__()
        self.cfg, self.checkpointing = cfg, checkpointing in (True, "full")
        self.tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.positions = nn.Embedding(cfg.seq_len, cfg.d_model) if cfg.positions == "learned" else None
        self.blocks = nn.ModuleList(Block(cfg, attention_kernel) for _ in range(cfg.n_layers))
        for block in self.blocks:
            block.attn.recompute_core = checkpointing == "selective"
        self.final_norm = make_norm(cfg)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tied_embeddings:
            self.head.weight = self.tokens.weight
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, token_ids):
        """token_ids: (batch, seq) int64 -> logits (batch, seq, vocab)."""
        x = self.tokens(token_ids)
        if self.positions is not None:
            x = x + self.positions(torch.arange(token_ids.shape[1], device=token_ids.device))
        for block in self.blocks:
            if self.checkpointing and self.training:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.head(self.final_norm(x))


def build_model(cfg: TransformerConfig, setup: TrainSetup | None = None) -> Transformer:
    """The reference model of `cfg`; `setup` picks the attention kernel and activation checkpointing."""
    setup = setup or TrainSetup()
    return Transformer(cfg, setup.attention, setup.activation_checkpointing)


def make_optimizer(model: nn.Module, setup: TrainSetup) -> torch.optim.Optimizer:
    if setup.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    return torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9, weight_decay=0.1)


_AUTOCAST_DTYPE = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str):
    """The autocast context of a training step in `precision` on `device` (disabled for fp32)."""
    if precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=_AUTOCAST_DTYPE[precision])


def train_step(model: nn.Module, optimizer, batches, setup: TrainSetup):
    """One optimizer step: forward and backward on each micro-batch of (inputs, targets), then update.

    fp16 would need a gradient scaler to train well; for timing the unscaled step does the same work.
    Returns the mean loss over the micro-batches as a float tensor (not synchronised).
    """
    device = next(model.parameters()).device
    total = 0.0
    for inputs, targets in batches:
        with autocast(device, setup.precision):
            logits = model(inputs)
        loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.view(-1))
        (loss / len(batches)).backward()
        total = total + loss.detach()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total / len(batches)


@dataclass(frozen=True)
class StepTiming:
    seconds: float  # median seconds per optimizer step
    all_seconds: tuple[float, ...]
    warmup_steps: int
    device: str


def synchronize(device: torch.device):
    """Wait for the device's queued kernels (a no-op on the CPU): the one device-sync of timelaw's clocks."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def random_batches(cfg: TransformerConfig, setup: TrainSetup, device, generator=None):
    """Micro-batches of random tokens (timing does not depend on their values)."""
    shape = (setup.micro_batch_size, cfg.seq_len)
    return [
        tuple(torch.randint(0, cfg.vocab_size, shape, generator=generator).to(device) for _ in range(2))
        for _ in range(setup.grad_accum_steps)
    ]


CLOCKS = {"wall": time.perf_counter, "process": time.process_time}


def time_training_steps(
    cfg: TransformerConfig, setup: TrainSetup | None = None, device: str = "cpu",
    steps: int = 5, warmup_steps: int = 2, seed: int = 0, clock: str = "wall",
) -> StepTiming:
    """Median seconds of full training steps (warm-up excluded, synchronised on GPUs).

    clock="process" counts this process's CPU time instead of wall time: on a CPU shared with other work
    it is what the step would take on an idle machine (with one torch thread), without the time slices
    other processes took.
    """
    setup = setup or TrainSetup()
    now = CLOCKS[clock]
    device = torch.device(device)
    torch.manual_seed(seed)
    with device:  # parameters are created and initialised on the device, not built on the CPU and copied
        model = build_model(cfg, setup)
    model = model.to(device)
    optimizer = make_optimizer(model, setup)
    batches = random_batches(cfg, setup, device, torch.Generator().manual_seed(seed))
    seconds = []
    for i in range(warmup_steps + steps):
        synchronize(device)
        start = now()
        train_step(model, optimizer, batches, setup)
        synchronize(device)
        if i >= warmup_steps:
            seconds.append(now() - start)
    return StepTiming(statistics.median(seconds), tuple(seconds), warmup_steps, str(device))
