#!/usr/bin/env bash
# Several independent libvirt "hosts" on this one machine, for tests, benchmarks and debugging.
#
#   scripts/netns-hosts.sh up N [--prefix P] [--owner PID] [--tls]
#                                                            bring up a fabric, a ctl namespace and N hosts;
#                                                            prints the topology as JSON
#   scripts/netns-hosts.sh down [--prefix P]                 tear it all down (by pid and namespace name)
#   scripts/netns-hosts.sh stop-daemon  P HOST [SIGNAL]      stop one host's libvirtd by its pid (default TERM)
#   scripts/netns-hosts.sh start-daemon P HOST               start it again (QEMU guests kept running)
#   scripts/netns-hosts.sh exec P -- CMD...                  run CMD in the ctl namespace
#   scripts/netns-hosts.sh virsh P HOST ARGS...              virsh on HOST, over TCP from the ctl namespace
#   scripts/netns-hosts.sh clean-stale                       tear down topologies whose --owner has died
#   scripts/netns-hosts.sh status [--prefix P]
#
# Layout of one topology (prefix P, default "vmsh-dev"):
#
#   netns P-fab   bridge fab0: the "switch"; one veth port per member (h1, h2, ..., ctl)
#   netns P-ctl   eth0 198.18.0.2/16: where the controller, HAProxy and the load client run
#   netns P-hN    bridge br0 (eth0 enslaved) 198.18.0.(10+N)/16; guests' taps join br0, so every
#                 guest shares one L2 segment with every host and with ctl (like hypervisors on one VLAN)
#                 plus a private mount namespace: /etc/libvirt, /run/libvirt, /var/lib/libvirt,
#                 /var/cache/libvirt and /var/log/libvirt are bind mounts of STATE/hN/*, so the host's
#                 virtlogd + libvirtd have their own domains, storage pools and QEMU state. They listen
#                 on qemu+tcp://198.18.0.(10+N)/system (auth none), or with --tls on qemu+tls:// with
#                 certificates made here by certtool (a CA, a server certificate per host for its
#                 address, one client certificate for vmscale and for the hosts as clients of each
#                 other in peer-to-peer migration). The topology gives two URIs per host: "uri" for
#                 vmscale in ctl, and "peer_uri" for the other hosts (its pkipath is inside them).
#
# 198.18.0.0/15 is the range reserved for network benchmarks (RFC 2544): it cannot collide with a
# real network of the machine, and it exists only inside these namespaces. The root namespace sends
# nothing to it (the network rule): talk to the hosts from P-ctl (`exec`, `virsh`).
# Everything else (/var/lib/vmscale with the guest image, /usr, ...) is the machine's own, shared
# by all hosts like an NFS export would be.
set -euo pipefail

ROOT_STATE=${VMSCALE_NETNS_STATE:-/var/lib/vmscale/netns}
NET=198.18
PREFIX_RE='^[a-z][a-z0-9-]{1,20}$'

log() { printf '\033[1;34m[netns-hosts]\033[0m %s\n' "$*" >&2; }
die() { printf 'netns-hosts: %s\n' "$*" >&2; exit 1; }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pidof_file() { [ -f "$1" ] && tr -dc '0-9' <"$1" || true; }

need() {
  [ "$(id -u)" = 0 ] || die "needs root (ip netns, unshare -m, libvirtd)"
  for bin in ip unshare nsenter libvirtd virtlogd virsh; do
    command -v "$bin" >/dev/null || die "$bin is missing (apt-get install iproute2 util-linux libvirt-daemon-system)"
  done
}

check_prefix() { [[ "$1" =~ $PREFIX_RE ]] || die "prefix must match $PREFIX_RE, got '$1'"; }

host_addr() { echo "$NET.0.$((10 + $1))"; }

certificate() {  # name, template lines..., into $pki: NAME-key.pem and NAME-cert.pem signed by the CA
  local name=$1; shift
  printf '%s\n' "$@" "expiration_days = 7" >"$pki/$name.info"
  certtool --generate-privkey --outfile "$pki/$name-key.pem" 2>/dev/null
  certtool --generate-certificate --load-privkey "$pki/$name-key.pem" --load-ca-certificate "$pki/cacert.pem" \
    --load-ca-privkey "$pki/ca-key.pem" --template "$pki/$name.info" --outfile "$pki/$name-cert.pem" 2>/dev/null
}

