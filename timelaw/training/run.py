"""pilot(): train a grid of shapes for wall-clock budgets on the user's text and append each run to a table.

    rows = pilot("my_text/", "2m", sizes=["64x2", "128x4", "256x4"], out="runs.csv")
    law = timelaw.fit_loss_law("runs.csv")                                    # N, D, loss (U for data_constrained)
    model = timelaw.fit_time_model(time_measurements("runs.csv"), method="memcopy")

A run already in the table (same shape, setup, budget, seed, data and options) is not repeated, so an
interrupted pilot picks up where it stopped; Ctrl-C loses only the run in progress.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterable, Optional, Sequence

from timelaw.config import TrainSetup, TransformerConfig, default_n_heads
from timelaw.training.budget import parse_budget
from timelaw.training.data import Corpus, load_corpus
from timelaw.training.progress import Progress
from timelaw.training.table import append_curve, append_row, finished_run_ids, read_rows, run_id, run_row
from timelaw.training.trainer import TrainOptions, train_for_budget

__all__ = ["pilot", "size_config", "budget_plan", "DEFAULT_SIZES", "BUDGET_LADDER"]

DEFAULT_SIZES = ("64x2", "96x3", "128x4", "192x4")
# One budget alone trains each size once, and then N and D move together (D ~ tokens per second ~ 1/N): no
# law with separate N and D terms can be fitted to that. Given one budget, the pilot also trains every size
# for these fractions of it: the default 4 sizes x 3 budgets = 12 runs, more than twice the 5 constants of a
# Chinchilla law, with each size at three token counts. Several budgets are taken as given.
BUDGET_LADDER = (0.25, 0.5, 1.0)
_SIZE = re.compile(r"^(\d+)x(\d+)(?:x(\d+))?$")
HEAD_DIM = 32  # pilot models are narrow: heads of 32 channels for sizes given as WIDTHxDEPTH


def size_config(size, vocab_size: int, seq_len: int) -> TransformerConfig:
    """A TransformerConfig from 'WIDTHxDEPTH[xHEADS]' (e.g. '128x4'), a dict of fields, or a config, with the
    corpus's vocabulary and the pilot's context length."""
    if isinstance(size, TransformerConfig):
        fields = size.model_dump()
    elif isinstance(size, dict):
        fields = dict(size)
    else:
        match = _SIZE.match(str(size).strip().lower())
        if not match:
            raise ValueError(f"size must be WIDTHxDEPTH or WIDTHxDEPTHxHEADS (e.g. 128x4, 128x4x4); got {size!r}")
        d_model, n_layers = int(match[1]), int(match[2])
        heads = int(match[3] or default_n_heads(d_model, HEAD_DIM))
        fields = dict(d_model=d_model, n_layers=n_layers, n_heads=heads)
    return TransformerConfig(**{**fields, "vocab_size": vocab_size, "seq_len": seq_len})


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


@contextmanager
def _torch_threads(threads: Optional[int]):
    """torch's intra-op thread count set to `threads` (if given) inside, and restored afterwards."""
    if not threads:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def budget_plan(budget_seconds, ladder: bool = True) -> list[float]:
    """The budgets, in seconds and ascending, that the pilot trains every size for: one budget B becomes
    B x BUDGET_LADDER (B/4, B/2, B) unless ladder=False; several budgets are used as given."""
    budgets = sorted({parse_budget(b) for b in _as_list(budget_seconds)})
    if ladder and len(budgets) == 1:
        budgets = [budgets[0] * fraction for fraction in BUDGET_LADDER]
    return budgets


def pilot(data, budget_seconds, sizes: Sequence = DEFAULT_SIZES, *, out="runs.csv", seeds: Iterable[int] = (0,),
          seq_len: int = 128, micro_batch_size: int = 16, precision: str = "fp32", tokenizer: str = "byte",
          bpe_vocab_size: int = 4096, heldout_fraction: float = 0.05, max_train_tokens: Optional[int] = None,
          pattern: str = "*", options: TrainOptions = TrainOptions(), threads: Optional[int] = None,
          device: str = "cpu", progress: Optional[bool] = None, ladder: bool = True) -> list[dict]:
    """Train every size for every budget (and seed) on `data`; return the rows of the grid's runs.

    data: a text file, a folder (files matching `pattern`), or a Corpus from load_corpus.
    budget_seconds: one budget or a list, each seconds or text like '30s', '2m', '1h'; it counts training
    steps only. One budget B also trains B/4 and B/2 (BUDGET_LADDER), so that a law can be fitted to the
    runs; ladder=False trains B alone.
    sizes: 'WIDTHxDEPTH[xHEADS]' strings, dicts of TransformerConfig fields, or configs.
    Finished runs found in `out` (.csv or .jsonl) are returned without training them again.
    """
    from timelaw._optional import require

    require("torch", "pilot training")  # before reading the data: one line naming the extra if torch is missing
    corpus = data if isinstance(data, Corpus) else load_corpus(
        data, tokenizer, bpe_vocab_size=bpe_vocab_size, heldout_fraction=heldout_fraction,
        max_train_tokens=max_train_tokens, pattern=pattern)
    budgets = budget_plan(budget_seconds, ladder)
    configs = [size_config(s, corpus.vocab_size, seq_len) for s in _as_list(sizes)]
    setup = TrainSetup(micro_batch_size=micro_batch_size, precision=precision)
    grid = [(b, c, s) for b in budgets for c in configs for s in _as_list(seeds)]  # short budgets first
    done = finished_run_ids(out)
    bar = Progress(len(grid), enabled=progress)
    rows = []
    with _torch_threads(threads):
        for budget, cfg, seed in grid:
            key = run_id(cfg, setup, budget, seed, corpus.fingerprint, options)
            if key not in done:
                bar.start(f"{cfg.d_model}x{cfg.n_layers} {budget:g}s seed {seed}")
                result = train_for_budget(cfg, setup, corpus, budget, seed, options, device, on_step=bar.update)
                append_curve(out, key, result.curve)  # the curve first: a row in the table means a complete run
                append_row(out, run_row(result, key, corpus))
                bar.done(f"{cfg.d_model}x{cfg.n_layers} {budget:g}s: held-out loss {result.loss:.4f} "
                         f"after {result.tokens:,} tokens ({result.steps} steps)")
            rows.append(key)
    by_id = {row["run_id"]: row for row in read_rows(out)}
    return [by_id[key] for key in rows]
