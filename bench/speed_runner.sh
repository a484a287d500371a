#!/usr/bin/env bash
# The env-pool figures of BENCHMARKS.md ("Env pool (speed runner)"), in one run.
# Usage: flock /tmp/gristmill-bench.lock bench/speed_runner.sh [seconds] [repeats]
set -euo pipefail
cd "$(dirname "$0")/.."
S=${1:-3}
R=${2:-3}
OUT=bench/results
mkdir -p $OUT
SPEED=".venv/bin/python -m gristmill.apps.speed_runner --no-progress --seconds $S --repeats $R"
uptime
# 1. the headline tasks, every system
$SPEED --tasks Pong-v5,Ant-v5 --num-envs 16,32,48,64 --async-batches 2,3 --out $OUT/speed_main
# 2. with a competing busy loop on one core
$SPEED --tasks Pong-v5,Ant-v5 --num-envs 16,32,48,64 --async-batches 2,3 --load 1 \
  --systems raw,envpool-sync,envpool-async,gristmill-sync,gristmill-async --out $OUT/speed_load
# 3. Python envs against gymnasium's AsyncVectorEnv
$SPEED --tasks Pong-v5 --systems raw --python-env --out $OUT/speed_python
# 4. the other default tasks: pools and the raw loop
$SPEED --tasks Breakout-v5,HalfCheetah-v5,Humanoid-v5 --num-envs 16,32,48 --async-batches 2,3 \
  --systems raw,envpool-sync,envpool-async,gristmill-sync,gristmill-async --out $OUT/speed_more
uptime
