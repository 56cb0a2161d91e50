"""Tokenizers for pilot runs: bytes (always available) or a small BPE trained on the data.

The BPE is the Hugging Face `tokenizers` library's byte-level BPE (the optional extra `timelaw[pilot]`):
byte-level, so any text round-trips exactly, and well kept, so nothing here re-implements merges.
"""
from __future__ import annotations

from typing import Iterable, Protocol

import numpy as np

__all__ = ["Tokenizer", "ByteTokenizer", "BPETokenizer", "make_tokenizer", "TOKENIZERS"]

TOKENIZERS = ("byte", "bpe")
DEFAULT_BPE_VOCAB = 4096


class Tokenizer(Protocol):
    name: str
    vocab_size: int

    def encode(self, text: str) -> np.ndarray: ...

    def decode(self, ids) -> str: ...


class ByteTokenizer:
    """UTF-8 bytes as tokens: a vocabulary of 256, no training, exact round trip."""

    name = "byte"
    vocab_size = 256

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32)

    def decode(self, ids) -> str:
        return bytes(np.asarray(ids, dtype=np.uint8).tolist()).decode("utf-8", errors="replace")


class BPETokenizer:
    """A byte-level BPE of `vocab_size` tokens trained on `texts` with the `tokenizers` library."""

    def __init__(self, texts: Iterable[str], vocab_size: int = DEFAULT_BPE_VOCAB):
        from timelaw._optional import require

        ByteLevelBPETokenizer = require("tokenizers", "the BPE tokenizer (or use tokenizer='byte')").ByteLevelBPETokenizer
        self._bpe = ByteLevelBPETokenizer()
        self._bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, show_progress=False)
        self.vocab_size = self._bpe.get_vocab_size()
        self.name = f"bpe{self.vocab_size}"

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._bpe.encode(text).ids, dtype=np.int32)

    def encode_many(self, texts: list[str]) -> list[np.ndarray]:
        return [np.asarray(e.ids, dtype=np.int32) for e in self._bpe.encode_batch(texts)]

    def decode(self, ids) -> str:
        return self._bpe.decode(np.asarray(ids).tolist())


def make_tokenizer(kind: str, texts: list[str], vocab_size: int = DEFAULT_BPE_VOCAB) -> Tokenizer:
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe":
        return BPETokenizer(texts, vocab_size)
    raise ValueError(f"tokenizer must be one of {TOKENIZERS}; got {kind!r}")
