#!/usr/bin/env bash
# Produces one Kafka message per input line (JSON lines, or any text) to a topic with kcat, for the
# tests and benchmarks. Exits non-zero unless every message was delivered (acks=all).
#
#   kafka_produce.sh BOOTSTRAP|CLUSTER_DIR TOPIC [FILE|-] [--keyed] [--partition N]
#
#   BOOTSTRAP    host:port,... ; or a folder made by `kafka_cluster.sh start` (reads DIR/bootstrap)
#   FILE         the messages, one a line; "-" or nothing = stdin. Empty lines are skipped.
#   --keyed      each line is KEY<TAB>VALUE (JSON never holds a raw tab, so the split is safe)
#   --partition  all messages to partition N (default: keyed lines by key hash, others spread)
#
# Prints "produced N messages to TOPIC" (N counted from the input) on success.
set -euo pipefail

die() {
        echo "kafka_produce: $*" >&2
        exit 1
}

(($# >= 2)) || {
        sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
        exit 2
}
target=$1
topic=$2
shift 2
file=-
kcat_args=()
while (($# > 0)); do
        case $1 in
        --keyed) kcat_args+=(-K '\t') ;;
        --partition)
                [[ ${2:-} =~ ^[0-9]+$ ]] || die "--partition wants a number"
                kcat_args+=(-p "$2")
                shift
                ;;
        -) file=- ;;
        -*) die "unknown option $1" ;;
        *) file=$1 ;;
        esac
        shift
done

command -v kcat >/dev/null || die "kcat not found (apt-get install kcat)"
if [[ -d $target ]]; then
        [[ -s $target/bootstrap ]] || die "$target/bootstrap missing: is the cluster started?"
        bootstrap=$(cat "$target/bootstrap")
else
        bootstrap=$target
fi

# kcat -l reads a file, so stdin goes through a temporary copy (it also gives the count).
tmp=
if [[ $file == - ]]; then
        tmp=$(mktemp "${TMPDIR:-/tmp}/kafka_produce.XXXXXX")
        trap 'rm -f "$tmp"' EXIT
        cat >"$tmp"
        file=$tmp
fi
[[ -r $file ]] || die "cannot read $file"
count=$(grep -c . "$file" || true)

# -l: one message per line, and kcat exits 1 if any delivery failed (checked here: a refused
# Produce and all brokers down both exit 1). Batching settings make 200k messages take ~1 s.
kcat -P -b "$bootstrap" -t "$topic" -l "${kcat_args[@]}" \
        -X acks=all -X linger.ms=5 -X batch.num.messages=10000 -X message.timeout.ms=30000 \
        -X sticky.partitioning.linger.ms=0 \
        "$file" || die "producing $file to topic $topic at $bootstrap failed (see kcat's messages above)"
echo "produced $count messages to $topic"
