#!/usr/bin/env bash
# The system tools the tests run against (real PAM, shadow-utils, sshd, systemd-analyze, dpkg,
# man page linters, bubblewrap, rpmbuild, qemu-user, attr). As root on Debian, installs whichever
# are missing; otherwise says which are missing. Called by `npm test` and by .ci/run.
set -uo pipefail
need=()
for pkg_bin in mandoc:/usr/bin/mandoc man-db:/usr/bin/man groff-base:/usr/bin/groff dpkg:/usr/bin/dpkg-deb \
  systemd:/usr/bin/systemd-analyze passwd:/usr/sbin/pwck login:/bin/login python3:/usr/bin/python3 \
  pamtester:/usr/bin/pamtester openssh-server:/usr/sbin/sshd openssh-client:/usr/bin/ssh \
  util-linux:/usr/bin/unshare procps:/bin/ps bubblewrap:/usr/bin/bwrap diffutils:/usr/bin/diff \
  rpm:/usr/bin/rpmbuild qemu-user-static:/usr/bin/qemu-aarch64-static attr:/usr/bin/setfattr; do
  [ -e "${pkg_bin#*:}" ] || need+=("${pkg_bin%%:*}")
done
# The arm64 build runs under qemu-user with Debian's arm64 C and C++ runtimes unpacked here (-L).
sysroot=$(dirname "$0")/../.tmp/arm64-sysroot
arm64_libs=(libc6:arm64 libgcc-s1:arm64 libstdc++6:arm64)
make_sysroot() {
  local dl
  dl=$(mktemp -d) && chmod 0755 "$dl" || return 1
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64 || return 1
  apt-get update -qq >/dev/null || return 1
  (cd "$dl" && apt-get download -qq "${arm64_libs[@]}" >/dev/null 2>&1) || { rm -rf "$dl"; return 1; }
  rm -rf "$sysroot.new" && mkdir -p "$sysroot.new" || return 1
  for deb in "$dl"/*.deb; do dpkg-deb -x "$deb" "$sysroot.new" || return 1; done
  # Only the libraries are wanted (the docs hold dangling links).
  rm -rf "$sysroot.new/usr/share"
  rm -rf "$dl" "$sysroot" && mv "$sysroot.new" "$sysroot"
}
[ -e "$sysroot/lib/ld-linux-aarch64.so.1" ] || need_sysroot=1
[ ${#need[@]} -eq 0 ] && [ -z "${need_sysroot:-}" ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "tests need these Debian packages: ${need[*]} ${need_sysroot:+and ${arm64_libs[*]} unpacked into $sysroot} (run as root to have them installed)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || exit 1
fi
if [ -n "${need_sysroot:-}" ]; then
  echo "unpacking ${arm64_libs[*]} into $sysroot" >&2
  make_sysroot || { echo "making the arm64 sysroot failed" >&2; exit 1; }
fi
