import pytest
from pydantic import ValidationError

from timelaw.config import TrainSetup, TransformerConfig, check_compatible

BASE = dict(d_model=64, n_layers=2, n_heads=4, vocab_size=100, seq_len=32)


def _error_fields(excinfo) -> set:
    return {err["loc"][0] for err in excinfo.value.errors() if err["loc"]}


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"d_model": 0}, "d_model"),
        ({"d_model": -64}, "d_model"),
        ({"n_layers": 0}, "n_layers"),
        ({"n_heads": 0}, "n_heads"),
        ({"vocab_size": -1}, "vocab_size"),
        ({"seq_len": 0}, "seq_len"),
        ({"d_ff": 0}, "d_ff"),
        ({"n_heads": 3}, "n_heads"),  # 64 is not divisible by 3
        ({"n_heads": 4, "n_kv_heads": 3}, "n_kv_heads"),
        ({"mlp": "relu"}, "mlp"),
        ({"norm": "batchnorm"}, "norm"),
        ({"positions": "alibi"}, "positions"),
        ({"d_model": 40, "n_heads": 8, "positions": "rotary"}, "positions"),  # odd head_dim 5
    ],
)
def test_invalid_transformer_config_names_the_field(overrides, field):
    with pytest.raises(ValidationError) as excinfo:
        TransformerConfig(**{**BASE, **overrides})
    assert field in _error_fields(excinfo)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"micro_batch_size": 0}, "micro_batch_size"),
        ({"global_batch_size": -4}, "global_batch_size"),
        ({"micro_batch_size": 3, "global_batch_size": 8}, "global_batch_size"),
        ({"micro_batch_size": 2, "data_parallel": 2, "global_batch_size": 6}, "global_batch_size"),
        ({"precision": "fp8"}, "precision"),
        ({"optimizer": "lion"}, "optimizer"),
        ({"activation_checkpointing": "partial"}, "activation_checkpointing"),
        ({"pipeline_interleave": 0}, "pipeline_interleave"),
        ({"attention": "ring"}, "attention"),
        ({"tensor_parallel": 0}, "tensor_parallel"),
        ({"pipeline_parallel": -1}, "pipeline_parallel"),
        ({"data_parallel": 0}, "data_parallel"),
    ],
)
def test_invalid_train_setup_names_the_field(kwargs, field):
    with pytest.raises(ValidationError) as excinfo:
        TrainSetup(**kwargs)
    assert field in _error_fields(excinfo)


def test_error_message_says_what_is_allowed():
    with pytest.raises(ValidationError, match="must divide d_model"):
        TransformerConfig(**{**BASE, "n_heads": 3})
    with pytest.raises(ValidationError, match="'fp32', 'bf16' or 'fp16'"):
        TrainSetup(precision="fp8")


@pytest.mark.parametrize(
    "setup_kwargs, field",
    [({"tensor_parallel": 3}, "tensor_parallel"), ({"pipeline_parallel": 3}, "pipeline_parallel")],
)
def test_parallel_size_that_does_not_divide_is_rejected(setup_kwargs, field):
    cfg = TransformerConfig(**BASE)  # 4 heads, 2 layers
    with pytest.raises(ValidationError) as excinfo:
        check_compatible(cfg, TrainSetup(**setup_kwargs))
    assert field in _error_fields(excinfo)


def test_defaults_are_filled_and_configs_are_frozen():
    cfg = TransformerConfig(**BASE)
    assert cfg.d_ff == 4 * 64 and cfg.n_kv_heads == 4
    swiglu = TransformerConfig(**{**BASE, "d_model": 768, "n_heads": 12, "mlp": "swiglu"})
    assert swiglu.d_ff == 2048  # 8/3 x 768 = 2048 exactly, a multiple of 64
    with pytest.raises(ValidationError):
        cfg.d_model = 128
    setup = TrainSetup(micro_batch_size=4, data_parallel=2, global_batch_size=32)
    assert setup.grad_accum_steps == 4


def test_json_round_trip():
    cfg = TransformerConfig(**{**BASE, "mlp": "swiglu", "n_kv_heads": 2, "positions": "rotary"})
    setup = TrainSetup(micro_batch_size=2, global_batch_size=8, precision="fp16", tensor_parallel=2)
    assert TransformerConfig.model_validate_json(cfg.model_dump_json()) == cfg
    assert TrainSetup.model_validate_json(setup.model_dump_json()) == setup


def test_default_head_count_is_the_most_heads_of_at_least_head_dim_that_divide_the_width():
    from timelaw.config import default_n_heads

    assert [default_n_heads(d) for d in (768, 1024, 4096)] == [12, 16, 64]  # d_model // 64
    assert default_n_heads(200) == 2  # 200 // 64 = 3 does not divide 200
    assert default_n_heads(32) == 1  # narrower than one head
    assert [default_n_heads(d, head_dim=32) for d in (96, 128, 192)] == [3, 4, 6]
