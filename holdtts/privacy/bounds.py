"""What a differential-privacy guarantee implies for membership inference (no torch: the report uses it)."""
from __future__ import annotations

import math


def membership_auroc_bound(epsilon: float, delta: float) -> float:
    """The largest AUROC any membership test can reach against an (epsilon, delta)-DP mechanism.

    (epsilon, delta)-DP bounds every test's ROC curve by TPR <= min(1, delta + e^eps FPR,
    1 - e^-eps (1 - delta - FPR)) (Kairouz, Oh, Viswanath 2015); the area under that bound is
    (1 - delta) e^eps / (1 + e^eps) + delta (1 + (1 - delta) / (1 + e^eps)): sigmoid(eps) when delta = 0.
    """
    if math.isinf(epsilon):
        return 1.0
    knee = (1.0 - delta) / (1.0 + math.exp(epsilon))  # the FPR where the two linear bounds meet
    return min(1.0, math.exp(epsilon) * knee + delta * (1.0 + knee))
