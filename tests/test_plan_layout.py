"""best_layout: the fastest feasible tensor x pipeline x data layout of a fixed model and batch."""
from __future__ import annotations

import pytest

from timelaw import TrainSetup, TransformerConfig, best_layout, predict_step_time
from timelaw.memory import memory_footprint
from timelaw.shapes import ShapeBatch

GIB = 2.0 ** 30


def test_best_layout_is_feasible_fastest_and_priced_like_a_prediction():
    cfg = TransformerConfig(d_model=2560, n_layers=32, n_heads=32, seq_len=2048)
    layout = best_layout(cfg, TrainSetup(global_batch_size=512, micro_batch_size=1), profile="dgx-a100-80gb",
                         devices=16)
    s = layout.setup
    assert s.tensor_parallel * s.pipeline_parallel * s.data_parallel == 16
    assert cfg.n_heads % s.tensor_parallel == 0 and cfg.n_layers % (s.pipeline_parallel * s.pipeline_interleave) == 0
    assert s.global_batch_size == 512 and s.micro_batch_size * s.data_parallel * s.grad_accum_steps == 512
    assert layout.seconds_per_step == pytest.approx(
        float(predict_step_time(cfg, s, "dgx-a100-80gb")), rel=1e-9)
    assert memory_footprint(ShapeBatch.from_config(cfg, s), s).total_bytes <= 80 * GIB
    times = [r["seconds_per_step"] for r in layout.table]
    assert times == sorted(times) and times[0] == layout.seconds_per_step
    assert 0 < layout.mfu <= 1


def test_a_model_too_big_for_one_device_gets_split_and_stays_inside_a_node():
    # 13B parameters x 16 bytes (bf16 weights and grads, fp32 Adam state and master copy) is ~200 GiB:
    # no data-parallel replica fits in 80 GiB, so the layout must use tensor or pipeline parallelism.
    cfg = TransformerConfig(d_model=5120, n_layers=40, n_heads=40, seq_len=2048)
    layout = best_layout(cfg, TrainSetup(global_batch_size=64, micro_batch_size=1), profile="dgx-a100-80gb",
                         devices=64)
    assert layout.setup.tensor_parallel * layout.setup.pipeline_parallel > 1
    assert layout.setup.tensor_parallel <= 8  # a tensor-parallel group across nodes would cross InfiniBand


def test_no_layout_that_fits_is_an_error_that_says_so():
    cfg = TransformerConfig(d_model=8192, n_layers=80, n_heads=64, seq_len=2048)
    with pytest.raises(ValueError, match="no layout .* fits"):
        best_layout(cfg, TrainSetup(global_batch_size=8, micro_batch_size=1), profile="a100-sxm-80gb", devices=1)
