"""`timelaw predict | optimize | frontier | plan | layout`: the planner on the command line.

The top-level CLI calls `register(subparsers)`; each parsed command's `func(args)` runs it and returns the
exit code (0 ok, 2 bad input). Every command prints a readable table, or JSON with --json; optimize and
frontier draw the U-curves (and the frontier) with --plot FILE.png.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np
from pydantic import ValidationError

from timelaw._optional import require

__all__ = ["register", "run_predict", "run_optimize", "run_frontier", "run_plan", "run_layout"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `predict`, `optimize`, `frontier`, `plan` and `layout` subcommands."""
    p = subparsers.add_parser("predict", help="predict the loss of one shape trained for a time budget",
                              description="Predict the final loss, tokens, speed and MFU of one transformer "
                                          "trained for a wall-clock budget on a device.")
    _model_arguments(p)
    _budget_arguments(p, several=False)
    p.add_argument("--micro-batch-size", type=int, default=8, help="sequences per forward pass (default: 8)")
    p.add_argument("--global-batch-size", type=int, help="sequences per optimizer step (default: micro batch x "
                                                         "data parallel)")
    _layout_arguments(p)
    _common_arguments(p)
    p.set_defaults(func=run_predict)

    o = subparsers.add_parser("optimize", help="the best shape for a time (or money) budget",
                              description="Search widths, depths, heads and batch sizes (and, when asked, device "
                                          "counts and tensor-parallel groups) for the lowest predicted loss in a "
                                          "wall-clock or money budget on a device.")
    _budget_arguments(o, several=False, dollars=True)
    _search_arguments(o)
    _device_search_arguments(o, max_devices=1, price_help="dollars per device-hour (needed by --dollars)")
    o.add_argument("--top", type=int, default=10, help="rows of the ranked table to print (default: 10)")
    _common_arguments(o)
    o.add_argument("--plot", metavar="FILE.png", help="write the U-curve (loss against model size) here")
    o.set_defaults(func=run_optimize)

    f = subparsers.add_parser("frontier", help="optimal size, data and shape across time budgets",
                              description="The optimal N*, D*, loss and shape for each budget, the exponents "
                                          "of N*(t) and D*(t), and the same under a FLOP budget.")
    _budget_arguments(f, several=True)
    _search_arguments(f)
    _common_arguments(f)
    f.add_argument("--plot", metavar="FILE.png", help="write the U-curves and the frontier here")
    f.set_defaults(func=run_frontier)

    c = subparsers.add_parser("plan", help="the cheapest devices, shape and batch that reach a loss by a deadline",
                              description="Search device counts, widths, depths, heads and batch sizes for the "
                                          "cheapest run that reaches a target loss within a deadline.")
    c.add_argument("--target-loss", type=float, required=True, help="loss to reach (nats per token)")
    c.add_argument("--deadline", required=True, help="time allowed, e.g. 72h, 90m, 3600 (seconds)")
    _device_search_arguments(c, max_devices=8,
                             price_help="dollars per device-hour (without it: device-hours are minimised)")
    _search_arguments(c)
    _common_arguments(c)
    c.set_defaults(func=run_plan)

    lay = subparsers.add_parser("layout", help="the fastest tensor x pipeline x data layout of one model",
                                description="Try every tensor-parallel, pipeline, interleave, data-parallel, "
                                            "sequence-parallel, ZeRO, checkpointing and micro-batch layout of a "
                                            "fixed model and global batch on N devices; print the fastest that "
                                            "fits in memory and the ranked table.")
    _model_arguments(lay)
    lay.add_argument("--devices", type=int, required=True, help="devices to lay the model out over")
    lay.add_argument("--global-batch-size", type=int, required=True, help="sequences per optimizer step")
    lay.add_argument("--top", type=int, default=10, help="rows of the ranked table to print (default: 10)")
    _device_arguments(lay)
    lay.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lay.set_defaults(func=run_layout)


def _model_arguments(parser) -> None:
    """One model's shape: --config, or --d-model and --layers (predict, layout); read by _model_config."""
    parser.add_argument("--config", metavar="PATH", help="the model from a file instead of the shape flags: a "
                                                          "Hugging Face config.json (or its folder), a litgpt "
                                                          "model_config.yaml, a nanoGPT config .py")
    parser.add_argument("--d-model", type=int, help="residual width (required without --config)")
    parser.add_argument("--layers", type=int, help="number of transformer blocks (required without --config)")
    parser.add_argument("--heads", type=int, help="attention heads (default: d_model / 64)")
    parser.add_argument("--mlp", choices=("gelu", "swiglu", "geglu"), default="gelu")
    parser.add_argument("--vocab", type=int, default=50257, help="vocabulary size (default: 50257)")
    parser.add_argument("--seq-len", type=int, help="context length (default: 1024, or the --config's "
                                                    "max_position_embeddings)")