make_pki() {  # topology dir, host count
  command -v certtool >/dev/null || die "--tls needs certtool: apt-get install gnutls-bin"
  pki="$1/pki"
  mkdir -p "$pki" "$1/pki-client"
  certtool --generate-privkey --outfile "$pki/ca-key.pem" 2>/dev/null
  printf '%s\n' "cn = vmscale test CA $(basename "$1")" ca cert_signing_key "expiration_days = 7" >"$pki/ca.info"
  certtool --generate-self-signed --load-privkey "$pki/ca-key.pem" --template "$pki/ca.info" \
    --outfile "$pki/cacert.pem" 2>/dev/null
  certificate client "organization = vmscale" "cn = vmscale-client" tls_www_client encryption_key signing_key
  cp "$pki/cacert.pem" "$1/pki-client/cacert.pem"
  cp "$pki/client-cert.pem" "$1/pki-client/clientcert.pem"
  cp "$pki/client-key.pem" "$1/pki-client/clientkey.pem"
  for i in $(seq 1 "$2"); do
    local a
    a=$(host_addr "$i")
    certificate "h$i" "organization = vmscale" "cn = h$i" "ip_address = $a" tls_www_server encryption_key signing_key
    mkdir -p "$1/h$i/etc/pki"
    cp "$pki/cacert.pem" "$1/h$i/etc/pki/cacert.pem"
    cp "$pki/h$i-cert.pem" "$1/h$i/etc/pki/servercert.pem"
    cp "$pki/h$i-key.pem" "$1/h$i/etc/pki/serverkey.pem"
    cp "$pki/client-cert.pem" "$1/h$i/etc/pki/clientcert.pem"
    cp "$pki/client-key.pem" "$1/h$i/etc/pki/clientkey.pem"
  done
  chmod -R go-rwx "$pki" "$1/pki-client" "$1"/h*/etc/pki
}

host_uri() {  # prefix, host name: how vmscale in ctl reaches the host
  local d="$ROOT_STATE/$1" addr
  addr=$(cat "$d/$2/address")
  if [ "$(cat "$d/mode" 2>/dev/null)" = tls ]; then echo "qemu+tls://$addr/system?pkipath=$d/pki-client"
  else echo "qemu+tcp://$addr/system"; fi
}

peer_uri() {  # prefix, host name: how the other hosts' libvirtd reach it (pkipath inside them)
  local d="$ROOT_STATE/$1" addr
  addr=$(cat "$d/$2/address")
  if [ "$(cat "$d/mode" 2>/dev/null)" = tls ]; then echo "qemu+tls://$addr/system?pkipath=/etc/libvirt/pki"
  else echo "qemu+tcp://$addr/system"; fi
}

write_host_config() {
  local d=$1 addr=$2 mode=$3 uuid
  uuid=$(cat /proc/sys/kernel/random/uuid)
  mkdir -p "$d"/etc/qemu/networks "$d"/etc/storage "$d"/etc/nwfilter "$d"/run "$d"/lib/images \
    "$d"/cache "$d"/log/qemu
  if [ "$mode" = tls ]; then
    cat >"$d/etc/libvirtd.conf" <<EOF
listen_tls = 1
listen_tcp = 0
auth_tls = "none"
key_file = "/etc/libvirt/pki/serverkey.pem"
cert_file = "/etc/libvirt/pki/servercert.pem"
ca_file = "/etc/libvirt/pki/cacert.pem"
EOF
  else
    # listen_tcp with auth none is for this isolated test fabric only (README, "many hosts").
    printf 'listen_tls = 0\nlisten_tcp = 1\nauth_tcp = "none"\n' >"$d/etc/libvirtd.conf"
  fi
  cat >>"$d/etc/libvirtd.conf" <<EOF
listen_addr = "$addr"
host_uuid = "$uuid"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
keepalive_interval = 5
keepalive_count = 3
EOF
  # No security driver, cgroups or per-domain namespaces: the daemon already runs in namespaces of
  # its own, and those features would reach into the machine's shared /dev, cgroup tree and labels.
  cat >"$d/etc/qemu.conf" <<EOF
security_driver = "none"
user = "root"
group = "root"
remember_owner = 0
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
migration_address = "$addr"
migration_host = "$addr"
EOF
  printf 'log_outputs = "3:file:/var/log/libvirt/virtlogd.log"\n' >"$d/etc/virtlogd.conf"
  echo "$uuid" >"$d/host_uuid"
}

