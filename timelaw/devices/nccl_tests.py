"""Read the text that nccl-tests' all_reduce_perf prints into an AllReduceTable.

all_reduce_perf (github.com/NVIDIA/nccl-tests) prints a header of `#` lines (one `#  Rank  r ...` line per
rank taking part), then one line per message size:

    size  count  type  redop  [root]  time algbw busbw #wrong  time algbw busbw #wrong
    (B)   (elements)                  (us) (GB/s) (GB/s)       (us) (GB/s) (GB/s)
          \\------- out-of-place ------/    \\-------- in-place --------/

Older versions have no `root` column, so the times are read from the end of each line: the in-place time is
the fourth number from the end, the out-of-place time the eighth. Times are in microseconds. Megatron and
torch's DDP reduce in place, so the in-place column is read by default.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["read_all_reduce_perf", "NcclTestsError"]

_RANK_LINE = re.compile(r"^#\s*Rank\s+(\d+)\b")
_NUMBER = re.compile(r"^[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$")


class NcclTestsError(ValueError):
    """A file that is not all_reduce_perf output, or whose rank count cannot be told."""


def _ranks_in_header(lines: list[str]) -> int | None:
    """Ranks listed under `# Using devices` (each MPI process prints its own; their rank numbers count)."""
    ranks = {int(m.group(1)) for line in lines if (m := _RANK_LINE.match(line.strip()))}
    return max(ranks) + 1 if ranks else None


def read_all_reduce_perf(path: str | os.PathLike, group_size: int | None = None, in_place: bool = True
                         ) -> tuple[int, list[float], list[float]]:
    """(ranks, message bytes, seconds) of one all_reduce_perf run, bytes increasing.

    `group_size`: the number of ranks, when the output's header does not list them (it prints one
    `#  Rank` line per rank); if both are there they must agree.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise NcclTestsError(f"cannot read nccl-tests output {path}: {error.strerror or error}") from None
    header_ranks = _ranks_in_header(lines)
    if group_size is not None and header_ranks is not None and group_size != header_ranks:
        raise NcclTestsError(f"{path}: group_size={group_size} given, but the output lists {header_ranks} ranks")
    ranks = group_size if group_size is not None else header_ranks
    if ranks is None:
        raise NcclTestsError(f"{path}: the output lists no '#  Rank' lines; pass group_size=")
    rows = {}
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0].startswith("#") or not fields[0].isdigit():
            continue  # header, comments, the "Avg bus bandwidth" footer, NCCL's INFO lines
        if len(fields) < 12:
            raise NcclTestsError(f"{path}:{number}: a result line needs at least 12 columns "
                                 f"(size, count, type, redop, then 4 out-of-place and 4 in-place); got {line!r}")
        time_us = fields[-4] if in_place else fields[-8]
        if not _NUMBER.match(time_us):
            raise NcclTestsError(f"{path}:{number}: time {time_us!r} is not a number in {line!r}")
        size = float(fields[0])
        if size > 0:  # all_reduce_perf -b 0 prints a zero-byte line
            rows[size] = float(time_us) * 1e-6
    if not rows:
        raise NcclTestsError(f"{path}: no result lines found; is this all_reduce_perf output?")
    sizes = sorted(rows)
    return ranks, sizes, [rows[s] for s in sizes]
