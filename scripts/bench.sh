#!/usr/bin/env bash
# Responder benchmark (docs/BENCHMARK.md): kernel echo replies vs troll's
# Time Exceeded and final-hop replies, CPU per probe and memory, from one
# run in a private two-namespace lab. Run as root:
#
#   scripts/bench.sh                 # default ladder, 3 s per step
#   BENCH_RATES="50000 100000 0" BENCH_SECONDS=5 scripts/bench.sh
#
# Environment:
#   BENCH_RATES    offered rates (packets/s) to climb; 0 = as fast as the
#                  generator goes (default: 10000 25000 50000 100000
#                  200000 400000 0)
#   BENCH_SECONDS  seconds per step (default 3)
#   BENCH_TE_KIND  probe for (b): icmp (default, the same echo requests as
#                  the reference with TTL 1) or udp
#   BENCH_VETH     inline (default): a plain veth pair, where the receiving
#                  side's stack runs inside the sender's system call, so
#                  the responder's CPU time includes the client's work of
#                  taking its replies in; threaded: GRO and threaded NAPI on
#                  both ends (needs ethtool), so each side's receive work
#                  runs in its own kernel thread, as on separate machines
#   BENCH_SERVE_FLAGS  extra flags for `troll serve`, e.g. "--rx queue" or
#                  "--coalesce 0", to compare its read and send paths
#   BENCH_DELAY_MS  after the undelayed ladders, serve again with
#                  `--hop-delay BENCH_DELAY_MS` and repeat (b) and (c), so
#                  replies go through the delay queue (default 1; 0 skips)
#   BENCH_NO_BUILD=1  use the binaries already built
#   CARGO_TARGET_DIR  where cargo builds (default target/)
#
# Every packet stays inside the two namespaces this script creates; they
# are removed on exit, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "bench.sh: needs root (network namespaces, raw sockets)" >&2
    exit 1
fi
for tool in ip python3 $([ "${BENCH_VETH:-inline}" = threaded ] && echo ethtool); do
    command -v "$tool" >/dev/null || {
        echo "bench.sh: missing $tool" >&2
        exit 1
    }
done

RATES="${BENCH_RATES:-10000 25000 50000 100000 200000 400000 0}"
SECONDS_PER_STEP="${BENCH_SECONDS:-3}"
TE_KIND="${BENCH_TE_KIND:-icmp}"
VETH_MODE="${BENCH_VETH:-inline}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

if [ -z "${BENCH_NO_BUILD:-}" ]; then
    cargo build --release --locked --bin troll --bin troll-loadgen >&2
fi
TROLL="$TARGET_DIR/release/troll"
LOADGEN="$TARGET_DIR/release/troll-loadgen"
TROLL="$(realpath "$TROLL")"
LOADGEN="$(realpath "$LOADGEN")"

# The lab: names unique to this run.
CLIENT="trlbench-$$-client"
SERVER="trlbench-$$-server"
CLIENT_ADDR=198.19.254.1
SERVER_ADDR=198.19.254.2
TARGET=198.19.0.1
HOPS=198.18.0.1,198.18.0.2,198.18.0.3
WORK="$(mktemp -d /tmp/trlbench.XXXXXX)"
SERVE_PID=""

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "$SERVE_PID" ] && kill -0 "$SERVE_PID" 2>/dev/null; then
        # TERM first: troll removes its rules and saves its counters.
        kill -TERM "$SERVE_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$SERVE_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVE_PID" 2>/dev/null || true
        wait "$SERVE_PID" 2>/dev/null || true
    fi
    ip netns del "$CLIENT" 2>/dev/null || true
    ip netns del "$SERVER" 2>/dev/null || true
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ip netns add "$CLIENT"
ip netns add "$SERVER"
ip -n "$CLIENT" link add "trbc$$" type veth peer name "trbs$$" netns "$SERVER"
ip -n "$CLIENT" link set "trbc$$" name eth0
ip -n "$SERVER" link set "trbs$$" name eth0
for pair in "$CLIENT:$CLIENT_ADDR" "$SERVER:$SERVER_ADDR"; do
    ns="${pair%%:*}"
    addr="${pair#*:}"
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
done
ip -n "$SERVER" addr add "$TARGET/32" dev eth0
if [ "$VETH_MODE" = threaded ]; then
    # Like a real NIC: each side's receive work runs in that side's own
    # (NAPI) kernel thread, not inline in the sender's system call.
    for ns in "$CLIENT" "$SERVER"; do
        ip netns exec "$ns" ethtool -K eth0 gro on tso off >/dev/null
        ip netns exec "$ns" sh -c 'echo 1 >/sys/class/net/eth0/threaded'
    done
