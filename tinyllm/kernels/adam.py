"""The Adam / AdamW update as a pure, in-place function: reference, then numba kernel.

Adam (Kingma & Ba 2015) keeps two running averages per parameter — of the gradient (m, the
first moment) and of its square (v, the second moment) — and steps along m scaled by 1/√v:

    m ← β₁ m + (1 − β₁) g                    v ← β₂ v + (1 − β₂) g²
    m̂ = m / (1 − β₁ᵗ)                        v̂ = v / (1 − β₂ᵗ)       (bias correction)
    θ ← θ − lr · m̂ / (√v̂ + ε)

Weight decay comes in two kinds: Adam's L2 penalty adds λθ to the gradient (g ← g + λθ);
AdamW (Loshchilov & Hutter 2019) *decouples* it and shrinks the weights directly,
θ ← θ(1 − lr·λ), before the Adam step.

The arithmetic is ordered exactly as torch.optim.Adam's single-tensor path does it, so a
step-by-step comparison agrees to float rounding:

    m += (1 − β₁)(g − m);   v = β₂ v + (1 − β₂) g²
    θ −= (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)

This function is the one update used everywhere: on a whole parameter, on one ZeRO shard, and
on the host after CPU offload — only the arrays it is given differ. Arrays are updated in place.

Signature: adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps,
                     weight_decay, decoupled) -> None      (1-D contiguous arrays for numba)
"""

import math

import numpy as np

from tinyllm.kernels.jit import jit, over_range

# ---- reference (plain NumPy) ----------------------------------------------------------------


def adam_step_reference(
    param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, decoupled
):
    if weight_decay != 0.0:
        if decoupled:
            param *= 1.0 - lr * weight_decay
        else:
            grad = grad + weight_decay * param
    exp_avg += (1.0 - beta1) * (grad - exp_avg)
    exp_avg_sq *= beta2
    exp_avg_sq += (1.0 - beta2) * grad * grad
    step_size = lr / (1.0 - beta1**step)
    bc2_sqrt = math.sqrt(1.0 - beta2**step)
    denom = np.sqrt(exp_avg_sq) / bc2_sqrt + eps
    param -= step_size * exp_avg / denom


# ---- numba kernel (same signature; one fused pass over the elements) -------------------------
# The arithmetic runs in the parameters' dtype, in the reference's order (NumPy casts the Python
# scalars to float32 as well); the scalars that depend only on the step are computed once, in
# float64, then cast. No fast-math here: nothing to reassociate (no sums), and without fused
# multiply-adds every rounding is the reference's, so the two agree to the last bit.


@jit(fastmath=False)
def _adam_step(
    param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, decoupled, lo, hi
):
    t = param.dtype.type
    step_size = t(lr / (1.0 - beta1**step))
    bc2_sqrt = t(math.sqrt(1.0 - beta2**step))
    shrink = t(1.0 - lr * weight_decay)
    one_minus_b1, b2, one_minus_b2 = t(1.0 - beta1), t(beta2), t(1.0 - beta2)
    wd, eps_ = t(weight_decay), t(eps)
    ps, gs, ms, vs = param[lo:hi], grad[lo:hi], exp_avg[lo:hi], exp_avg_sq[lo:hi]
    for i in range(ps.size):  # (a loop from 0 over views vectorizes; one over lo…hi did not)
        p = ps[i]
        g = gs[i]
        if weight_decay != 0.0:
            if decoupled:
                p = p * shrink
            else:
                g = g + wd * p
        m = ms[i] + one_minus_b1 * (g - ms[i])
        v = b2 * vs[i] + one_minus_b2 * g * g
        ms[i] = m
        vs[i] = v
        ps[i] = p - step_size * m / (np.sqrt(v) / bc2_sqrt + eps_)


def adam_step_numba(
    param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, decoupled
):
    for name, a in (("param", param), ("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)):
        if not a.flags.c_contiguous:
            raise ValueError(f"adam_step: {name} must be C-contiguous (it is updated in place)")
    g = np.ascontiguousarray(grad, dtype=param.dtype).reshape(-1)
    over_range(
        _adam_step,
        param.size,
        param.reshape(-1),
        g,
        exp_avg.reshape(-1),
        exp_avg_sq.reshape(-1),
        float(step),
        float(lr),
        float(beta1),
        float(beta2),
        float(eps),
        float(weight_decay),
        bool(decoupled),
    )
