#!/usr/bin/env bash
# Data-path benchmark (issue 4): iperf3 TCP, both directions, over one
# namespace pair, in one run:
#   (a) acclient <-> acgateway (our test gateway's ESP + TUN), AES-GCM-256
#       and AES-CBC-256 + HMAC-SHA1-96;
#   (b) strongSwan <-> strongSwan, both user-space libipsec (this kernel has no ESP);
#   (c) wireguard-go <-> wireguard-go (Debian), the best-known user-space TUN VPN;
#   (d) the plain veth, no tunnel: the ceiling.
# Prints Mbit/s per direction, acclient's CPU seconds per GB and peak RSS,
# and the ratios the issue asks for. Bounded: SECS per iperf3 run (default 5),
# 30 s timeouts; everything is stopped by PID and the namespaces removed.
# Run as root: tests/bench/throughput.sh [SECS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-5}
[ "$(id -u)" = 0 ] || { echo "run as root (network namespaces)" >&2; exit 1; }
scripts/setup
cargo build --release -p acclient-cli -p acclient-testgw
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release
. scripts/lib/lab.sh
lab_init
GW=$RUN/gw; CL=$RUN/cl; mkdir -p "$GW" "$CL"
lab_charon_conf "$GW"; lab_pki "$GW"
export ACCLIENT_STATE_DIR=$RUN/state
TICK=$(getconf CLK_TCK)

ip netns exec "$GWNS" iperf3 -s -D -I "$RUN/iperf.pid" > /dev/null
for _ in $(seq 50); do [ -s "$RUN/iperf.pid" ] && break; sleep 0.1; done
LAB_PIDS+=($(cat "$RUN/iperf.pid"))

# mbps DST [-R]: TCP goodput at the receiver, Mbit/s.
mbps() {
  timeout 30 ip netns exec "$CLNS" iperf3 -c "$1" -t "$SECS" -J ${2:-} > "$RUN/iperf.json" || true
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(int(d["end"]["sum_received"]["bits_per_second"]/1e6) if "error" not in d else 0)' "$RUN/iperf.json"
}
cpu_s() { awk -v t="$TICK" '{printf "%.2f", ($14+$15)/t}' "/proc/$1/stat"; }
rss_mb() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
declare -A R

# (a) acclient <-> acgateway
for suite in gcm256 cbc256-sha1; do
  ip netns exec "$GWNS" "$BIN/acgateway" --listen 198.51.100.1 --cert "$GW/swanctl/x509/gw.crt" \
      --key "$GW/swanctl/private/gw.key" --user alice:pw --tun acgw0 --esp-suite "$suite" \
      2> "$RUN/acgw-$suite.log" &
  gwpid=$!; LAB_PIDS+=($gwpid)
  for _ in $(seq 50); do grep -q listening "$RUN/acgw-$suite.log" && break; sleep 0.1; done
  echo pw | ip netns exec "$CLNS" "$BIN/acclient" connect --server 198.51.100.1 --anyconnect --user alice \
      --passwd-on-stdin --cafile "$GW/ca.crt" --no-dns --split-include 203.0.113.0/24 > "$RUN/ac-$suite.log" 2>&1 &
  acpid=$!; LAB_PIDS+=($acpid)
  for _ in $(seq 100); do grep -q "Press Ctrl-C" "$RUN/ac-$suite.log" && break; sleep 0.1; done
  grep -q "Press Ctrl-C" "$RUN/ac-$suite.log" || { cat "$RUN/ac-$suite.log"; exit 1; }
  c0=$(cpu_s "$acpid")
  R[a-$suite-up]=$(mbps 203.0.113.1)
  c1=$(cpu_s "$acpid")
  R[a-$suite-down]=$(mbps 203.0.113.1 -R)
  c2=$(cpu_s "$acpid")
  R[a-$suite-rss]=$(rss_mb "$acpid")
  # CPU seconds per GB moved (the iperf3 payload; ESP adds ~4 %).
  R[a-$suite-cpu-up]=$(awk -v c="$(awk -v x="$c1" -v y="$c0" 'BEGIN {print x - y}')" -v m="${R[a-$suite-up]}" -v s="$SECS" 'BEGIN {printf "%.2f", m ? c / (m*s/8000) : 0}')
  R[a-$suite-cpu-down]=$(awk -v c="$(awk -v x="$c2" -v y="$c1" 'BEGIN {print x - y}')" -v m="${R[a-$suite-down]}" -v s="$SECS" 'BEGIN {printf "%.2f", m ? c / (m*s/8000) : 0}')
  R[a-$suite-cpu-total]=$c2
  kill -TERM "$acpid"; wait "$acpid" 2>/dev/null || true
  kill -TERM "$gwpid"; wait "$gwpid" 2>/dev/null || true
done

# (b) strongSwan <-> strongSwan (kernel-libipsec on both ends), PSK, AES-GCM-256
cat > "$GW/swanctl/swanctl.conf" <<CONF
connections { lab { version = 2
    local_addrs = 198.51.100.1
    pools = pool4
    local { auth = psk
            id = vpn.example.com }
    remote { auth = psk }
    children { net { local_ts = 203.0.113.0/24
                     esp_proposals = aes256gcm16 } } } }
