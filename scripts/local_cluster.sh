#!/usr/bin/env bash
# A Spark standalone cluster on this machine, for trying cluster runs without a cluster:
# starts a master and two workers on 127.0.0.1 from the Spark inside the pyspark package,
# runs `kedro run --env local_cluster` (the offline `base` experiment) on them, and stops them
# by PID, also when the run fails or is interrupted.
#
#   scripts/local_cluster.sh                      # the base experiment, from the project root
#   scripts/local_cluster.sh --pipelines ingestion  # extra arguments go to `kedro run`
#
# Settings (environment): PROJECT_DIR (default: this project), KEDRO_ENV (local_cluster),
# WORKERS (2), WORKER_CORES (1), WORKER_MEMORY (2g), CLUSTER_DIR (<project>/data/09_cluster:
# worker and scratch directories, daemon logs), PYTHON (<project>/.venv/bin/python),
# READY_TIMEOUT_S (120). Ports are picked free on 127.0.0.1.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT_DIR="$(cd "${PROJECT_DIR:-$SCRIPT_DIR/..}" && pwd)"
PYTHON="${PYTHON:-$SCRIPT_DIR/../.venv/bin/python}"
KEDRO_ENV="${KEDRO_ENV:-local_cluster}"
WORKERS="${WORKERS:-2}"
WORKER_CORES="${WORKER_CORES:-1}"
WORKER_MEMORY="${WORKER_MEMORY:-2g}"
CLUSTER_DIR="${CLUSTER_DIR:-$PROJECT_DIR/data/09_cluster}"
READY_TIMEOUT_S="${READY_TIMEOUT_S:-120}"
HOST=127.0.0.1

log() { echo "local_cluster: $*" >&2; }

SPARK_HOME="$("$PYTHON" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
export SPARK_HOME SPARK_LOCAL_IP="$HOST"
free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
MASTER_PORT="$(free_port)"
MASTER_UI_PORT="$(free_port)"
MASTER_URL="spark://$HOST:$MASTER_PORT"

mkdir -p "$CLUSTER_DIR/logs"
PIDS=()
stop_cluster() {
    local status=$?
    # Workers first, then the master; each by the PID this script started.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill "${PIDS[i]}" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    [ "${#PIDS[@]}" -eq 0 ] || log "stopped PIDs ${PIDS[*]}"
    exit "$status"
}
trap stop_cluster EXIT
trap 'exit 130' INT TERM

# spark-class execs the JVM, so $! is the daemon's own PID.
"$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master \
    --host "$HOST" --port "$MASTER_PORT" --webui-port "$MASTER_UI_PORT" \
    >"$CLUSTER_DIR/logs/master.log" 2>&1 &
PIDS+=("$!")
log "master $MASTER_URL (pid $!, log $CLUSTER_DIR/logs/master.log)"

for ((i = 1; i <= WORKERS; i++)); do
    worker_dir="$CLUSTER_DIR/worker-$i"
    mkdir -p "$worker_dir/work" "$worker_dir/local"
    # Executors keep their stdout/stderr in <work>/<app>/<executor id>/; shuffle and spill
    # files go to <local>: both under the project's data folder, not inside the venv.
    SPARK_WORKER_DIR="$worker_dir/work" SPARK_LOCAL_DIRS="$worker_dir/local" \
        "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker \
        --host "$HOST" --cores "$WORKER_CORES" --memory "$WORKER_MEMORY" \
        --work-dir "$worker_dir/work" --webui-port "$(free_port)" "$MASTER_URL" \
        >"$CLUSTER_DIR/logs/worker-$i.log" 2>&1 &
    PIDS+=("$!")
    log "worker $i (pid $!, log $CLUSTER_DIR/logs/worker-$i.log)"
done

# Ready when the master reports every worker alive.
"$PYTHON" - "$MASTER_UI_PORT" "$WORKERS" "$READY_TIMEOUT_S" <<'EOF'
import json, sys, time, urllib.request

port, workers, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
deadline = time.monotonic() + timeout
alive = 0
while time.monotonic() < deadline:
    try:
        with opener.open(f"http://127.0.0.1:{port}/json/", timeout=5) as response:
            alive = int(json.load(response).get("aliveworkers", 0))
    except OSError:
        alive = 0
    if alive >= workers:
        sys.exit(0)
    time.sleep(1)
sys.exit(f"local_cluster: {alive}/{workers} workers registered after {timeout:.0f} s")
EOF
log "$WORKERS workers registered"

cd "$PROJECT_DIR"
mkdir -p "$CLUSTER_DIR/driver-local"
SPARK_LOCAL_DIRS="$CLUSTER_DIR/driver-local" SPARK_MASTER_URL="$MASTER_URL" \
    "$PYTHON" -m kedro run --env "$KEDRO_ENV" "$@"
