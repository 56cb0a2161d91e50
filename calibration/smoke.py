"""Smoke test of the whole calibration path on one device, in seconds: exits non-zero if any part fails.

Imports timelaw (and pydantic) as the session will, times a CUDA-graph matrix product, runs a tiny
calibration end to end (warm-up, microbenchmarks, reference-model steps in every precision the device
calibrates, recomputation and accumulation included, bounded fit), saves and reloads the profile, and
predicts one step from it. Run by calibration/gpu_session.sh under a 60-second timeout.

    PYTHONPATH=. python3 calibration/smoke.py --device cuda
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    began = time.perf_counter()

    def say(text):
        print(f"smoke [{time.perf_counter() - began:5.1f}s] {text}", flush=True)

    import pydantic
    import torch

    import timelaw
    from timelaw.config import TrainSetup, TransformerConfig
    from timelaw.devices.calibrate import CalibrationPlan, calibrate
    from timelaw.devices.microbench import Timer
    from timelaw.reference import time_training_steps

    say(f"timelaw {timelaw.__version__} from {Path(timelaw.__file__).parent}, pydantic {pydantic.VERSION}, "
        f"torch {torch.__version__}, device {args.device}")
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            say("FAIL: torch sees no CUDA GPU")
            return 1
        timer = Timer(args.device, min_seconds=0.005, method="graph")
        a = torch.randn(256, 256, device=args.device, dtype=torch.bfloat16)
        out = torch.empty_like(a)
        seconds = timer(lambda: torch.mm(a, a, out=out))
        say(f"256^3 bf16 product: {seconds * 1e6:.2f} us as a CUDA graph "
            f"({timer.counts['graph_failures']} capture failures)")
    precisions = ["fp32"] if args.device == "cpu" else ["bf16", "fp32"]
    cfg = TransformerConfig(d_model=128, n_layers=2, n_heads=2, vocab_size=512, seq_len=64)
    for precision in precisions:
        for recompute, accumulate in (("none", 1), ("full", 2)):
            setup = TrainSetup(micro_batch_size=2, precision=precision, activation_checkpointing=recompute,
                               global_batch_size=2 * accumulate)
            timing = time_training_steps(cfg, setup, device=args.device, steps=2, warmup_steps=1)
            say(f"reference step {precision} recompute={recompute} accumulate={accumulate}: "
                f"{timing.seconds * 1e3:.2f} ms")
    plan = CalibrationPlan(matmul_sizes=(128, 512), n_fit=12, step_time_scale=0.02, timed_steps=2,
                           warmup_steps=1, min_seconds=0.002, repeats=2, passes=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "smoke.json"
        profile = calibrate(device=args.device, plan=plan, out=path, progress=False,
                            threads=1 if args.device == "cpu" else None, max_holdout_mape_percent=None,
                            warm_up_seconds=2.0)
        again = timelaw.load_profile(path)
    predicted = timelaw.predict_step_time(cfg, TrainSetup(micro_batch_size=2, precision=precisions[0]),
                                          profile=again)
    say(f"tiny calibration: {len(profile.measurements['fit_steps'])} fit steps, roofline held-out MAPE "
        f"{profile.validation['roofline']['holdout_mape_percent']:.1f}%, reloaded; predicts {predicted * 1e3:.2f} ms")
    say("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
