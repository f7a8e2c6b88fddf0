"""The diffusion math, in one place: processes (order 1 and HOLD++ of any order), the loss, the samplers.

    from holdtts.diffusion import make_process, diffusion_loss, get_sampler
    process = make_process("hold", order=3, horizon=5.0)
    loss = diffusion_loss(process, eps_fn, q0, mask).mean()
    u0 = get_sampler("splitting")(process, eps_fn, process.prior_sample(q0.shape), steps=100)
"""
from __future__ import annotations

from holdtts.diffusion.losses import diffusion_loss, noised_state, sample_times, score_weight, state_mask
from holdtts.diffusion.processes import (
    PROCESSES,
    HoldProcess,
    Process,
    VPProcess,
    critical_damping,
    hold_drift_matrix,
    make_process,
    process_from_config,
    process_from_dict,
)
from holdtts.diffusion.samplers import (
    SAMPLERS,
    euler_maruyama,
    get_sampler,
    ode_euler,
    ode_heun,
    ode_step,
    probability_flow_drift,
    register_sampler,
    splitting,
)

__all__ = [
    "PROCESSES", "SAMPLERS", "HoldProcess", "Process", "VPProcess", "critical_damping", "diffusion_loss",
    "euler_maruyama", "get_sampler", "hold_drift_matrix", "make_process", "noised_state", "ode_euler",
    "ode_heun", "ode_step", "probability_flow_drift", "process_from_config", "process_from_dict",
    "register_sampler", "sample_times", "score_weight", "splitting", "state_mask",
]
