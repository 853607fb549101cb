"""`two_layer_net` in NumPy with hand-written backprop: the ground truth both frameworks

Stage: run.
are checked against.

This is the tutorial's "Warmup: numpy" code, kept as written (float64, plain SGD, loss
= sum of squared errors, computed before each update), made into functions. It needs
no framework, so a disagreement between PyTorch and Keras can be traced to one side.
"""

from __future__ import annotations

import numpy as np


def forward(x: np.ndarray, w1: np.ndarray, w2: np.ndarray):
    """(h, h_relu, y_pred) for x (N, D_in), w1 (D_in, H), w2 (H, D_out)."""
    h = x.dot(w1)
    h_relu = np.maximum(h, 0)
    return h, h_relu, h_relu.dot(w2)


def loss_and_gradients(x: np.ndarray, y: np.ndarray, w1: np.ndarray, w2: np.ndarray):
    """(loss, grad_w1, grad_w2), the backward pass written out by hand."""
    h, h_relu, y_pred = forward(x, w1, w2)
    loss = np.square(y_pred - y).sum()
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h_relu.T.dot(grad_y_pred)
    grad_h_relu = grad_y_pred.dot(w2.T)
    grad_h = grad_h_relu.copy()
    grad_h[h < 0] = 0
    grad_w1 = x.T.dot(grad_h)
    return float(loss), grad_w1, grad_w2


def train(x, y, w1, w2, learning_rate: float, steps: int, dtype=np.float64) -> np.ndarray:
    """Per-step losses of plain full-batch SGD from the given weights (left unchanged)."""
    x, y = x.astype(dtype), y.astype(dtype)
    w1, w2 = w1.astype(dtype), w2.astype(dtype)
    losses = np.empty(steps)
    for step in range(steps):
        losses[step], grad_w1, grad_w2 = loss_and_gradients(x, y, w1, w2)
        w1 -= learning_rate * grad_w1
        w2 -= learning_rate * grad_w2
    return losses
