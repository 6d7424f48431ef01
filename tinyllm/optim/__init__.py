"""tinyllm.optim — optimizers, learning-rate schedules, gradient clipping (torch.optim names).

    optimizer.py     Optimizer, SGD, Adam, AdamW, param_groups_for_weight_decay
    lr_scheduler.py  warmup + cosine / linear schedules, LambdaLR
    clip.py          clip_grad_norm_ (global norm; implemented in tinyllm/nn/utils.py)
The Adam update itself is the pure function in tinyllm/kernels/adam.py.
"""

from tinyllm.optim.clip import clip_coefficient, clip_grad_norm_, total_norm
from tinyllm.optim.lr_scheduler import (
    CosineWithWarmup,
    LambdaLR,
    LinearWithWarmup,
    warmup_cosine,
    warmup_linear,
)
from tinyllm.optim.optimizer import SGD, Adam, AdamW, Optimizer, param_groups_for_weight_decay
