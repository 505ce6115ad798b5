# Sourced by the benchmark scripts: the address a reference server announces.
#
#   url=$(announced_url FILE SECONDS) || exit 1
#
# Waits up to SECONDS for the server's first line of output (written to FILE),
# `listening on http://127.0.0.1:PORT`, and prints the address; fails with a
# message when it does not come.
announced_url() {
  local file=$1 seconds=$2 tries
  tries=$((seconds * 10))
  for _ in $(seq "$tries"); do
    grep -q '^listening on ' "$file" 2>/dev/null && break
    sleep 0.1
  done
  local url
  url=$(sed -n 's/^listening on //p' "$file" 2>/dev/null | head -1)
  [ -n "$url" ] || { echo "the server did not announce its address within ${seconds}s (see $file)" >&2; return 1; }
  echo "$url"
}
