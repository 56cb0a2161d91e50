"""Pilot data: text from a file or a folder -> token ids, a held-out split, and the unique-token count.

The held-out split takes every k-th block of the token stream (k = 1 / heldout_fraction), so it samples the
whole corpus rather than its last files. `unique_tokens` is the size of the training split: what the
data-constrained law calls U (runs with more tokens than that repeat data).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from timelaw.training.tokenizer import DEFAULT_BPE_VOCAB, make_tokenizer

__all__ = ["Corpus", "load_corpus", "read_texts", "Batcher", "heldout_windows"]

MAX_BLOCK_TOKENS = 1 << 16
MIN_BLOCKS = 200  # small corpora get smaller blocks, so the split still samples all of it


@dataclass(frozen=True)
class Corpus:
    train: np.ndarray  # token ids of the training split
    heldout: np.ndarray  # token ids of the held-out split
    vocab_size: int
    tokenizer: str
    source: str  # what was read, in words
    fingerprint: str  # sha256 of file names and contents, tokenizer and split: identifies the data of a run
    n_files: int

    @property
    def unique_tokens(self) -> int:
        return int(self.train.size)


def _text_of(file: Path) -> str | None:
    """The file's text, or None for a file that is not UTF-8 text (or holds NUL bytes)."""
    raw = file.read_bytes()
    if b"\0" in raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def read_texts(path, pattern: str = "*") -> list[tuple[str, str]]:
    """(name, text) of a file, of a list of files, or of every text file matching `pattern` under a folder
    (sorted; names relative to the folder). Files that are not UTF-8 text are skipped, so a folder can be
    pointed at as it is.
    """
    if isinstance(path, (list, tuple)):
        files, root = sorted(Path(p) for p in path), None
    elif Path(path).is_file():
        files, root = [Path(path)], Path(path).parent
    elif Path(path).is_dir():
        root = Path(path)
        files = sorted(p for p in root.rglob(pattern) if p.is_file())
    else:
        raise ValueError(f"data must be a text file, a list of files or a folder; {str(path)!r} does not exist")
    texts = [(f.relative_to(root).as_posix() if root else f.as_posix(), _text_of(f)) for f in files]
    texts = [(name, text) for name, text in texts if text is not None]
    if not texts:
        raise ValueError(f"no text files in {path!r}" + (f" matching {pattern!r}" if root else ""))
    return texts


def _fingerprint(texts: list[tuple[str, str]], *settings) -> str:
    digest = hashlib.sha256(repr(settings).encode())
    for name, text in texts:
        digest.update(name.encode() + b"\0" + text.encode("utf-8", errors="replace") + b"\0")
    return digest.hexdigest()


def _block_size(n_tokens: int) -> int:
    return int(min(MAX_BLOCK_TOKENS, max(64, n_tokens // MIN_BLOCKS)))


def _block_mask(n_tokens: int, heldout_fraction: float) -> tuple[int, np.ndarray]:
    """(block size, mask of held-out blocks): every k-th block, at least one."""
    block = _block_size(n_tokens)
    n_blocks = math.ceil(n_tokens / block)
    every = max(2, round(1 / heldout_fraction))
    mask = np.arange(n_blocks) % every == every // 2
    if not mask.any():
        mask[n_blocks // 2] = True
    return block, mask


def _split(ids: np.ndarray, heldout_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    block, mask = _block_mask(ids.size, heldout_fraction)
    blocks = np.repeat(mask, block)[: ids.size]
    return ids[~blocks], ids[blocks]


def _spread_subset(ids: np.ndarray, n_tokens: int) -> np.ndarray:
    """`n_tokens` of `ids` taken as evenly spaced blocks, so a small training set still spans the corpus."""
    if n_tokens >= ids.size:
        return ids
    block = _block_size(n_tokens)
    n_take = math.ceil(n_tokens / block)
    starts = np.linspace(0, ids.size - block, n_take).astype(np.int64)
    return np.concatenate([ids[s:s + block] for s in starts])[:n_tokens]


def load_corpus(path, tokenizer: str = "byte", *, bpe_vocab_size: int = DEFAULT_BPE_VOCAB,
                heldout_fraction: float = 0.05, max_train_tokens: int | None = None,
                pattern: str = "*") -> Corpus:
    """Read, tokenise and split text. `max_train_tokens` caps the training split (a finite-data setting).

    A BPE is trained on all the text, held-out part included: it sees no labels, and one shared vocabulary
    keeps held-out losses comparable between runs.
    """
    if not 0 < heldout_fraction < 0.5:
        raise ValueError(f"heldout_fraction must be in (0, 0.5); got {heldout_fraction}")
    texts = read_texts(path, pattern)
    tok = make_tokenizer(tokenizer, [text for _, text in texts], bpe_vocab_size)
    encode_many = getattr(tok, "encode_many", lambda many: [tok.encode(t) for t in many])
    ids = np.concatenate(encode_many([text + "\n" for _, text in texts]))
    train, heldout = _split(ids, heldout_fraction)
    if max_train_tokens is not None:
        train = _spread_subset(train, int(max_train_tokens))
    fingerprint = _fingerprint(texts, tok.name, heldout_fraction, max_train_tokens)
    source = _describe(path, pattern, len(texts))
    return Corpus(train, heldout, tok.vocab_size, tok.name, source, fingerprint, len(texts))


def _describe(path, pattern: str, n_files: int) -> str:
    if isinstance(path, (list, tuple)):
        return f"{n_files} listed files"
    return f"{path} ({n_files} files matching {pattern!r})" if Path(path).is_dir() else str(path)


class Batcher:
    """Training batches: non-overlapping windows of the training split, reshuffled every epoch."""

    def __init__(self, tokens: np.ndarray, seq_len: int, seed: int = 0):
        self.n_windows = (tokens.size - 1) // seq_len
        if self.n_windows < 1:
            raise ValueError(f"the training split ({tokens.size} tokens) is shorter than one sequence "
                             f"({seq_len + 1} tokens); use more data or a shorter seq_len")
        self.tokens, self.seq_len = tokens.astype(np.int64), seq_len
        self.rng = np.random.default_rng(seed)
        self.order, self.position, self.epoch = self.rng.permutation(self.n_windows), 0, 0

    def _next_windows(self, count: int) -> np.ndarray:
        picked = []
        while len(picked) < count:
            if self.position == self.n_windows:
                self.order, self.position, self.epoch = self.rng.permutation(self.n_windows), 0, self.epoch + 1
            take = min(count - len(picked), self.n_windows - self.position)
            picked.extend(self.order[self.position:self.position + take])
            self.position += take
        return np.asarray(picked)

    def next(self, batch_size: int):
        """(inputs, targets) int64 torch tensors of shape (batch_size, seq_len)."""
        import torch

        starts = self._next_windows(batch_size) * self.seq_len
        rows = self.tokens[starts[:, None] + np.arange(self.seq_len + 1)]
        rows = torch.from_numpy(rows)
        return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()


def heldout_windows(tokens: np.ndarray, seq_len: int, max_windows: int) -> np.ndarray:
    """Up to `max_windows` evenly spaced windows (seq_len + 1 tokens) of the held-out split, fixed per corpus."""
    available = (tokens.size - 1) // seq_len
    if available < 1:
        raise ValueError(f"the held-out split ({tokens.size} tokens) is shorter than one sequence; "
                         "use more data or a larger heldout_fraction")
    starts = np.linspace(0, available - 1, min(available, max_windows)).astype(np.int64) * seq_len
    return tokens.astype(np.int64)[starts[:, None] + np.arange(seq_len + 1)]
