"""The cost of DP-SGD: training throughput and peak memory of a private step beside the ordinary one.

Same config, same model, same synthetic batch of LJSpeech-like utterances (text and mel lengths drawn
around --text-len and --mel-len); train.batch_size utterances per step (DP's expected batch, split into
chunks of dp.max_physical_batch_size as in training). The ordinary step is the Trainer's (mean loss,
backward, global clipping, Adam); the private one is the DPTrainer's (Opacus per-sample gradients,
per-utterance clipping, noise, Adam). Each runs in its own process, so its peak memory is its own: CUDA's
max_memory_allocated on a GPU, the process's peak RSS on the CPU.

    python bench/bench_dp.py --config egs/ljspeech/conf/vp_dp.yaml --device cuda --steps 20
    python bench/bench_dp.py --config egs/ljspeech/conf/hold3_dp.yaml --config egs/ljspeech/conf/tiny.yaml
"""
from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
from pathlib import Path

import torch

from holdtts.config import config_to_dict, load_config

REPO = Path(__file__).resolve().parents[1]
MODES = ("non-private", "DP-SGD")


def synthetic_batch(batch_size: int, text_len: int, mel_len: int, n_vocab: int, n_mels: int, seed: int = 0):
    from holdtts.data.dataset import Batch

    g = torch.Generator().manual_seed(seed)
    token_lengths = torch.randint(text_len // 2, text_len + 1, (batch_size,), generator=g)
    frames_per_token = mel_len / text_len
    mel_lengths = (token_lengths * frames_per_token * (0.9 + 0.2 * torch.rand(batch_size, generator=g))).long()
    mel_lengths = torch.maximum(mel_lengths, token_lengths)
    tokens = torch.randint(1, n_vocab, (batch_size, int(token_lengths.max())), generator=g)
    tokens = tokens * (torch.arange(tokens.shape[1]) < token_lengths[:, None])
    mels = torch.randn(batch_size, n_mels, int(mel_lengths.max()), generator=g) - 5.0
    mels = mels * (torch.arange(mels.shape[2]) < mel_lengths[:, None, None])
    crop_starts = torch.zeros(batch_size, dtype=torch.long)
    return Batch([f"utt{i}" for i in range(batch_size)], tokens, token_lengths, mels, mel_lengths, crop_starts)


def measure(mode: str, cfg_dict: dict, device: str, steps: int, warmup: int, text_len: int, mel_len: int,
            queue) -> None:
    from holdtts.config import config_from_dict
    from holdtts.data.text.symbols import SymbolTable
    from holdtts.models.tts import GradTTS
    from holdtts.training.dp import make_private, per_sample_backward, split_batch

    cfg = config_from_dict(cfg_dict)
    dev = torch.device(device)
    torch.manual_seed(cfg.train.seed)
    n_vocab = SymbolTable().n_vocab
    model = GradTTS(cfg, n_vocab).to(dev).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr, betas=tuple(cfg.train.betas))
    batch = synthetic_batch(cfg.train.batch_size, text_len, mel_len, n_vocab, cfg.features.n_mels)
    weights = {"duration": cfg.loss.duration_weight, "prior": cfg.loss.prior_weight,
               "diffusion": cfg.loss.diffusion_weight}

    def losses(net, part):
        part = part.to(dev)
        terms = net(part.tokens, part.token_lengths, part.mels, part.mel_lengths, part.crop_starts)
        return sum(weights[k] * terms[k].float() for k in terms if weights[k])

    if mode == "DP-SGD":
        wrapped, optimizer = make_private(model, optimizer, noise_multiplier=1.0,
                                          max_grad_norm=cfg.dp.max_grad_norm,
                                          expected_batch_size=cfg.train.batch_size)
        chunks = split_batch(batch, cfg.dp.max_physical_batch_size)

        def step():
            optimizer.zero_grad(set_to_none=True)
            for index, chunk in enumerate(chunks):
                per_sample_backward(losses(wrapped, chunk).mean(), optimizer.params)
                if index < len(chunks) - 1:
                    optimizer.signal_skip_step(do_skip=True)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
            optimizer.step()
    else:
        def step():
            optimizer.zero_grad(set_to_none=True)
            losses(model, batch).mean().backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            optimizer.step()

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    seconds = (time.perf_counter() - start) / steps
    if dev.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(dev) / 2 ** 20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    queue.put((mode, cfg.train.batch_size / seconds, seconds, peak_mb,
               sum(p.numel() for p in model.parameters())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append", default=None,
                        help="system config(s), later ones override (default: egs/ljspeech/conf/vp_dp.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--text-len", type=int, default=150, help="longest text in tokens (LJSpeech: ~100-300)")
    parser.add_argument("--mel-len", type=int, default=600, help="frames of the longest text's mel")
    args = parser.parse_args()

    configs = args.config or [str(REPO / "egs" / "ljspeech" / "conf" / "vp_dp.yaml")]
    cfg = load_config(configs, args.overrides)
    context = multiprocessing.get_context("spawn")
    rows = []
    for mode in MODES:
        queue = context.Queue()
        proc = context.Process(target=measure, args=(mode, config_to_dict(cfg), args.device, args.steps,
                                                     args.warmup, args.text_len, args.mel_len, queue))
        proc.start()
        rows.append(queue.get())
        proc.join()
        if proc.exitcode:
            raise SystemExit(f"{mode} run failed (exit code {proc.exitcode})")

    import opacus

    where = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else \
        f"cpu, {torch.get_num_threads()} threads"
    memory = "peak allocated" if args.device.startswith("cuda") else "peak RSS"
    print(f"{cfg.name}: process {cfg.process.kind} order {cfg.process.order}, {rows[0][4]:,} parameters, batch "
          f"{cfg.train.batch_size} (DP chunks of {cfg.dp.max_physical_batch_size or cfg.train.batch_size}), "
          f"segment {cfg.data.segment_frames} frames, text <= {args.text_len} tokens; {where}; "
          f"torch {torch.__version__}, opacus {opacus.__version__}; {args.steps} timed steps")
    print(f"{'mode':<14}{'utts/s':>10}{'s/step':>10}{memory + ' (MiB)':>22}")
    for mode, utts_per_second, seconds, peak_mb, _ in rows:
        print(f"{mode:<14}{utts_per_second:>10.2f}{seconds:>10.3f}{peak_mb:>22.0f}")
    (_, plain_rate, _, plain_mb, _), (_, dp_rate, _, dp_mb, _) = rows
    print(f"DP-SGD: {plain_rate / dp_rate:.2f}x the time per utterance, {dp_mb / plain_mb:.2f}x the memory")


if __name__ == "__main__":
    main()
