"""Evaluation metrics, computed once in NumPy from each framework's logits.

Stage: run.

Both frameworks only predict logits; loss and accuracy are computed here so that the
two sides are scored by the same definition (float64, mean over examples).
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of integer labels under softmax(logits)."""
    log_probs = log_softmax(logits.astype(np.float64), axis=1)
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == labels).mean())


def evaluate(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(loss, accuracy)."""
    return cross_entropy(logits, labels), accuracy(logits, labels)
