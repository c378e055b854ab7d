"""Accuracy of a model on named splits (test + OOD suites), batched and without gradients."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..data import Split
from ..data.stream import FileSplit, in_order
from ..models import eval_mode


@torch.no_grad()
def predict(model: nn.Module, split: Split | FileSplit, batch_size: int = 1000) -> Tensor:
    """Top-1 predictions for every image of `split` (model in eval mode for the call)."""
    preds = []
    with eval_mode(model):
        for x, _ in in_order(split, batch_size):  # a streamed split is decoded by DataLoader workers
            preds.append(model(x).argmax(1))
    return torch.cat(preds)


def accuracy(model: nn.Module, suites: dict[str, Split], reference: dict[str, Tensor] | None = None):
    """(accuracy per suite, agreement with `reference` predictions per suite, the predictions)."""
    preds = {name: predict(model, split) for name, split in suites.items()}
    acc = {name: (p == suites[name].y).float().mean().item() for name, p in preds.items()}
    agree = {} if reference is None else {n: (p == reference[n]).float().mean().item() for n, p in preds.items()}
    return acc, agree, preds