def _model_config(args):
    """The TransformerConfig of the _model_arguments flags."""
    from timelaw.config import TransformerConfig

    cfg = _model_file(args)
    if cfg is not None:
        return cfg
    if args.d_model is None or args.layers is None:
        raise ValueError("give the model as --config PATH, or as --d-model and --layers")
    heads = args.heads or max(1, args.d_model // 64)
    return TransformerConfig(d_model=args.d_model, n_layers=args.layers, n_heads=heads, mlp=args.mlp,
                             vocab_size=args.vocab, seq_len=args.seq_len or 1024)


def _model_defaults(args) -> dict:
    """field -> where the command took a value the user did not give (for the error messages)."""
    return {} if (args.heads or args.config) else {"n_heads": "--d-model / 64"}


# TrainSetup fields set by predict's parallel-layout flags (the flag is the field with dashes).
LAYOUT_FIELDS = ("tensor_parallel", "pipeline_parallel", "data_parallel", "pipeline_interleave",
                 "sequence_parallel", "zero_stage", "overlap_grad_reduce")


def _layout_arguments(parser) -> None:
    from timelaw.config import TrainSetup

    fields = TrainSetup.model_fields
    for name, help_text in (("tensor_parallel", "devices in each tensor-parallel group"),
                            ("pipeline_parallel", "pipeline stages"),
                            ("data_parallel", "data-parallel ranks"),
                            ("pipeline_interleave", "model chunks per pipeline stage (interleaved 1F1B)")):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=fields[name].default,
                            help=f"{help_text} (default: {fields[name].default})")
    parser.add_argument("--sequence-parallel", action="store_true",
                        help="split norms and residuals over the tensor-parallel ranks by sequence")
    parser.add_argument("--zero-stage", type=int, choices=(0, 1, 2, 3), default=fields["zero_stage"].default,
                        help="what data-parallel ranks shard: 0 nothing, 1 optimizer state, 2 and gradients, "
                             f"3 and weights (default: {fields['zero_stage'].default})")
    parser.add_argument("--overlap-grad-reduce", action="store_true",
                        help="all-reduce the gradients in buckets during the backward, as torch DDP does")


def _device_search_arguments(parser, max_devices: int, price_help: str) -> None:
    """The flags of a search over device counts, layouts and their cost (optimize, plan)."""
    parser.add_argument("--max-devices", type=int, default=max_devices,
                        help=f"most devices: 1, 2, 4, ... up to it are searched (default: {max_devices})")
    parser.add_argument("--price", type=float, help=price_help)
    parser.add_argument("--watts", type=float, help="watts per device, for the energy")
    parser.add_argument("--tensor-parallel-sizes", type=int, nargs="+", default=[1], metavar="T",
                        help="tensor-parallel group sizes to try at each device count (default: 1, data "
                             "parallel only); e.g. 1 2 4 8 lets models too large for one device in")
    parser.add_argument("--pipeline-parallel-sizes", type=int, nargs="+", default=[1], metavar="P",
                        help="pipeline depths to try at each device count (default: 1)")
    parser.add_argument("--no-layout-refinement", dest="refine_layout", action="store_false",
                        help="keep the searched layout instead of giving each device count's best candidate the "
                             "fastest layout best_layout finds (tensor, pipeline, ZeRO, recomputation)")


def _layout_search(args) -> dict:
    return dict(tensor_parallel_sizes=tuple(args.tensor_parallel_sizes),
                pipeline_parallel_sizes=tuple(args.pipeline_parallel_sizes), refine_layout=args.refine_layout)


def _budget_arguments(parser, several: bool, dollars: bool = False) -> None:
    """One time budget: --hours, --minutes or --seconds; with dollars=True also --dollars, alone or with a
    time budget (then each device count gets the hours the money buys, within the time budget)."""
    group = parser.add_mutually_exclusive_group(required=not dollars)
    nargs = "+" if several else None
    for unit in ("hours", "minutes", "seconds"):
        group.add_argument(f"--{unit}", type=float, nargs=nargs, help=f"budget in {unit}")
    if dollars:
        parser.add_argument("--dollars", type=float, help="budget in money (needs --price): each device count "
                                                          "gets the hours it buys, within --hours if given")


