#!/usr/bin/env bash
# Calibrate the GPU of this machine and measure step-time accuracy on held-out shapes; run from the repo root.
# Writes the profile into the shipped profiles (calibration/profiles -> timelaw/data/profiles) and the
# accuracy result into benchmarks/results/time_accuracy_cuda.{json,png}.
set -euo pipefail
cd "$(dirname "$0")/.."
python benchmarks/time_accuracy.py --device "${1:-cuda}" --save-profile
