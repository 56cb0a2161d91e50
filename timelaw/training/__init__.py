"""Training under wall-clock budgets: pilot runs that fit timelaw to your own data and hardware.

    from timelaw.training import pilot, time_measurements
    pilot("corpus/", ["1m", "2m"], sizes=["64x2", "128x4"], out="runs.csv")   # or: timelaw pilot ...
    law = timelaw.fit_loss_law("runs.csv")                                    # N, D, loss, U columns
    step_model = timelaw.fit_time_model(time_measurements("runs.csv"), method="memcopy")

Training needs torch; the BPE tokenizer needs `tokenizers` (the `pilot` extra). `timelaw.pilot(...)` is
`timelaw.training.pilot(...)`.
"""

from timelaw.training.budget import parse_budget
from timelaw.training.data import Corpus, load_corpus
from timelaw.training.run import DEFAULT_SIZES, pilot, size_config
from timelaw.training.schedule import default_lr, lr_at
from timelaw.training.table import append_row, curves_path, read_rows, time_measurements
from timelaw.training.tokenizer import BPETokenizer, ByteTokenizer
from timelaw.training.trainer import RunResult, TrainOptions, train_for_budget

__all__ = [
    "pilot", "parse_budget", "load_corpus", "Corpus", "size_config", "DEFAULT_SIZES",
    "TrainOptions", "RunResult", "train_for_budget", "lr_at", "default_lr",
    "read_rows", "append_row", "time_measurements", "curves_path", "ByteTokenizer", "BPETokenizer",
]
