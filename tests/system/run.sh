#!/usr/bin/env bash
# System tests: real PAM, shadow-utils and sshd, against a private copy of /etc.
# Re-executes itself inside a new mount namespace where a full copy of /etc is bind-mounted over
# /etc and empty file systems over /home, /run and /opt: the host's files are never touched.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "system tests: must run as root on CI" >&2
    exit 1
  fi
  echo "system tests skipped: they need root (unshare --mount, real /etc in a private namespace)" >&2
  exit 0
fi
for tool in unshare pamtester /usr/sbin/sshd ssh ssh-keygen pwck grpck useradd; do
  command -v "$tool" >/dev/null || { echo "system tests: $tool is missing (.ci/run installs it)" >&2; exit 1; }
done
[ -x dist/ddum ] || { echo "system tests: build dist/ddum first (npm run build)" >&2; exit 1; }

if [ "${DDUM_SYSTEST_INSIDE:-}" != "1" ]; then
  DDUM_HOST_MNTNS=$(readlink /proc/self/ns/mnt) \
    exec unshare --mount --propagation private env DDUM_SYSTEST_INSIDE=1 bash "$0" "$@"
fi

[ "$(readlink /proc/self/ns/mnt)" != "${DDUM_HOST_MNTNS:-}" ] || { echo "system tests: not in a private mount namespace" >&2; exit 1; }
work=$(mktemp -d /tmp/ddum-systest.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -a /etc "$work/etc"
touch "$work/etc/.ddum-system-test"
mkdir -p "$work/home"
mount --bind "$work/etc" /etc
mount --bind "$work/home" /home
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/sshd
mount -t tmpfs -o mode=0755 tmpfs /opt
# sshd runs an AuthorizedKeysCommand only from a root-owned path no one else can write.
mkdir -p /opt/ddum && cp dist/ddum /opt/ddum/ddum && chmod 0755 /opt/ddum/ddum
export DDUM_SYSTEST_WORK="$work" DDUM_BIN=/opt/ddum/ddum DDUM_HOST_MNTNS
node_modules/.bin/bun test --timeout 300000 ./tests/system/logins.sys.ts
