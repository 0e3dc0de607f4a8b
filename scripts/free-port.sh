# shellcheck shell=bash
# free_port: prints a TCP port for a throwaway server on the host network, sourced by ci.sh and
# bench.sh. Ports are taken below the kernel's ephemeral range (ip_local_port_range): a port in
# that range can be taken at any moment as the local end of some client's connection, and then
# the server cannot bind it (CI once failed so: "could not bind IPv4 address "0.0.0.0": Address
# already in use" on a port nobody listened on). Nobody may listen on it either.
free_port() {
  local lo=32768 p _
  read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  local base=$((lo > 21024 ? lo - 20000 : 1024)) span=$((lo > 21024 ? 20000 : lo - 1024))
  for _ in {1..200}; do
    p=$((base + (RANDOM * 32768 + RANDOM) % span))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      printf '%s\n' "$p"
      return 0
    fi
  done
  return 1
}
