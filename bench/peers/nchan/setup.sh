#!/bin/sh
# Installs Nchan for the benchmark: Debian's nginx and its Nchan module, as published.
# Idempotent and quiet when everything is there. Starts no daemon: the benchmark runs its
# own nginx with bench/peers/nchan/nginx.conf.template on a free port and stops it.
set -eu

module=/usr/lib/nginx/modules/ngx_nchan_module.so
if command -v nginx >/dev/null 2>&1 && [ -f "$module" ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "nchan: needs 'apt-get install nginx libnginx-mod-nchan' as root" >&2
  exit 1
fi
# Keep the package's post-install from starting a system nginx on port 80.
made_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  made_policy=1
fi
status=0
{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends nginx libnginx-mod-nchan >/dev/null; } || status=$?
if [ -n "$made_policy" ]; then
  rm -f /usr/sbin/policy-rc.d
fi
exit "$status"
