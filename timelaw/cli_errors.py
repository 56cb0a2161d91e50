"""Errors on the command line, in the user's terms: the flag, the value given, and what is allowed.

The Python API raises pydantic ValidationErrors and ValueErrors that name config fields (`n_heads`,
`ci_level`); a command-line user typed flags (`--heads`, `--level`). `FLAGS` is the one mapping from field
to flag, and `report_error` the one place it is applied: every subcommand sends its bad-input errors there,
and it prints one line (no pydantic dump, no URL, no traceback) and returns the exit code.

    timelaw predict --d-model 770 --layers 12 --hours 4
    timelaw predict: error: --heads 12 (the default, --d-model / 64): must divide --d-model (770); set --heads
"""
from __future__ import annotations

import re
import sys
from typing import Mapping, Optional, Union

from timelaw._optional import MissingDependency, missing_dependency

__all__ = ["FLAGS", "flag_for", "explain", "report_error"]

# config / API field -> the flag that sets it. A dict value gives per-command flags ("*": every other command;
# None: no flag sets it there, so the field keeps its name, e.g. pilot's shapes come from --sizes WIDTHxDEPTH).
FLAGS: dict[str, Union[str, dict[str, Optional[str]]]] = {
    # TransformerConfig
    "d_model": {"pilot": None, "*": "--d-model"},
    "n_layers": {"pilot": None, "*": "--layers"},
    "n_heads": {"pilot": None, "*": "--heads"},
    "vocab_size": "--vocab",
    "seq_len": "--seq-len",
    "seq_lens": "--seq-len",
    "mlp": "--mlp",
    "mlps": "--mlp",
    # TrainSetup
    "micro_batch_size": {"pilot": "--batch", "*": "--micro-batch-size"},
    "global_batch_size": {"pilot": "--batch", "*": "--global-batch-size"},
    "precision": "--precision",
    "activation_checkpointing": "--checkpointing",
    "tensor_parallel": "--tensor-parallel",
    "pipeline_parallel": "--pipeline-parallel",
    "data_parallel": "--data-parallel",
    "pipeline_interleave": "--pipeline-interleave",
    "sequence_parallel": "--sequence-parallel",
    "zero_stage": "--zero-stage",
    "overlap_grad_reduce": "--overlap-grad-reduce",
    "weights_in_16_bits": "--weights-in-16-bits",
    # budgets and planner options
    "hours": "--hours",
    "minutes": "--minutes",
    "seconds": "--seconds",
    "unique_tokens": "--unique-tokens",
    "min_params": "--min-params",
    "max_params": "--max-params",
    "min_steps": "--min-steps",
    "profile": "--profile",
    "system": "--system",
    "max_devices": "--max-devices",
    "tensor_parallel_sizes": "--tensor-parallel-sizes",
    "pipeline_parallel_sizes": "--pipeline-parallel-sizes",
    "dollars": "--dollars",
    "dollars_per_device_hour": "--price",
    "watts_per_device": "--watts",
    "target_loss": "--target-loss",
    "deadline_hours": "--deadline",
    "devices": {"layout": "--devices", "*": None},
    "law": "--law",
    "method": "--method",
    # fitting (timelaw fit)
    "ci_level": "--level",
    "n_bootstrap": "--bootstrap",
    "grid": "--grid",
    "seed": "--seed",
    # pilot runs
    "bpe_vocab_size": "--bpe-vocab",
    "max_train_tokens": "--max-train-tokens",
    "seeds": "--seeds",
    "threads": "--threads",
    "sizes": "--sizes",
    # phases
    "flops": "--flops",
    "alpha": "--alpha",
    "beta": "--beta",
}

# Field names that only a programmer would write (they contain "_"): translated wherever they appear in a
# message. Plain words ("hours", "law", "grid") only where pydantic names them as the field, or where one
# begins the message as its subject ("hours must be finite and > 0").
_IDENTIFIER = re.compile(r"(?<![\w-])(" + "|".join(sorted((f for f in FLAGS if "_" in f), key=len, reverse=True))
                         + r")(?![\w-])")


def flag_for(field: str, command: Optional[str] = None) -> str:
    """The flag that sets `field` in `command` (the field itself if no flag sets it)."""
    flag = FLAGS.get(field, field)
    if isinstance(flag, dict):
        flag = flag.get(command or "*", flag["*"])
    return field if flag is None else flag


def _in_flags(text: str, command: Optional[str]) -> str:
    text = _IDENTIFIER.sub(lambda m: flag_for(m.group(1), command), text)
    first = re.match(r"([a-z]+)(?= (?:must |is |has |\())", text)  # "hours must ...": a leading word is the field
    if first and first.group(1) in FLAGS:
        text = flag_for(first.group(1), command) + text[first.end():]
    return text


def _value(value) -> str:
    return " ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


def explain(error: BaseException, command: Optional[str] = None,
            defaults: Optional[Mapping[str, str]] = None) -> str:
    """One line for `error` in flags: for a ValidationError each bad field as `--flag VALUE: what is allowed`.

    defaults: field -> how the command derived its value when the user gave no flag (e.g. n_heads ->
    "--d-model / 64"), so the message says where a value the user never typed came from.
    """
    from pydantic import ValidationError

    if not isinstance(error, ValidationError):
        return _in_flags(str(error), command)
    parts = []
    for item in error.errors(include_url=False):
        message = item["msg"]
        message = re.sub(r"^(Value error|Assertion failed), ", "", message)
        message = re.sub(r"^Input should be ", "must be ", message)
        field = str(item["loc"][0]) if item.get("loc") else None
        if field is None or field == "__root__":
            parts.append(_in_flags(message, command))
            continue
        flag = flag_for(field, command)
        given = item.get("input")
        shown = _value(given) if given is not None and not isinstance(given, dict) else None
        if shown is not None:  # the value is shown after the flag; drop a trailing "; got 12" that repeats it
            message = re.sub(r"[;,] got " + re.escape(shown) + r"$", "", message)
        message = _in_flags(message, command)
        where = f" (the default, {defaults[field]})" if defaults and field in defaults else ""
        head = f"{flag} {shown}{where}" if shown is not None else flag
        tail = f"; set {flag}" if where else ""
        parts.append(f"{head}: {message}{tail}")
    return "; ".join(dict.fromkeys(parts))  # pilot's --batch sets two fields: say it once


def report_error(command: str, error: BaseException, defaults: Optional[Mapping[str, str]] = None) -> int:
    """Print `error` as one line for the user of `command` and return the exit code (2 bad input, 1 missing
    optional dependency). Re-raises an ImportError that is not a missing optional dependency."""
    if isinstance(error, ImportError):
        if isinstance(error, MissingDependency):  # raised by require(..., feature): it names the feature
            print(f"timelaw {command}: {error}", file=sys.stderr)
            return 1
        missing = missing_dependency(error, f"timelaw {command}")
        if missing is None:
            raise error
        print(missing, file=sys.stderr)
        return 1
    print(f"timelaw {command}: error: {explain(error, command, defaults)}", file=sys.stderr)
    return 2