fi
ip -n "$CLIENT" route add default via "$SERVER_ADDR"
ip -n "$SERVER" route add default via "$CLIENT_ADDR"
# Resolve the neighbours once, so the first step does not measure ARP.
ip netns exec "$CLIENT" ping -c 1 -W 2 "$SERVER_ADDR" >/dev/null

loadgen() {
    # loadgen KIND TTL RATE DEST -> one JSON line
    ip netns exec "$CLIENT" "$LOADGEN" --kind "$1" --ttl "$2" --rate "$3" \
        --target "$4" --duration "$SECONDS_PER_STEP" --wait 0.5 | tail -n 1
}

# CPU ticks of a process, "utime stime": fields 14 and 15 of
# /proc/PID/stat, counted after the ")" that ends the command name.
cpu_ticks() {
    awk '{ sub(/.*\) /, ""); print $12, $13 }' "/proc/$1/stat"
}

counter() {
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], 0))' \
        "$WORK/state/default.counters.json" "$1" 2>/dev/null || echo 0
}

RESULTS="$WORK/results.jsonl"
: >"$RESULTS"

# ladder NAME KIND TTL DEST: one step per rate; records the loadgen's line
# plus, while troll runs, its CPU ticks and probes received for the step.
ladder() {
    local name="$1" kind="$2" ttl="$3" dest="$4"
    for rate in $RATES; do
        local t0 r0 line t1 r1
        t0="0 0" r0=0 t1="0 0" r1=0
        if [ -n "$SERVE_PID" ]; then
            t0=$(cpu_ticks "$SERVE_PID")
            r0=$(counter received)
        fi
        line=$(loadgen "$kind" "$ttl" "$rate" "$dest")
        if [ -n "$SERVE_PID" ]; then
            t1=$(cpu_ticks "$SERVE_PID")
            # The counters file is rewritten about once a second.
            sleep 1.2
            r1=$(counter received)
        fi
        python3 - "$name" "$rate" "$line" "$t0" "$t1" "$((r1 - r0))" >>"$RESULTS" <<'EOF'
import json, sys
name, rate, line, t0, t1, received = sys.argv[1:]
(u0, s0), (u1, s1) = ([int(x) for x in t.split()] for t in (t0, t1))
step = json.loads(line)
step.update(step=name, rate=int(rate), cpu_ticks=(u1 - u0) + (s1 - s0),
            user_ticks=u1 - u0, received=int(received))
print(json.dumps(step))
EOF
        python3 - "$line" "$name" "$rate" <<'EOF' >&2
import json, sys
s = json.loads(sys.argv[1])
print(f"  {sys.argv[2]:<11} offered {int(sys.argv[3]) or 'max':>7}/s: sent {s['sent_pps']:>10.0f}/s, "
      f"answered {s['answered_pps']:>10.0f}/s ({s['answer_ratio']:.3f})")
EOF
    done
}

echo "bench.sh: $(nproc) cores, $(uname -r), ${SECONDS_PER_STEP}s per step, veth ${VETH_MODE}, serve flags: ${BENCH_SERVE_FLAGS:-none}" >&2
echo "(a) kernel echo replies from $SERVER_ADDR (no troll running)" >&2
ladder kernel icmp 64 "$SERVER_ADDR"

mkdir -p "$WORK/state"
# start_serve EXTRA_FLAGS...: troll serve in the server namespace, ready.
start_serve() {
    TROLL_STATE_DIR="$WORK/state" XDG_CONFIG_HOME="$WORK" RUST_LOG=info \
        ip netns exec "$SERVER" "$TROLL" serve --target "$TARGET" --hops "$HOPS" \
        --interface eth0 --rate 0 ${BENCH_SERVE_FLAGS:-} "$@" 2>"$WORK/serve.log" &
    SERVE_PID=$!
    for _ in $(seq 100); do
        grep -q "ready: answering probes" "$WORK/serve.log" && break
        kill -0 "$SERVE_PID" 2>/dev/null || {
            cat "$WORK/serve.log" >&2
            exit 1
        }
        sleep 0.1
    done
    grep -q "ready: answering probes" "$WORK/serve.log" || {
        cat "$WORK/serve.log" >&2
        exit 1
    }
}
stop_serve() {
    kill -TERM "$SERVE_PID"
    wait "$SERVE_PID" 2>/dev/null || true
    SERVE_PID=""
    rm -f "$WORK/state/default.counters.json"
}
start_serve

echo "(b) troll Time Exceeded ($TE_KIND, TTL 1 -> hop 1 of 3)" >&2
ladder troll_te "$TE_KIND" 1 "$TARGET"
echo "(c) troll final hop (UDP, TTL 64 -> closed port on $TARGET)" >&2
ladder troll_final udp 64 "$TARGET"
echo "    kernel echo again, with troll serving (its packet socket sees every packet)" >&2
ladder kernel_serving icmp 64 "$SERVER_ADDR"

