"""What is trained (TransformerConfig) and how (TrainSetup): frozen, validated, JSON round-trip.

Defaults that depend on other fields (d_ff, n_kv_heads, the global batch) are filled in at validation time
so that a config printed or saved says exactly what will be trained.
"""
from __future__ import annotations

import math
from typing import Literal, Optional, Union

from pydantic import (
    BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_serializer, model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = ["TransformerConfig", "TrainSetup", "check_compatible", "default_d_ff", "default_n_heads",
           "DEFAULT_HEAD_DIM", "BYTES_PER_ELEMENT", "GATED_MLPS"]

# Bytes of one activation element under each precision setting (mixed precision keeps fp32 master weights).
BYTES_PER_ELEMENT = {"fp32": 4, "bf16": 2, "fp16": 2}

# SwiGLU hidden sizes are rounded up to a multiple of this, as LLaMA-style models do, for efficient matmuls.
SWIGLU_MULTIPLE = 64


GATED_MLPS = ("swiglu", "geglu")  # a gate and an up projection, multiplied: SiLU (SwiGLU) or GELU (GeGLU)


DEFAULT_HEAD_DIM = 64  # GPT-2, GPT-3, Llama: heads of 64 channels


def default_n_heads(d_model: int, head_dim: int = DEFAULT_HEAD_DIM) -> int:
    """The most heads of at least `head_dim` channels that divide d_model (1 for a model narrower than one
    head): d_model // head_dim whenever that divides d_model, as for every width a multiple of head_dim."""
    return next(h for h in range(max(1, d_model // head_dim), 0, -1) if d_model % h == 0)


def default_d_ff(d_model: int, mlp: str) -> int:
    """4 x d_model for a GELU MLP; 8/3 x d_model rounded up to a multiple of 64 for the gated MLPs (SwiGLU,
    GeGLU: same params)."""
    if mlp in GATED_MLPS:
        return SWIGLU_MULTIPLE * math.ceil(8 * d_model / 3 / SWIGLU_MULTIPLE)
    return 4 * d_model


def _field_error(model: str, field: str, value, message: str) -> ValidationError:
    """A pydantic ValidationError that points at one field, for checks that span several."""
    detail = InitErrorDetails(
        type=PydanticCustomError("value_error", "{msg}", {"msg": message}), loc=(field,), input=value
    )
    return ValidationError.from_exception_data(model, [detail])


_FROZEN = ConfigDict(frozen=True, extra="forbid")


class TransformerConfig(BaseModel):
    """A decoder-only transformer: widths, depth, heads, vocabulary, context and block options."""

    model_config = _FROZEN

    d_model: int = Field(gt=0, description="residual stream width")
    n_layers: int = Field(gt=0, description="number of transformer blocks")
    n_heads: int = Field(gt=0, description="query heads; head_dim = d_model / n_heads unless given")
    n_kv_heads: Optional[int] = Field(default=None, gt=0, description="key/value heads (GQA); default n_heads")
    head_dim: Optional[int] = Field(
        default=None, gt=0, description="width of each head; default d_model / n_heads (Gemma-7B: 16 heads of "
                                        "256 over a 3072 residual)")
    d_ff: Optional[int] = Field(default=None, gt=0, description="MLP hidden width; default from mlp kind")
    mlp: Literal["gelu", "swiglu", "geglu"] = Field(
        default="gelu", description="gelu: fc, GELU, proj; swiglu / geglu: SiLU / GELU(gate) x up, then proj")
    vocab_size: int = Field(default=50257, gt=0)
    seq_len: int = Field(default=1024, gt=0, description="context length in tokens")
    tied_embeddings: bool = True
    positions: Literal["learned", "rotary"] = "learned"
    norm: Literal["layernorm", "rmsnorm", "nonparametric_layernorm"] = Field(
        default="layernorm", description="nonparametric_layernorm: LayerNorm without weight or bias (OLMo)")
    bias: Union[bool, Literal["qkv"]] = Field(
        default=False, description="True: biases in every linear layer of the blocks and in LayerNorm; "
                                   "'qkv': on the query, key and value projections only (Qwen2)")

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data):
        if isinstance(data, dict):
            data = dict(data)
            if data.get("n_kv_heads") is None and "n_heads" in data:
                data["n_kv_heads"] = data["n_heads"]
            d_model, n_heads = data.get("d_model"), data.get("n_heads")
            if (data.get("head_dim") is None and isinstance(d_model, int) and isinstance(n_heads, int)
                    and n_heads > 0 and d_model % n_heads == 0):
                data["head_dim"] = d_model // n_heads
            if data.get("d_ff") is None and isinstance(data.get("d_model"), int) and data["d_model"] > 0:
                data["d_ff"] = default_d_ff(data["d_model"], data.get("mlp", "gelu"))
        return data

    @field_validator("n_heads")
    @classmethod
    def _heads_divide_width(cls, n_heads: int, info: ValidationInfo) -> int:
        d_model = info.data.get("d_model")
        if d_model is not None and d_model % n_heads:
            raise ValueError(f"must divide d_model ({d_model}); got {n_heads}")
        return n_heads

    @field_validator("n_kv_heads")
    @classmethod
    def _kv_heads_divide_heads(cls, n_kv_heads: int, info: ValidationInfo) -> int:
        n_heads = info.data.get("n_heads")
        if n_heads is not None and n_heads % n_kv_heads:
            raise ValueError(f"must divide n_heads ({n_heads}); got {n_kv_heads}")
        return n_kv_heads

    @model_validator(mode="after")
    def _rotary_needs_even_head_dim(self):
        if self.positions == "rotary" and self.head_dim % 2:
            raise _field_error(
                "TransformerConfig", "positions", self.positions,
                f"rotary positions need an even head_dim, got {self.head_dim}",
            )
        return self

    @model_serializer(mode="wrap")
    def _omit_default_head_dim(self, handler):
        """A head_dim of d_model / n_heads is left out of dumps, so configs (and the run ids hashed from
        them) read as they did before head_dim was a field, and a dump edited to a new width stays right."""
        data = handler(self)
        if isinstance(data, dict) and data.get("head_dim") == self.d_model // self.n_heads:
            data.pop("head_dim")
        return data

    @classmethod
    def from_hf(cls, config, seq_len: Optional[int] = None) -> "TransformerConfig":
        """From a Hugging Face config (dict, config.json path or model folder): exact for Llama 2/3, Mistral,
        Qwen2/2.5, GPT-2, OLMo and Gemma; refuses (naming the field) what it cannot represent. seq_len
        defaults to max_position_embeddings. See timelaw.configs.hf."""
        from timelaw.configs.hf import from_hf

        return from_hf(config, seq_len=seq_len)

    @classmethod
    def from_nanogpt(cls, config, seq_len: Optional[int] = None) -> "TransformerConfig":
        """From a nanoGPT GPTConfig (dict, checkpoint model_args, JSON or config .py). See timelaw.configs."""
        from timelaw.configs.nanogpt import from_nanogpt

        return from_nanogpt(config, seq_len=seq_len)

    @classmethod
    def from_litgpt(cls, config, seq_len: Optional[int] = None) -> "TransformerConfig":
        """From a litgpt model_config.yaml (path or folder; needs PyYAML) or its fields as a dict."""
        from timelaw.configs.litgpt import from_litgpt

        return from_litgpt(config, seq_len=seq_len)


def sequences_per_step(micro_batch_size, data_parallel, grad_accum_steps=1):
    """The global batch rule, in sequences: micro-batch x data-parallel ranks x accumulation steps
    (numbers or numpy arrays)."""
    return micro_batch_size * data_parallel * grad_accum_steps


class TrainSetup(BaseModel):
    """How a model is trained: batch, precision, optimizer, memory-saving and parallelism choices.

    Batch sizes count sequences. global_batch_size = micro_batch_size x data_parallel x accumulation steps.
    """

    model_config = _FROZEN

    micro_batch_size: int = Field(default=8, gt=0, description="sequences per device per forward pass")
    precision: Literal["fp32", "bf16", "fp16"] = "bf16"
    optimizer: Literal["adamw", "sgd"] = "adamw"
    activation_checkpointing: Literal["none", "full", "selective"] = Field(
        default="none", description="full: each block rerun in the backward; selective: only the attention core "
                                    "(scores, softmax, weighted values), as in Korthikanti et al. 2022")
    attention: Literal["math", "flash"] = "flash"
    tensor_parallel: int = Field(default=1, gt=0)
    pipeline_parallel: int = Field(default=1, gt=0)
    data_parallel: int = Field(default=1, gt=0)
    pipeline_interleave: int = Field(
        default=1, gt=0, description="model chunks per pipeline stage (Megatron's interleaved 1F1B, its virtual "
                                     "pipeline size); 1: plain 1F1B")
    sequence_parallel: bool = Field(
        default=False, description="split the norms, residuals and their activations over the tensor-parallel "
                                   "ranks by sequence, with reduce-scatters and all-gathers instead of all-reduces "
                                   "(Korthikanti et al. 2022); nothing without tensor parallelism")
    overlap_grad_reduce: bool = Field(
        default=False, description="run the data-parallel collectives beside the compute, as torch DDP and FSDP "
                                   "do (Megatron: --overlap-grad-reduce): gradients in buckets during the "
                                   "backward, ZeRO-3 weight gathers prefetched; False: after it, as Megatron "
                                   "by default")
    zero_stage: int = Field(
        default=0, ge=0, le=3, description="what data-parallel ranks shard (ZeRO; 3 is FSDP's full sharding): "
                                           "0 nothing, 1 optimizer state, 2 and gradients, 3 and weights")
    weights_in_16_bits: bool = Field(
        default=False, description="keep the weights (and the residual stream) in the 16-bit precision with fp32 "
                                   "master weights in the optimizer, as Megatron-LM, DeepSpeed's bf16 and FSDP's "
                                   "param_dtype do; False: fp32 weights cast by torch autocast, as the reference "
                                   "model trains; nothing in fp32")
    # Last, so that its validator sees the micro batch and data-parallel size.
    global_batch_size: Optional[int] = Field(default=None, gt=0, description="sequences per optimizer step")

    @model_validator(mode="before")
    @classmethod
    def _fill_global_batch(cls, data):
        if isinstance(data, dict) and data.get("global_batch_size") is None:
            data = dict(data)
            data["global_batch_size"] = sequences_per_step(data.get("micro_batch_size", 8), data.get("data_parallel", 1))
        return data

    @field_validator("global_batch_size")
    @classmethod
    def _whole_accumulation(cls, global_batch: int, info: ValidationInfo) -> int:
        micro, dp = info.data.get("micro_batch_size"), info.data.get("data_parallel")
        if micro is not None and dp is not None and global_batch % (micro * dp):
            raise ValueError(
                f"must be a multiple of micro_batch_size x data_parallel ({micro * dp}); got {global_batch}"
            )
        return global_batch

    @model_validator(mode="after")
    def _interleave_needs_stages(self):
        if self.pipeline_interleave > 1 and self.pipeline_parallel == 1:
            raise _field_error("TrainSetup", "pipeline_interleave", self.pipeline_interleave,
                               f"an interleaved schedule ({self.pipeline_interleave} chunks per stage) needs "
                               "pipeline_parallel > 1")
        return self

    @model_serializer(mode="wrap")
    def _omit_default_interleave(self, handler):
        """pipeline_interleave = 1 (plain 1F1B), sequence_parallel = False, overlap_grad_reduce = False,
        zero_stage = 0 and weights_in_16_bits = False are left out of dumps, so setups (and the run ids hashed from them) read as they did
        before the fields existed."""
        data = handler(self)
        if isinstance(data, dict):
            for name, default in (("pipeline_interleave", 1), ("sequence_parallel", False),
                                  ("overlap_grad_reduce", False), ("zero_stage", 0), ("weights_in_16_bits", False)):
                if data.get(name) == default:
                    data.pop(name)
        return data

    @property
    def grad_accum_steps(self) -> int:
        """Micro-batches each data-parallel rank runs per optimizer step."""
        return self.global_batch_size // sequences_per_step(self.micro_batch_size, self.data_parallel)

    @property
    def n_devices(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel * self.data_parallel

    @property
    def bytes_per_element(self) -> int:
        return BYTES_PER_ELEMENT[self.precision]

    @property
    def autocast(self) -> bool:
        """16-bit training with fp32 weights cast op by op (torch autocast), as opposed to fp32 training or
        16-bit weights (weights_in_16_bits)."""
        return self.precision != "fp32" and not self.weights_in_16_bits

    @property
    def master_weights(self) -> bool:
        """16-bit weights with fp32 master copies kept by the optimizer (weights_in_16_bits, not in fp32)."""
        return self.precision != "fp32" and self.weights_in_16_bits

    @property
    def residual_bytes(self) -> int:
        """Bytes per element of the residual stream: fp32 under autocast, else the precision's."""
        return 4 if self.autocast else self.bytes_per_element


def check_compatible(cfg: TransformerConfig, setup: TrainSetup) -> None:
    """Raise a ValidationError naming the TrainSetup field when a parallel size cannot split the model."""
    tp, pp = setup.tensor_parallel, setup.pipeline_parallel
    splits = {"n_heads": cfg.n_heads, "n_kv_heads": cfg.n_kv_heads, "d_ff": cfg.d_ff}
    for name, size in splits.items():
        if size % tp:
            raise _field_error(
                "TrainSetup", "tensor_parallel", tp,
                f"tensor_parallel ({tp}) must divide {name} ({size})",
            )
    if cfg.n_layers % pp:
        raise _field_error(
            "TrainSetup", "pipeline_parallel", pp,
            f"pipeline_parallel ({pp}) must divide n_layers ({cfg.n_layers})",
        )
    if setup.sequence_parallel and tp > 1 and cfg.seq_len % tp:
        raise _field_error(
            "TrainSetup", "sequence_parallel", True,
            f"sequence parallelism splits seq_len ({cfg.seq_len}) over tensor_parallel ({tp}) ranks: it must divide",
        )
    chunks = pp * setup.pipeline_interleave
    if cfg.n_layers % chunks:
        raise _field_error(
            "TrainSetup", "pipeline_interleave", setup.pipeline_interleave,
            f"pipeline_parallel x pipeline_interleave ({pp} x {setup.pipeline_interleave}) must divide n_layers "
            f"({cfg.n_layers})",
        )
