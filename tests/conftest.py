import itertools

import pytest

from timelaw.config import TrainSetup, TransformerConfig


def option_grid():
    """Every combination of the config and setup options (256 small models), with varied sizes; geglu,
    nonparametric_layernorm and bias="qkv" stand in for swiglu, layernorm and bias=True in a third of them."""
    options = itertools.product(
        ["gelu", "swiglu"], ["layernorm", "rmsnorm"], ["learned", "rotary"], [True, False], [True, False],
        ["math", "flash"], ["none", "full"], ["mha", "gqa"],
    )
    grid = []
    for i, (mlp, norm, positions, tied, bias, attention, ckpt, heads) in enumerate(options):
        # the third value of mlp, norm and bias replaces one of the two others in a third of their combinations
        variant = (i // 3) % 3
        mlp = "geglu" if (mlp == "swiglu" and variant == 0) else mlp
        norm = "nonparametric_layernorm" if (norm == "layernorm" and variant == 1) else norm
        bias = "qkv" if (bias is True and variant == 2) else bias
        d_model = (32, 48, 64)[i % 3]
        n_heads = 4
        cfg = TransformerConfig(
            d_model=d_model, n_layers=1 + i % 3, n_heads=n_heads, n_kv_heads=n_heads if heads == "mha" else 2,
            mlp=mlp, norm=norm, positions=positions, tied_embeddings=tied, bias=bias,
            vocab_size=(97, 128)[i % 2], seq_len=(16, 24)[i % 2],
        )
        setup = TrainSetup(
            micro_batch_size=1 + i % 2, global_batch_size=2 * (1 + i % 2), attention=attention,
            activation_checkpointing=ckpt, precision=("bf16", "fp32")[i % 2],
            optimizer=("adamw", "sgd")[(i // 2) % 2],
        )
        grid.append(pytest.param(cfg, setup, id=f"{i}-{mlp}-{norm}-{positions}-{tied}-{bias}-{attention}-{ckpt}-{heads}"))
    # heads wider or narrower than d_model / n_heads (Gemma-7B, Mistral-Nemo), under each attention kernel
    for j, (head_dim, attention) in enumerate(itertools.product((8, 24), ("math", "flash"))):
        cfg = TransformerConfig(d_model=48, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=head_dim, mlp="geglu",
                                norm="rmsnorm", positions="rotary", bias=("qkv", True)[j % 2], vocab_size=97,
                                seq_len=16, tied_embeddings=bool(j % 2))
        setup = TrainSetup(micro_batch_size=2, global_batch_size=4, attention=attention,
                           activation_checkpointing=("none", "full")[j // 2], precision=("bf16", "fp32")[j % 2])
        grid.append(pytest.param(cfg, setup, id=f"head_dim{head_dim}-{attention}"))
    return grid