pools { pool4 { addrs = 192.0.2.0/28 } }
secrets { ike { secret = "bench-psk-not-secret" } }
CONF
lab_start_charon "$GWNS" "$GW"
lab_charon_conf "$CL"
cat > "$CL/swanctl/swanctl.conf" <<CONF
connections { vpn { version = 2
    remote_addrs = 198.51.100.1
    vips = 0.0.0.0
    local { auth = psk
            id = client.example.com }
    remote { auth = psk
             id = vpn.example.com }
    children { net { remote_ts = 203.0.113.0/24
                     esp_proposals = aes256gcm16 } } } }
secrets { ike { secret = "bench-psk-not-secret" } }
CONF
lab_start_charon "$CLNS" "$CL"
STRONGSWAN_CONF=$CL/strongswan.conf timeout 30 swanctl --initiate --child net --ike vpn --timeout 20 \
    --uri "unix://$CL/charon.vici" > /dev/null
R[b-up]=$(mbps 203.0.113.1)
R[b-down]=$(mbps 203.0.113.1 -R)
STRONGSWAN_CONF=$CL/strongswan.conf swanctl --terminate --ike vpn --timeout 5 --uri "unix://$CL/charon.vici" > /dev/null || true
# Both charons stop here (by PID): wireguard-go must not share the CPU with them.
for pid in "${LAB_PIDS[@]}"; do
  [ "$pid" = "$(cat "$RUN/iperf.pid")" ] || kill -TERM "$pid" 2>/dev/null || true
done
sleep 1

# (c) wireguard-go <-> wireguard-go
umask 077
wg genkey > "$RUN/gw.key"; wg pubkey < "$RUN/gw.key" > "$RUN/gw.pub"
wg genkey > "$RUN/cl.key"; wg pubkey < "$RUN/cl.key" > "$RUN/cl.pub"
# Two names: wireguard-go's control sockets live in /var/run/wireguard, which
# network namespaces share.
ip netns exec "$GWNS" wireguard-go -f wgb0 > "$RUN/wg-gw.log" 2>&1 &
LAB_PIDS+=($!)
ip netns exec "$CLNS" wireguard-go -f wgb1 > "$RUN/wg-cl.log" 2>&1 &
LAB_PIDS+=($!)
for _ in $(seq 50); do
  ip -n "$GWNS" link show wgb0 > /dev/null 2>&1 && ip -n "$CLNS" link show wgb1 > /dev/null 2>&1 && break
  sleep 0.1
done
ip netns exec "$GWNS" wg set wgb0 listen-port 51820 private-key "$RUN/gw.key" \
    peer "$(cat "$RUN/cl.pub")" allowed-ips 192.0.2.201/32
ip netns exec "$CLNS" wg set wgb1 private-key "$RUN/cl.key" \
    peer "$(cat "$RUN/gw.pub")" allowed-ips 192.0.2.202/32 endpoint 198.51.100.1:51820
ip -n "$GWNS" addr add 192.0.2.202/24 dev wgb0; ip -n "$GWNS" link set wgb0 up
ip -n "$CLNS" addr add 192.0.2.201/24 dev wgb1; ip -n "$CLNS" link set wgb1 up
R[c-up]=$(mbps 192.0.2.202)
R[c-down]=$(mbps 192.0.2.202 -R)

# (d) plain veth
R[d-up]=$(mbps 198.51.100.1)
R[d-down]=$(mbps 198.51.100.1 -R)

echo
echo "iperf3 TCP, ${SECS} s per direction, Mbit/s (up = client -> gateway side, down = -R)"
printf '%-44s %8s %8s\n' "" up down
printf '%-44s %8s %8s\n' "(a) acclient <-> acgateway, AES-GCM-256" "${R[a-gcm256-up]}" "${R[a-gcm256-down]}"
printf '%-44s %8s %8s\n' "(a) acclient <-> acgateway, AES-CBC-256/SHA1" "${R[a-cbc256-sha1-up]}" "${R[a-cbc256-sha1-down]}"
printf '%-44s %8s %8s\n' "(b) strongSwan <-> strongSwan (libipsec)" "${R[b-up]}" "${R[b-down]}"
printf '%-44s %8s %8s\n' "(c) wireguard-go <-> wireguard-go" "${R[c-up]}" "${R[c-down]}"
printf '%-44s %8s %8s\n' "(d) plain veth" "${R[d-up]}" "${R[d-down]}"
echo
for s in gcm256 cbc256-sha1; do
  echo "acclient $s: CPU ${R[a-$s-cpu-up]} s/GB up, ${R[a-$s-cpu-down]} s/GB down (${R[a-$s-cpu-total]} s in all); peak RSS ${R[a-$s-rss]} MB"
done
awk -v a="${R[a-gcm256-up]}" -v ad="${R[a-gcm256-down]}" -v b="${R[b-up]}" -v bd="${R[b-down]}" \
    -v c="${R[c-up]}" -v cd="${R[c-down]}" -v d="${R[d-up]}" -v dd="${R[d-down]}" 'BEGIN {
  printf "ratios (GCM-256, up / down): a/c = %.2f / %.2f (goal >= 3), a/b = %.2f / %.2f (goal >= 6), a/d = %.3f / %.3f (goal >= 0.1)\n",
    (c ? a/c : 0), (cd ? ad/cd : 0), (b ? a/b : 0), (bd ? ad/bd : 0), (d ? a/d : 0), (dd ? ad/dd : 0)
}'
