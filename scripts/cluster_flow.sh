#!/usr/bin/env bash
# The documented cluster flow, end to end: start an AWS cluster from cluster.yaml, submit an
# experiment as a Ray job, watch it, fetch its results, tear the cluster down.
#   scripts/cluster_flow.sh EXPERIMENT.yaml s3://BUCKET/hpt
# Needs AWS credentials for `ray up` and S3 access on the nodes (see cluster.yaml).
set -euo pipefail
experiment=${1:?usage: cluster_flow.sh EXPERIMENT.yaml STORAGE_URI}
storage=${2:?usage: cluster_flow.sh EXPERIMENT.yaml STORAGE_URI}
config=${CLUSTER_CONFIG:-cluster.yaml}

ray up -y "$config"
# Forward the head's dashboard (the Jobs API) to localhost:8265 while the job runs.
ray dashboard "$config" &
forward=$!
trap 'kill "$forward" 2>/dev/null || true; ray down -y "$config"' EXIT
sleep 5

# Streams the job's logs and exits with its status (0 when it SUCCEEDED).
hpt-ray submit "$experiment" --address http://127.0.0.1:8265 --storage-path "$storage"

name=$(python -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['name'])" "$experiment")
hpt-ray show "$storage/$name"
mkdir -p hpt_ray_results/"$name"
python - "$storage/$name" hpt_ray_results/"$name" <<'PY'
import sys
import pyarrow.fs
fs, base = pyarrow.fs.FileSystem.from_uri(sys.argv[1])
for name in ("results.parquet", "experiment.json"):
    with fs.open_input_stream(f"{base}/{name}") as src, open(f"{sys.argv[2]}/{name}", "wb") as out:
        out.write(src.read())
print(f"results fetched to {sys.argv[2]}")
PY
