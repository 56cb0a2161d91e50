"""Writes the synthetic training logs in this folder (run once; the files are committed).

Three Hugging Face Trainer runs of small Llama-style models (hf/run-*/: config.json + trainer_state.json),
a W&B run-history CSV export (wandb/history.csv) and a nanoGPT console log (nanogpt/train.log with its
config script), all trained at 32 sequences x 256 tokens = 8,192 tokens per optimizer step.

Losses follow a Chinchilla-form law L = 1.8 + 400 / N^0.34 + 120 / D^0.28 (capped at 10.5, near the
uniform guess ln 32000 = 10.37) plus 1% noise; step times are
6 N tokens / (1.2e14 flop/s, an A100 at ~40% MFU) with 3% noise. Neither uses timelaw: N is written out by hand for these shapes.
"""
import csv
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
TOKENS_PER_STEP = 32 * 256
RNG = np.random.default_rng(15)


def llama_params(d, layers, ff, vocab=32000, heads=None):  # untied, SwiGLU, RMSNorm, multi-head
    return 2 * vocab * d + layers * (4 * d * d + 3 * d * ff + 2 * d) + d


def loss(n, steps):
    d = steps * TOKENS_PER_STEP
    law = np.minimum(1.8 + 400 / n ** 0.34 + 120 / d ** 0.28, 10.5)
    return law * (1 + 0.01 * RNG.standard_normal(np.shape(steps)))


def step_seconds(n):
    return 6 * n * TOKENS_PER_STEP / 1.2e14  # an A100 at about 40% of its bf16 peak


def hf_config(d, layers, heads, ff):
    return {"architectures": ["LlamaForCausalLM"], "attention_bias": False, "hidden_act": "silu",
            "hidden_size": d, "intermediate_size": ff, "max_position_embeddings": 256, "model_type": "llama",
            "num_attention_heads": heads, "num_hidden_layers": layers, "num_key_value_heads": heads,
            "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": False,
            "torch_dtype": "float32", "transformers_version": "4.44.0", "vocab_size": 32000}


def trainer_state(n, max_steps=20000, logging_steps=500, eval_steps=5000):
    history, eval_seconds = [], 0.0
    for step in range(logging_steps, max_steps + 1, logging_steps):
        history.append({"epoch": round(step / max_steps, 4), "grad_norm": round(float(1 + RNG.random()), 4),
                        "learning_rate": 3e-4 * (1 - step / max_steps), "loss": round(float(loss(n, step)), 4),
                        "step": step})
        if step % eval_steps == 0:
            runtime = round(4.0 + RNG.random(), 3)
            eval_seconds += runtime
            history.append({"epoch": round(step / max_steps, 4), "eval_loss": round(float(loss(n, step)), 4),
                            "eval_runtime": runtime, "eval_samples_per_second": round(512 / runtime, 3),
                            "eval_steps_per_second": round(16 / runtime, 3), "step": step})
    train_runtime = round(max_steps * step_seconds(n) * (1 + 0.03 * RNG.standard_normal()) + eval_seconds, 4)
    history.append({"epoch": 1.0, "step": max_steps, "total_flos": 6.0 * n * max_steps * TOKENS_PER_STEP,
                    "train_loss": round(float(np.mean([h["loss"] for h in history if "loss" in h])), 4),
                    "train_runtime": train_runtime,
                    "train_samples_per_second": round(max_steps * 32 / train_runtime, 3),
                    "train_steps_per_second": round(max_steps / train_runtime, 3)})
    return {"best_metric": None, "best_model_checkpoint": None, "epoch": 1.0, "eval_steps": eval_steps,
            "global_step": max_steps, "is_hyper_param_search": False, "is_local_process_zero": True,
            "is_world_process_zero": True, "log_history": history, "logging_steps": logging_steps,
            "max_steps": max_steps, "num_input_tokens_seen": 0, "num_train_epochs": 1, "save_steps": 5000,
            "total_flos": 6.0 * n * max_steps * TOKENS_PER_STEP, "train_batch_size": 32, "trial_name": None,
            "trial_params": None}


def main():
    shapes = {"run-small": (128, 4, 2, 384), "run-medium": (256, 6, 4, 704), "run-large": (384, 8, 6, 1024)}
    for name, (d, layers, heads, ff) in shapes.items():
        folder = HERE / "hf" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(hf_config(d, layers, heads, ff), indent=2) + "\n")
        state = trainer_state(llama_params(d, layers, ff))
        (folder / "trainer_state.json").write_text(json.dumps(state, indent=2) + "\n")

    # W&B history export of the medium run: _step, _runtime (seconds since start), _timestamp, train/loss
    wandb = HERE / "wandb"
    wandb.mkdir(exist_ok=True)
    n = llama_params(256, 6, 704)
    with open(wandb / "history.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["_step", "_runtime", "_timestamp", "train/loss", "train/learning_rate", "eval/loss"])
        runtime = 9.0  # start-up before the first step
        for step in range(1, 401):
            runtime += step_seconds(n) * (3.0 if step <= 5 else 1 + 0.03 * RNG.standard_normal())
            if step % 20 == 0:
                writer.writerow([step, round(runtime, 4), 1.7e9 + round(runtime, 4),
                                 round(float(loss(n, step)), 4), 3e-4, ""])
            if step % 200 == 0:
                writer.writerow([step, round(runtime, 4), 1.7e9 + round(runtime, 4), "", "",
                                 round(float(loss(n, step)), 4)])

    # nanoGPT: config script and console output of train.py (eval every 100 iters, log every 10)
    nano = HERE / "nanogpt"
    nano.mkdir(exist_ok=True)
    (nano / "train_small.py").write_text(
        "# nanoGPT config: a small GPT trained at block_size 256\nout_dir = 'out-small'\neval_interval = 100\n"
        "log_interval = 10\nbatch_size = 32\nblock_size = 256\nn_layer = 4\nn_head = 4\nn_embd = 256\n"
        "dropout = 0.0\nbias = False\nmax_iters = 300\n")
    n_gpt = 50304 * 256 + 256 * 256 + 4 * (12 * 256 * 256 + 2 * 256) + 256  # tied, learned positions, no bias
    lines = ["tokens per iteration will be: 8,192", "Initializing a new model from scratch",
             "number of parameters: 3.15M", "compiling the model... (takes a ~minute)"]
    for it in range(0, 301, 10):
        if it % 100 == 0:
            lines.append(f"step {it}: train loss {float(loss(n_gpt, max(it, 1))):.4f}, "
                         f"val loss {float(loss(n_gpt, max(it, 1))):.4f}")
        dt = step_seconds(n_gpt) * (40.0 if it == 0 else (6.0 if it % 100 == 0 else 1 + 0.03 * RNG.standard_normal()))
        lines.append(f"iter {it}: loss {float(loss(n_gpt, max(it, 1))):.4f}, time {dt * 1000:.2f}ms, "
                     f"mfu {-100.0 if it < 5 else 12.5:.2f}%")
    (nano / "train.log").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
