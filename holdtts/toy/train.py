"""Training a toy model: Adam on the eps-matching loss of holdtts.diffusion, with an EMA of the weights."""
from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from holdtts.diffusion import diffusion_loss, sample_times
from holdtts.toy.model import ToyDiffusionModel


def train_toy_model(model: ToyDiffusionModel, members: torch.Tensor, steps: int, batch_size: int, lr: float,
                    seed: int, ema_decay: float = 0.999) -> dict:
    """Train in place for `steps` Adam steps; returns {"loss_first", "loss_last", "losses"} (the mean loss
    over each tenth of training). Batches are cut from shuffled epochs of the members laid end to end (with
    batch_size = k * members, every member k times a step). Times are antithetic draws on [t_min, T]; the
    loss is Grad-TTS's unweighted eps loss. The EMA weights (decay `ema_decay`; 0 keeps the raw weights) are
    copied into the model at the end: they are the ones attacked and sampled, as for the speech systems.
    """
    generator = torch.Generator().manual_seed(seed)
    members = members.unsqueeze(-1)  # [M, 2, 1]
    count = members.shape[0]
    batch = batch_size
    # fused: one kernel for all parameter tensors (a tiny MLP's step is bound by per-op overhead: 0.4 ms
    # against 1.2-2.5 ms for the default on these CPUs)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    ema = AveragedModel(model.net, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=False) \
        if ema_decay > 0 else None
    mu, mask = model.conditioning(batch)
    eps_fn = model.eps_fn(mu, mask)
    stream = torch.empty(0, dtype=torch.long)
    chunk = max(1, steps // 10)
    sums, totals = [], []
    model.train()
    for step in range(steps):
        if len(stream) < batch:  # shuffled epochs, end to end: a batch of k * M holds each member k times
            epochs = -(-(batch - len(stream)) // count)
            fresh = torch.rand(epochs, count, generator=generator).argsort(dim=1).flatten()
            stream = torch.cat([stream, fresh])
        q0, stream = members[stream[:batch]], stream[batch:]
        t = sample_times(model.process, batch, generator=generator, method="antithetic")
        loss = diffusion_loss(model.process, eps_fn, q0, t=t, generator=generator).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.update_parameters(model.net)
        if step % chunk == 0:
            sums.append(0.0)
            totals.append(0)
        sums[-1] += loss.item()
        totals[-1] += 1
    if ema is not None:
        model.net.load_state_dict(ema.module.state_dict())
    model.eval()
    losses = [s / n for s, n in zip(sums, totals)]
    return {"loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
            "losses": [round(v, 5) for v in losses]}