# Start virtlogd (if not running) and libvirtd inside HOST's network namespace and a fresh private
# mount namespace with the bind mounts above. The daemons keep the mount namespace alive; a restart
# makes a new one over the same folders, so libvirtd finds its QEMU guests' state again.
start_daemons() {
  local p=$1 h=$2 d="$ROOT_STATE/$1/$2" pid
  pid=$(pidof_file "$d/run/libvirtd.pid")
  if alive "$pid"; then log "$p-$h: libvirtd already running (pid $pid)"; return; fi
  rm -f "$d/run/libvirtd.pid" "$d/run/libvirt-sock" "$d/run/libvirt-sock-ro" "$d/run/libvirt-admin-sock"
  local vl_start="true"
  pid=$(pidof_file "$d/run/virtlogd.pid")
  if ! alive "$pid"; then
    rm -f "$d/run/virtlogd.pid" "$d/run/virtlogd-sock" "$d/run/virtlogd-admin-sock"
    vl_start="virtlogd -d -f /etc/libvirt/virtlogd.conf -p /run/libvirt/virtlogd.pid"
  fi
  ip netns exec "$p-$h" unshare -m --propagation private sh -ec "
    mount --bind '$d/etc' /etc/libvirt
    mount --bind '$d/run' /run/libvirt
    mount --bind '$d/lib' /var/lib/libvirt
    mount --bind '$d/cache' /var/cache/libvirt
    mount --bind '$d/log' /var/log/libvirt
    $vl_start
    for _ in \$(seq 1 50); do [ -S /run/libvirt/virtlogd-sock ] && break; sleep 0.1; done
    libvirtd -d --listen -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid
  "
  local uri
  uri=$(host_uri "$p" "$h")
  for _ in $(seq 1 150); do
    ip netns exec "$p-ctl" timeout 5 virsh -c "$uri" version >/dev/null 2>&1 && break
    sleep 0.2
  done
  ip netns exec "$p-ctl" timeout 10 virsh -c "$uri" version >/dev/null 2>&1 ||
    die "$p-$h: libvirtd did not answer on $uri (see $d/log/libvirtd.log)"
  log "$p-$h: libvirtd up on $uri (pid $(pidof_file "$d/run/libvirtd.pid"))"
}

stop_daemon() {
  local p=$1 h=$2 sig=${3:-TERM} d="$ROOT_STATE/$1/$2" pid
  pid=$(pidof_file "$d/run/libvirtd.pid")
  alive "$pid" || { log "$p-$h: libvirtd not running"; return; }
  kill "-$sig" "$pid"
  for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
  alive "$pid" && die "$p-$h: libvirtd (pid $pid) did not stop on SIG$sig"
  log "$p-$h: libvirtd (pid $pid) stopped with SIG$sig"
}

member_link() {  # member namespace, name of its port on the fabric
  local p=$1 ns=$2 port=$3
  ip -n "$p-fab" link add "$port" type veth peer name eth0 netns "$ns"
  ip -n "$p-fab" link set "$port" master fab0 up
  ip -n "$ns" link set lo up
}

json_topology() {
  local p=$1 n=$2 d="$ROOT_STATE/$1" sep=""
  printf '{"prefix": "%s", "state_dir": "%s", "network": "%s.0.0/16", "guest_pool": "%s.1.0/24",' \
    "$p" "$d" "$NET" "$NET"
  printf ' "mode": "%s",\n' "$(cat "$d/mode" 2>/dev/null || echo tcp)"
  printf ' "ctl": {"netns": "%s-ctl", "address": "%s.0.2"},\n "fabric": "%s-fab",\n "hosts": [' \
    "$p" "$NET" "$p"
  for i in $(seq 1 "$n"); do
    local a
    a=$(host_addr "$i")
    printf '%s\n  {"name": "h%d", "netns": "%s-h%d", "address": "%s", "uri": "%s", "peer_uri": "%s",' \
      "$sep" "$i" "$p" "$i" "$a" "$(host_uri "$p" "h$i")" "$(peer_uri "$p" "h$i")"
    printf ' "state_dir": "%s/h%d", "host_uuid": "%s"}' "$d" "$i" "$(cat "$d/h$i/host_uuid")"
    sep=","
  done
  printf '\n ]}\n'
}

up() {
  local n=$1 p=$2 owner=$3 mode=$4 d
  [[ "$n" =~ ^[1-9][0-9]?$ ]] && [ "$n" -le 40 ] || die "N must be 1..40, got '$n'"
  d="$ROOT_STATE/$p"
  [ -e "/run/netns/$p-fab" ] && die "topology $p exists already: scripts/netns-hosts.sh down --prefix $p"
  mkdir -p "$d"
  echo "$owner" >"$d/owner"
  echo "$n" >"$d/count"
  echo "$mode" >"$d/mode"
  trap 'log "bring-up failed: tearing down $p"; down "$p"; exit 1' ERR
  ip netns add "$p-fab"
  ip -n "$p-fab" link set lo up
  ip -n "$p-fab" link add fab0 type bridge forward_delay 0 stp_state 0
  ip -n "$p-fab" link set fab0 up
  ip netns add "$p-ctl"
  member_link "$p" "$p-ctl" ctl
  ip -n "$p-ctl" addr add "$NET.0.2/16" dev eth0
  ip -n "$p-ctl" link set eth0 up
  for i in $(seq 1 "$n"); do
    local ns="$p-h$i" addr
    addr=$(host_addr "$i")
    ip netns add "$ns"
    member_link "$p" "$ns" "h$i"
    ip -n "$ns" link add br0 type bridge forward_delay 0 stp_state 0
    ip -n "$ns" link set eth0 master br0 up
    ip -n "$ns" addr add "$addr/16" dev br0
    ip -n "$ns" link set br0 up
    write_host_config "$d/h$i" "$addr" "$mode"
    echo "$addr" >"$d/h$i/address"
  done
  if [ "$mode" = tls ]; then make_pki "$d" "$n"; fi
  for i in $(seq 1 "$n"); do start_daemons "$p" "h$i"; done
  trap - ERR
  json_topology "$p" "$n" | tee "$d/topology.json"
}