STATUS="$(cat "/proc/$SERVE_PID/status")"
CLK_TCK="$(getconf CLK_TCK)"
DELAY_MS="${BENCH_DELAY_MS:-1}"
STATUS_DELAY=""
if [ "$DELAY_MS" != 0 ]; then
    stop_serve
    start_serve --hop-delay "$DELAY_MS"
    echo "(g) the same with --hop-delay $DELAY_MS: every reply waits in the delay queue" >&2
    ladder troll_te_delay "$TE_KIND" 1 "$TARGET"
    ladder troll_final_delay udp 64 "$TARGET"
    STATUS_DELAY="$(cat "/proc/$SERVE_PID/status")"
    grep -o "delayed=[0-9]* delay_queue_full=[0-9]*" "$WORK/serve.log" | tail -n 1 >&2 || true
fi

BENCH_VETH="$VETH_MODE" BENCH_DELAY_MS="$DELAY_MS" python3 - "$RESULTS" "$CLK_TCK" "$STATUS" "$STATUS_DELAY" <<'EOF'
import json, os, sys

steps = [json.loads(l) for l in open(sys.argv[1])]
clk_tck = int(sys.argv[2])
def parse_status(text):
    return dict(
        (k.strip(), v.strip()) for k, v in
        (line.split(":", 1) for line in text.splitlines() if ":" in line)
    )
status = parse_status(sys.argv[3])
status_delay = parse_status(sys.argv[4])

def of(name):
    return [s for s in steps if s["step"] == name]

def best(name):
    return max(of(name), key=lambda s: s["answered_pps"])

def at_rate(name, rate):
    return next(s for s in of(name) if s["rate"] == rate)

kernel = of("kernel")
# The kernel saturates at the first offered rate where it answers less
# than 95% of what was sent, or where the generator could not offer more.
sat = next(
    (s for s in kernel
     if s["answer_ratio"] < 0.95 or (s["rate"] and s["sent_pps"] < 0.95 * s["rate"])),
    kernel[-1],
)
a, b, c = best("kernel"), best("troll_te"), best("troll_final")

def cpu_us(names):
    ticks = sum(s["cpu_ticks"] for n in names for s in of(n))
    user = sum(s["user_ticks"] for n in names for s in of(n))
    received = sum(s["received"] for n in names for s in of(n))
    per = (lambda t: 1e6 * t / clk_tck / received) if received else (lambda t: float("nan"))
    return per(ticks), ticks, received, per(user), per(ticks - user)

cpu_te, cpu_final, cpu_all = cpu_us(["troll_te"]), cpu_us(["troll_final"]), \
    cpu_us(["troll_te", "troll_final"])
sat_rate = sat["rate"]
ratio = lambda x, y: x / y if y else float("nan")
b_sat = at_rate("troll_te", sat_rate)
c_sat = at_rate("troll_final", sat_rate)
k_sat = sat
rate_name = f"{sat_rate}/s" if sat_rate else "max"

print()
print(f"(a) kernel echo replies/s (reference): {a['answered_pps']:.0f} "
      f"(max over the ladder; saturates at offered {rate_name}, where it answered "
      f"{k_sat['answered_pps']:.0f}/s of {k_sat['sent_pps']:.0f}/s sent)")
print(f"(b) troll Time Exceeded/s: {b['answered_pps']:.0f} (max; at offered {rate_name}: "
      f"{b_sat['answered_pps']:.0f}/s of {b_sat['sent_pps']:.0f}/s sent)")
print(f"(c) troll final-hop port unreachable/s: {c['answered_pps']:.0f} (max; at offered "
      f"{rate_name}: {c_sat['answered_pps']:.0f}/s of {c_sat['sent_pps']:.0f}/s sent)")
print(f"(d) responder CPU per probe: {cpu_all[0]:.2f} us overall "
      f"({cpu_all[1]} ticks of 1/{clk_tck} s for {cpu_all[2]} probes read; "
      f"user {cpu_all[3]:.2f} us, system {cpu_all[4]:.2f} us); "
      f"time exceeded {cpu_te[0]:.2f} us, final hop {cpu_final[0]:.2f} us")
def step_us(s):
    return 1e6 * s["cpu_ticks"] / clk_tck / s["received"] if s["received"] else float("nan")
print("    CPU per probe by offered rate (time exceeded / final hop): " + ", ".join(
    f"{s['rate'] or 'max'}/s {step_us(s):.2f}/{step_us(f):.2f} us"
    for s, f in zip(of("troll_te"), of("troll_final"))))