def _device_arguments(parser) -> None:
    """What runs the model: --profile or --system (not both), the step-time model and the precision."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--profile", help="device profile name or JSON path (default: this machine's "
                                         "calibration, else a shipped spec sheet)")
    group.add_argument("--system", metavar="NAME_OR_PATH",
                       help="a System (nodes of devices and their links) by name or JSON path, e.g. "
                            "dgx-h100-80gb (`timelaw.list_systems()`)")
    parser.add_argument("--method", choices=("roofline", "memcopy", "flops"), default="roofline",
                        help="step-time model (default: roofline)")
    parser.add_argument("--precision", choices=("bf16", "fp16", "fp32"),
                        help="default: bf16 if the profile has it, else the profile's precision")
    parser.add_argument("--weights-in-16-bits", action="store_true",
                        help="16-bit weights and residual stream with fp32 master weights in the optimizer "
                             "(Megatron-LM, DeepSpeed bf16, FSDP param_dtype), instead of torch autocast")


def _common_arguments(parser) -> None:
    _device_arguments(parser)
    parser.add_argument("--law", help="loss law: preset name or JSON path (default: composite2026, or "
                                      "composite2026_data with --unique-tokens)")
    parser.add_argument("--unique-tokens", type=float, help="tokens in the data set (repeats are discounted)")
    parser.add_argument("--checkpointing", choices=("none", "selective", "full"), default="none",
                        help="activation checkpointing (default: none)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _search_arguments(parser) -> None:
    parser.add_argument("--config", metavar="PATH",
                        help="base model file (Hugging Face config.json, litgpt model_config.yaml, nanoGPT "
                             "config .py): its vocabulary, context, MLP kind, norm, positions, tying and "
                             "biases are kept; widths, depths, heads and batches are searched")
    parser.add_argument("--min-params", type=float, default=0.0, help="smallest model (total parameters)")
    parser.add_argument("--max-params", type=float, default=math.inf, help="largest model (total parameters)")
    parser.add_argument("--seq-len", type=int, nargs="+", help="context lengths to try (default: 1024, or the "
                                                               "--config's)")
    parser.add_argument("--mlp", choices=("gelu", "swiglu", "geglu"), nargs="+",
                        help="MLP kinds to try (default: gelu, or the --config's)")
    parser.add_argument("--vocab", type=int, help="vocabulary size (fixed; default: 50257, or the --config's)")
    parser.add_argument("--min-steps", type=int, default=100, help="fewest optimizer steps allowed (default: 100)")


def _budget(args) -> dict:
    return {unit: getattr(args, unit) for unit in ("hours", "minutes", "seconds") if getattr(args, unit) is not None}


def _profile(args):
    """What --system or --profile names: the System loaded (a bad name or file is a ValueError), else the
    profile flag as given (a name, a path or None), for the library to resolve."""
    if getattr(args, "system", None):
        from timelaw.devices.system import load_system

        return load_system(args.system)
    return args.profile


def _setup(args, profile, **fields):
    """The TrainSetup the flags describe; without --precision, the planner's default for the profile."""
    from timelaw.config import TrainSetup
    from timelaw.plan.inputs import resolve_device, resolve_setup

    precision = args.precision or resolve_setup(None, resolve_device(profile, args.method)[1]).precision
    if hasattr(args, "checkpointing"):
        fields.setdefault("activation_checkpointing", args.checkpointing)
    return TrainSetup(precision=precision, weights_in_16_bits=args.weights_in_16_bits, **fields)


def _options(args, profile) -> dict:
    return dict(profile=profile, law=args.law, unique_tokens=args.unique_tokens, method=args.method)


def _model_file(args):
    """The TransformerConfig of --config (None without it)."""
    if not getattr(args, "config", None):
        return None
    from timelaw.configs import load_model_config

    seq_len = max(args.seq_len) if isinstance(args.seq_len, list) else args.seq_len  # the longest searched
    return load_model_config(args.config, seq_len=seq_len)