kill_namespace_processes() {  # every process in the namespace is ours: the namespace was made here
  local ns=$1 pids
  [ -e "/run/netns/$ns" ] || return 0
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  [ -n "$pids" ] || return 0
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  for _ in $(seq 1 50); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -n "$pids" ] || return 0
    sleep 0.1
  done
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  for _ in $(seq 1 50); do [ -n "$(ip netns pids "$ns" 2>/dev/null)" ] || return 0; sleep 0.1; done
  log "warning: processes left in $ns: $(ip netns pids "$ns" | tr '\n' ' ')"
}

down() {
  local p=$1 d="$ROOT_STATE/$1" ns
  for hostdir in "$d"/h*; do
    [ -d "$hostdir" ] || continue
    local h
    h=$(basename "$hostdir")
    # QEMU first (by the pid files libvirt keeps), then the daemons, then whatever else is left.
    for pidfile in "$hostdir"/run/qemu/*.pid; do
      [ -f "$pidfile" ] || continue
      local qp
      qp=$(pidof_file "$pidfile")
      if alive "$qp" && grep -q qemu "/proc/$qp/comm" 2>/dev/null; then kill -KILL "$qp" 2>/dev/null || true; fi
    done
    for daemon in libvirtd virtlogd; do
      local dp
      dp=$(pidof_file "$hostdir/run/$daemon.pid")
      if alive "$dp"; then kill -TERM "$dp" 2>/dev/null || true; fi
    done
    kill_namespace_processes "$p-$h"
  done
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^$p-(h[0-9]+|ctl|fab)$" || true); do
    kill_namespace_processes "$ns"
    ip netns del "$ns" 2>/dev/null || true
  done
  if [ -d "$d" ]; then
    # A killed QEMU may still hold a file a moment; the mounts are gone with their namespaces.
    rm -rf "$d" 2>/dev/null || { sleep 0.5; rm -rf "$d"; }
  fi
  log "topology $p is down"
}

clean_stale() {
  [ -d "$ROOT_STATE" ] || return 0
  for d in "$ROOT_STATE"/*/; do
    local p owner
    p=$(basename "$d")
    owner=$(cat "$d/owner" 2>/dev/null || echo "")
    # Only topologies made for a process (tests pass --owner) and whose process is gone.
    if [[ "$owner" =~ ^[0-9]+$ ]] && ! alive "$owner"; then
      log "owner $owner of $p is gone: tearing it down"
      down "$p"
    fi
  done
}

status() {
  local p=$1 d="$ROOT_STATE/$1"
  [ -d "$d" ] || die "no topology $p"
  for hostdir in "$d"/h*; do
    local h pid
    h=$(basename "$hostdir")
    pid=$(pidof_file "$hostdir/run/libvirtd.pid")
    if alive "$pid"; then echo "$h libvirtd pid $pid"; else echo "$h libvirtd stopped"; fi
  done
  cat "$d/topology.json"
}

need
cmd=${1:-}
shift || true
prefix=vmsh-dev
owner=manual
mode=tcp
case "$cmd" in
  up)
    count=${1:-}; shift || true
    while [ $# -gt 0 ]; do
      case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --owner) owner=$2; shift 2 ;;
        --tls) mode=tls; shift ;;
        *) die "unknown option $1" ;;
      esac
    done
    check_prefix "$prefix"
    clean_stale
    up "$count" "$prefix" "$owner" "$mode"
    ;;
  down | status)
    [ "${1:-}" = "--prefix" ] && prefix=$2
    check_prefix "$prefix"
    "$cmd" "$prefix"
    ;;
  stop-daemon) check_prefix "$1"; stop_daemon "$1" "$2" "${3:-TERM}" ;;
  start-daemon) check_prefix "$1"; start_daemons "$1" "$2" ;;
  exec)
    check_prefix "$1"; p=$1; shift
    [ "${1:-}" = "--" ] && shift
    exec ip netns exec "$p-ctl" "$@"
    ;;
  virsh)
    check_prefix "$1"; p=$1; h=$2; shift 2
    exec ip netns exec "$p-ctl" timeout 30 virsh -c "$(host_uri "$p" "$h")" "$@"
    ;;
  clean-stale) clean_stale ;;
  *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
