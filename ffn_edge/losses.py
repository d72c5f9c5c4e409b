"""The FFN training loss (paper §4.2, Eq. 3-5): CE on the highest-frame prediction plus temporal
distillation from it to every other sub-network.

Why these exact choices: the authors' code computes ``KLDivLoss(reduction="batchmean")`` on the
log-softmax of each student (L, M) against the softmax of the *detached* teacher (H). The teacher
gets its gradient from the cross-entropy only; distillation pulls the students towards it, never
the other way round. λ = 1 as in the paper. With one prediction the loss is plain cross-entropy,
which is what Separated Training and every single-sub-network baseline use.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def distill_kl(students: Sequence[torch.Tensor], teacher: torch.Tensor) -> torch.Tensor:
    """Σ_k KL(p_teacher ‖ p_k), batch-mean, with the teacher detached (no gradient to it)."""
    target = F.softmax(teacher.detach().float(), dim=-1)
    total = teacher.new_zeros((), dtype=torch.float32)
    for s in students:
        total = total + F.kl_div(F.log_softmax(s.float(), dim=-1), target, reduction="batchmean")
    return total


def ffn_loss(
    logits: Sequence[torch.Tensor], target: torch.Tensor, lam: float = 1.0, distill: bool = True,
    ce_all: bool = False,
) -> torch.Tensor:
    """Loss for sub-network predictions ordered by frame count, the last (highest) being the teacher.

    ``distill=False`` is the paper's "w/o temporal distillation" ablation: CE on every sub-network.
    ``ce_all=True`` (``--loss ce_td``) adds CE on every student to the distillation, so L and M
    learn from the labels as Separated Training does and not only from a teacher that learns late.
    """
    if not logits:
        raise ValueError("ffn_loss needs at least one prediction")
    *students, teacher = logits
    ce = F.cross_entropy(teacher.float(), target)
    if not students:
        return ce
    if distill:
        extra = sum(F.cross_entropy(s.float(), target) for s in students) if ce_all else 0.0
        return ce + extra + lam * distill_kl(students, teacher)
    return ce + sum(F.cross_entropy(s.float(), target) for s in students)
