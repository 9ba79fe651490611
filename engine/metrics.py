"""Classification metrics on per-video scores: top-k, per-class and mean class accuracy."""
from __future__ import annotations

import torch

__all__ = ["topk_correct", "topk_accuracy", "per_class_accuracy", "mean_class_accuracy",
           "classification_metrics", "confusion_matrix"]


def topk_correct(scores: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Bool (N,): the label is among the k highest scores (k clipped to the number of classes)."""
    k = min(k, scores.shape[1])
    top = scores.topk(k, dim=1).indices
    return (top == labels.view(-1, 1)).any(dim=1)


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> dict[int, float]:
    """Percent of samples whose label is in the top-k, for each k."""
    if scores.shape[0] == 0:
        return {k: float("nan") for k in ks}
    return {k: 100.0 * topk_correct(scores, labels, k).float().mean().item() for k in ks}


def per_class_accuracy(scores: torch.Tensor, labels: torch.Tensor,
                       num_classes: int | None = None) -> torch.Tensor:
    """(C,) top-1 accuracy in percent per class; NaN for classes with no sample."""
    num_classes = num_classes or scores.shape[1]
    pred = scores.argmax(dim=1)
    correct = (pred == labels).double()
    totals = torch.bincount(labels, minlength=num_classes).double()
    hits = torch.bincount(labels, weights=correct, minlength=num_classes)
    acc = torch.full((num_classes,), float("nan"), dtype=torch.float64)
    present = totals > 0
    acc[present] = 100.0 * hits[present] / totals[present]
    return acc


def mean_class_accuracy(scores: torch.Tensor, labels: torch.Tensor,
                        num_classes: int | None = None) -> float:
    """Mean of the per-class top-1 accuracies over the classes that have samples."""
    acc = per_class_accuracy(scores, labels, num_classes)
    present = ~torch.isnan(acc)
    return float(acc[present].mean()) if present.any() else float("nan")


def classification_metrics(scores: torch.Tensor, labels: torch.Tensor,
                           num_classes: int | None = None) -> dict:
    """top1, top5, mean_class_acc (percent) and the per-class list (NaN -> None for JSON)."""
    scores = scores.float()
    labels = labels.long()
    acc = topk_accuracy(scores, labels, (1, 5))
    per_class = per_class_accuracy(scores, labels, num_classes)
    present = ~torch.isnan(per_class)
    return {
        "top1": acc[1],
        "top5": acc[5],
        "mean_class_acc": float(per_class[present].mean()) if present.any() else float("nan"),
        "per_class_acc": [None if torch.isnan(v) else float(v) for v in per_class],
        "num_samples": int(labels.numel()),
    }


def confusion_matrix(scores: torch.Tensor, labels: torch.Tensor,
                     num_classes: int | None = None) -> torch.Tensor:
    """(C, C) int64 counts: row = true class, column = top-1 prediction."""
    num_classes = num_classes or scores.shape[1]
    pred = scores.argmax(dim=1)
    flat = labels.long() * num_classes + pred
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes,
                                                                          num_classes)