print(f"    at the kernel's saturation rate ({rate_name}): time exceeded {step_us(b_sat):.2f} us, "
      f"final hop {step_us(c_sat):.2f} us")
print(f"(e) responder memory: VmRSS {status.get('VmRSS', '?')}, VmHWM {status.get('VmHWM', '?')}"
      f" (RssAnon {status.get('RssAnon', '?')}, its own heap and buffers; RssFile {status.get('RssFile', '?')},"
      " pages of the mapped binary and libraries, shared with the page cache)")
print(f"(f) (b)/(a) = {ratio(b['answered_pps'], a['answered_pps']):.3f}, "
      f"(c)/(a) = {ratio(c['answered_pps'], a['answered_pps']):.3f} (maxima); at the kernel's "
      f"saturation rate ({rate_name}): (b)/(a) = "
      f"{ratio(b_sat['answered_pps'], k_sat['answered_pps']):.3f}, (c)/(a) = "
      f"{ratio(c_sat['answered_pps'], k_sat['answered_pps']):.3f}")
ks = best("kernel_serving")
print(f"    kernel echo replies/s with troll serving: {ks['answered_pps']:.0f} (max)")
delayed = {}
if of("troll_te_delay"):
    bd, cd = best("troll_te_delay"), best("troll_final_delay")
    cpu_d = cpu_us(["troll_te_delay", "troll_final_delay"])
    ms = os.environ.get("BENCH_DELAY_MS")
    print(f"(g) with --hop-delay {ms}: Time Exceeded/s {bd['answered_pps']:.0f}, final hop/s "
          f"{cd['answered_pps']:.0f} (maxima; without delay {b['answered_pps']:.0f}, "
          f"{c['answered_pps']:.0f}); CPU per probe {cpu_d[0]:.2f} us (user {cpu_d[3]:.2f}, "
          f"system {cpu_d[4]:.2f}; without delay {cpu_all[0]:.2f}); VmRSS "
          f"{status_delay.get('VmRSS', '?')}, VmHWM {status_delay.get('VmHWM', '?')} "
          f"(without delay {status.get('VmRSS', '?')})")
    print("    CPU per probe by offered rate with delay (time exceeded / final hop): " + ", ".join(
        f"{s['rate'] or 'max'}/s {step_us(s):.2f}/{step_us(f):.2f} us"
        for s, f in zip(of("troll_te_delay"), of("troll_final_delay"))))
    delayed = {
        "delay_ms": int(ms),
        "delay_time_exceeded_pps": bd["answered_pps"],
        "delay_final_hop_pps": cd["answered_pps"],
        "delay_cpu_us_per_probe": round(cpu_d[0], 3),
        "delay_vm_rss_kib": int(status_delay.get("VmRSS", "0 kB").split()[0]),
        "delay_vm_hwm_kib": int(status_delay.get("VmHWM", "0 kB").split()[0]),
    }
summary = {
    "kernel_echo_pps": a["answered_pps"],
    "kernel_saturation_offered_pps": sat_rate,
    "troll_time_exceeded_pps": b["answered_pps"],
    "troll_final_hop_pps": c["answered_pps"],
    "cpu_us_per_probe": round(cpu_all[0], 3),
    "cpu_us_per_probe_at_saturation_time_exceeded": round(step_us(b_sat), 3),
    "cpu_us_per_probe_at_saturation_final_hop": round(step_us(c_sat), 3),
    "cpu_us_per_probe_user": round(cpu_all[3], 3),
    "cpu_us_per_probe_system": round(cpu_all[4], 3),
    "cpu_us_per_probe_time_exceeded": round(cpu_te[0], 3),
    "cpu_us_per_probe_final_hop": round(cpu_final[0], 3),
    "vm_rss_kib": int(status.get("VmRSS", "0 kB").split()[0]),
    "vm_hwm_kib": int(status.get("VmHWM", "0 kB").split()[0]),
    "rss_anon_kib": int(status.get("RssAnon", "0 kB").split()[0]),
    "rss_file_kib": int(status.get("RssFile", "0 kB").split()[0]),
    "veth": os.environ.get("BENCH_VETH", "inline"),
    "ratio_te_to_kernel": round(ratio(b["answered_pps"], a["answered_pps"]), 3),
    "ratio_final_to_kernel": round(ratio(c["answered_pps"], a["answered_pps"]), 3),
    "ratio_te_to_kernel_at_saturation": round(ratio(b_sat["answered_pps"], k_sat["answered_pps"]), 3),
    "ratio_final_to_kernel_at_saturation": round(ratio(c_sat["answered_pps"], k_sat["answered_pps"]), 3),
    "kernel_echo_pps_with_troll_serving": ks["answered_pps"],
    **delayed,
    "steps": steps,
}
print("BENCH " + json.dumps(summary))
EOF
