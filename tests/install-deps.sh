#!/usr/bin/env bash
# The system tools the tests run against (real PAM, shadow-utils, sshd, systemd-analyze, dpkg,
# man page linters, bubblewrap). As root on Debian, installs whichever are missing; otherwise says
# which are missing. Called by `npm test` and by .ci/run.
set -uo pipefail
need=()
for pkg_bin in mandoc:/usr/bin/mandoc man-db:/usr/bin/man groff-base:/usr/bin/groff dpkg:/usr/bin/dpkg-deb \
  systemd:/usr/bin/systemd-analyze passwd:/usr/sbin/pwck login:/bin/login python3:/usr/bin/python3 \
  pamtester:/usr/bin/pamtester openssh-server:/usr/sbin/sshd openssh-client:/usr/bin/ssh \
  util-linux:/usr/bin/unshare procps:/bin/ps bubblewrap:/usr/bin/bwrap diffutils:/usr/bin/diff; do
  [ -e "${pkg_bin#*:}" ] || need+=("${pkg_bin%%:*}")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "tests need these Debian packages: ${need[*]} (run as root to have them installed)" >&2
  exit 1
fi
echo "installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
