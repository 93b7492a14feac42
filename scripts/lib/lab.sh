# Shared by scripts/demo and tests/bench: two network namespaces, a PKI, and
# private strongSwan (charon-systemd) instances. Source it; call lab_init.
# Everything is removed by lab_cleanup (processes by PID, then namespaces).
# Addresses: 198.51.100.2 (client) <-> 198.51.100.1 (gateway),
# 203.0.113.0/24 behind the gateway, virtual IPs from 192.0.2.0/28.

LAB_PIDS=()

lab_init() {
  RUN=$(mktemp -d /tmp/acclient-lab.XXXXXX)
  GWNS=aclab-gw-$$; CLNS=aclab-cl-$$
  trap lab_cleanup EXIT INT TERM
  ip netns add "$GWNS"; ip netns add "$CLNS"
  ip link add veth-gw netns "$GWNS" type veth peer name veth-cl netns "$CLNS"
  ip -n "$GWNS" addr add 198.51.100.1/24 dev veth-gw; ip -n "$CLNS" addr add 198.51.100.2/24 dev veth-cl
  ip -n "$GWNS" addr add 203.0.113.1/32 dev lo
  for ns in "$GWNS" "$CLNS"; do ip -n "$ns" link set lo up; done
  ip -n "$GWNS" link set veth-gw up; ip -n "$CLNS" link set veth-cl up
}

lab_cleanup() {
  local pid
  for pid in "${LAB_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${LAB_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  ip netns del "$GWNS" 2>/dev/null || true
  ip netns del "$CLNS" 2>/dev/null || true
  [ -n "${RUN:-}" ] && rm -rf "$RUN"
}

# lab_charon_conf DIR: a strongswan.conf for a private instance in DIR.
lab_charon_conf() {
  local d=$1
  mkdir -p "$d"/swanctl/{x509,x509ca,x509aa,x509ocsp,x509crl,x509ac,private,rsa,ecdsa,pkcs8,pkcs12,pubkey,bliss}
  cat > "$d/strongswan.conf" <<CONF
charon {
    load_modular = no
    load = random nonce drbg openssl aes sha1 sha2 md5 hmac gcm pem pkcs1 pkcs8 x509 revocation constraints pubkey gmp kdf attr kernel-libipsec kernel-netlink socket-default vici updown eap-identity eap-md5 eap-mschapv2 eap-gtc resolve counters
    plugins { vici { socket = unix://$d/charon.vici }
              resolve { file = $d/resolv.conf } }
    filelog { main { path = $d/charon.log
                     append = no
                     flush_line = yes
                     default = 1
                     ike = 1 } }
    syslog { daemon { default = -1 } auth { default = -1 } }
}
swanctl { socket = unix://$d/charon.vici
          load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints }
pki { load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey gmp }
CONF
}

# lab_pki DIR: CA and gateway certificate (vpn.example.com / 198.51.100.1).
lab_pki() {
  local d=$1
  ( cd "$d"; export STRONGSWAN_CONF=$d/strongswan.conf
    pki --gen --type rsa --size 2048 --outform pem > ca.key
    pki --self --ca --lifetime 3650 --in ca.key --dn "C=XX, O=acclient lab, CN=acclient lab CA" --outform pem > ca.crt
    pki --gen --type rsa --size 2048 --outform pem > swanctl/private/gw.key
    pki --pub --in swanctl/private/gw.key | pki --issue --lifetime 30 --cacert ca.crt --cakey ca.key \
        --dn "C=XX, O=acclient lab, CN=vpn.example.com" --san vpn.example.com --san 198.51.100.1 \
        --flag serverAuth --flag ikeIntermediate --outform pem > swanctl/x509/gw.crt )
}

# lab_gateway_swanctl DIR: certificate + EAP-MSCHAPv2 gateway for alice / alice-password.
lab_gateway_swanctl() {
  cat > "$1/swanctl/swanctl.conf" <<CONF
connections { lab { version = 2
    local_addrs = 198.51.100.1
    pools = pool4
    send_cert = always
    local { auth = pubkey
            certs = gw.crt
            id = vpn.example.com }
    remote { auth = eap-mschapv2
             eap_id = %any }
    children { net { local_ts = 203.0.113.0/24
                     esp_proposals = aes256gcm16,aes256-sha1 } } } }
pools { pool4 { addrs = 192.0.2.0/28
                dns = 203.0.113.53 } }
secrets { eap-alice { id = alice
                      secret = "alice-password" } }
CONF
}

# lab_start_charon NS DIR: start charon-systemd in NS with DIR's config, load it.
lab_start_charon() {
  local ns=$1 d=$2
  ip netns exec "$ns" env STRONGSWAN_CONF="$d/strongswan.conf" /usr/sbin/charon-systemd > "$d/charon.out" 2>&1 &
  LAB_PIDS+=($!)
  for _ in $(seq 100); do [ -S "$d/charon.vici" ] && break; sleep 0.1; done
  STRONGSWAN_CONF=$d/strongswan.conf swanctl --load-all --file "$d/swanctl/swanctl.conf" --uri "unix://$d/charon.vici" > /dev/null
}
