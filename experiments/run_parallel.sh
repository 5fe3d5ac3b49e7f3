#!/usr/bin/env bash
# Run several experiments at once on one GPU (one small model leaves an H100 mostly idle: its
# steps are bound by Python and kernel launches), then pack what they wrote into $OUT/runs.tgz.
#   LIMIT=560 OUT=/path experiments/run_parallel.sh experiments/a.json experiments/b.json ...
set -u
out=${OUT:-.}
limit=${LIMIT:-560}
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
mkdir -p runs
# fill the compile caches once (not needed where LOOPLM_KERNELS=reference: no kernel compiles)
if [ "${LOOPLM_KERNELS:-}" != reference ]; then
  python3 -m app.cli verify --only kernel_compile > runs/warmup.log 2>&1
fi
for f in "$@"; do
  name=$(basename "$f" .json)
  mkdir -p "runs/$name"
  timeout "$limit" python3 -m app.cli experiment run "$f" --out runs > "runs/$name/log.txt" 2>&1 &
done
wait
tar czf "$out/runs.tgz" runs/*/*.json runs/*/trace.jsonl runs/*/log.txt runs/*/ckpt_bf16.pt 2>/dev/null
for f in "$@"; do
  name=$(basename "$f" .json)
  echo "== $name: $(tail -c 300 "runs/$name/log.txt" | tr '\n' ' ')"
done
