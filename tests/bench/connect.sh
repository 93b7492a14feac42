#!/usr/bin/env bash
# Connect-time benchmark: `acclient probe` vs strongSwan's own initiator
# (charon + swanctl --initiate) against the same strongSwan gateway
# (certificate + EAP-MSCHAPv2), alternating, N runs each. Prints every run,
# the medians and their ratio. Bounded: N runs, 20 s timeout each.
# Run as root: tests/bench/connect.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-7}
[ "$(id -u)" = 0 ] || { echo "run as root (network namespaces)" >&2; exit 1; }
scripts/setup
cargo build --release -p acclient-cli
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/acclient
. scripts/lib/lab.sh
lab_init
GW=$RUN/gw; CL=$RUN/cl; mkdir -p "$GW" "$CL"
lab_charon_conf "$GW"; lab_pki "$GW"; lab_gateway_swanctl "$GW"
lab_start_charon "$GWNS" "$GW"
lab_charon_conf "$CL"
cp "$GW/ca.crt" "$CL/swanctl/x509ca/ca.crt"
cat > "$CL/swanctl/swanctl.conf" <<CONF
connections { vpn { version = 2
    remote_addrs = 198.51.100.1
    vips = 0.0.0.0
    local { auth = eap-mschapv2
            id = alice
            eap_id = alice }
    remote { auth = pubkey
             id = vpn.example.com }
    children { net { remote_ts = 203.0.113.0/24
                     esp_proposals = aes256gcm16 } } } }
secrets { eap-alice { id = alice
                      secret = "alice-password" } }
CONF
lab_start_charon "$CLNS" "$CL"

ms() { echo $(( $(date +%s%N) / 1000000 )); }
a=(); c=(); ai=()
for i in $(seq "$N"); do
  t0=$(ms)
  out=$(echo alice-password | timeout 20 ip netns exec "$CLNS" "$BIN" probe --server 198.51.100.1 --user alice --source-port 0 \
        --passwd-on-stdin --cafile "$GW/ca.crt" --json)
  t1=$(ms)
  a+=($((t1 - t0))); ai+=($(echo "$out" | sed -n 's/.*"connect_ms":\([0-9]*\).*/\1/p'))
  t0=$(ms)
  STRONGSWAN_CONF=$CL/strongswan.conf timeout 20 swanctl --initiate --child net --ike vpn --timeout 15 --uri "unix://$CL/charon.vici" > /dev/null
  t1=$(ms)
  c+=($((t1 - t0)))
  STRONGSWAN_CONF=$CL/strongswan.conf swanctl --terminate --ike vpn --timeout 5 --uri "unix://$CL/charon.vici" > /dev/null
  echo "run $i: acclient probe ${a[-1]} ms (connected after ${ai[-1]} ms, then DELETE and exit) | charon swanctl --initiate ${c[-1]} ms"
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : int((v[NR/2]+v[NR/2+1])/2)}'; }
ma=$(median "${a[@]}"); mai=$(median "${ai[@]}"); mc=$(median "${c[@]}")
echo "median over $N runs: acclient whole process $ma ms, acclient connect $mai ms, charon initiate $mc ms"
awk -v a="$mai" -v c="$mc" -v w="$ma" 'BEGIN {printf "ratio acclient connect / charon initiate = %.2f (whole acclient process incl. DELETE and exit: %.2f)\n", a/c, w/c}'
