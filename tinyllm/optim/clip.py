"""Global-norm gradient clipping, tinyllm.optim's name for it.

The implementation — ‖g‖ = √(Σ g²) over all gradients, g ← g · min(1, max_norm / (‖g‖ + 10⁻⁶))
— lives with PyTorch's name in tinyllm/nn/utils.py. Here `clip_grad_norm_` returns the norm
as a Python float (tinyllm's training loops log it directly); nn.utils.clip_grad_norm_
returns it as a 0-d Tensor, as PyTorch does.
"""

from __future__ import annotations

from tinyllm.nn.utils import clip_coefficient, total_norm
from tinyllm.nn.utils import clip_grad_norm as clip_grad_norm_

__all__ = ["clip_coefficient", "clip_grad_norm_", "total_norm"]