def _space(args) -> dict:
    base = _model_file(args)
    space = dict(min_params=args.min_params, max_params=args.max_params, min_steps=args.min_steps,
                 seq_lens=tuple(args.seq_len or ([base.seq_len] if base else [1024])),
                 mlps=tuple(args.mlp or ([base.mlp] if base else ["gelu"])),
                 vocab_size=args.vocab or (base.vocab_size if base else 50257))
    if base is not None:  # the block options of the base model; the search chooses the shape
        space.update(norm=base.norm, positions=base.positions, tied_embeddings=base.tied_embeddings,
                     bias=base.bias)
    return space


def _plain(value):
    """JSON-ready: numpy values to Python, and inf / nan (not JSON) to null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _emit(args, result) -> None:
    if args.json:
        print(json.dumps(_plain(result.to_dict()), indent=1))
    else:
        print(result.text)


def _run(name: str, body, args, defaults=None) -> int:
    from timelaw._optional import MissingDependency
    from timelaw.cli_errors import report_error

    try:
        return body(args)
    except (ValueError, ValidationError, MissingDependency) as err:
        return report_error(name, err, defaults)


def run_predict(args: argparse.Namespace) -> int:
    def body(args):
        from timelaw.plan import predict_loss

        cfg = _model_config(args)
        profile = _profile(args)
        layout = {name: getattr(args, name) for name in LAYOUT_FIELDS}
        setup = _setup(args, profile, micro_batch_size=args.micro_batch_size,
                       global_batch_size=args.global_batch_size, **layout)
        _emit(args, predict_loss(cfg, **_budget(args), setup=setup, **_options(args, profile)))
        return 0
    defaults = _model_defaults(args)
    if args.global_batch_size is None:
        defaults["global_batch_size"] = ("--micro-batch-size" if args.data_parallel == 1
                                         else "--micro-batch-size x --data-parallel")
    return _run("predict", body, args, defaults)


def _search_command(name: str, search, plot, args: argparse.Namespace) -> int:
    """optimize and frontier: run the search, print it, and plot it when asked."""
    def body(args):
        if args.plot:  # before the search, not after it
            require("matplotlib", "--plot")
        profile = _profile(args)
        result = search(**_budget(args), setup=_setup(args, profile), **_options(args, profile), **_space(args))
        _emit(args, result)
        if args.plot:
            plot(result, args.plot)
            print(f"wrote {args.plot}", file=sys.stderr)
        return 0
    return _run(name, body, args)


def run_optimize(args: argparse.Namespace) -> int:
    from functools import partial

    from timelaw.plan import optimize
    from timelaw.plot import plot_plan

    if args.dollars is None and not _budget(args):
        return _run("optimize", _refuse("give a budget: --hours, --minutes or --seconds, or --dollars (with "
                                        "--price), or a time and --dollars together"), args)
    search = partial(optimize, top=args.top, max_devices=args.max_devices, dollars=args.dollars,
                     dollars_per_device_hour=args.price, watts_per_device=args.watts, **_layout_search(args))
    return _search_command("optimize", search, plot_plan, args)


def _refuse(message: str):
    """A command body that fails with `message` (reported as bad input, exit code 2)."""
    def body(args):
        raise ValueError(message)
    return body


def run_frontier(args: argparse.Namespace) -> int:
    from timelaw.plan import frontier
    from timelaw.plot import plot_frontier

    return _search_command("frontier", frontier, plot_frontier, args)


def run_plan(args: argparse.Namespace) -> int:
    def body(args):
        from timelaw.plan import cheapest
        from timelaw.training.budget import parse_budget

        deadline_hours = parse_budget(args.deadline) / 3600.0
        profile = _profile(args)
        _emit(args, cheapest(args.target_loss, deadline_hours, max_devices=args.max_devices,
                             dollars_per_device_hour=args.price, watts_per_device=args.watts,
                             **_layout_search(args), setup=_setup(args, profile),
                             **_options(args, profile), **_space(args)))
        return 0
    return _run("plan", body, args)


def run_layout(args: argparse.Namespace) -> int:
    def body(args):
        from timelaw.plan import best_layout

        cfg = _model_config(args)
        profile = _profile(args)
        # The micro-batch is searched: 1 here only lets any global batch through TrainSetup's check.
        setup = _setup(args, profile, micro_batch_size=1, global_batch_size=args.global_batch_size)
        _emit(args, best_layout(cfg, setup, profile=profile, devices=args.devices, method=args.method,
                                top=args.top))
        return 0
    return _run("layout", body, args, _model_defaults(args))
