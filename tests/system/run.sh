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
  # Two rounds, each in a fresh namespace with a fresh copy of /etc: ddum as it is, then ddum
  # under the sandboxing of ddum.service (emulated with bubblewrap: no systemd runs here).
  command -v bwrap >/dev/null || { echo "system tests: bwrap is missing (.ci/run installs bubblewrap)" >&2; exit 1; }
  rc=0
  for sandbox in 0 1; do
    [ "$sandbox" = 1 ] && echo "system tests, round 2: under the sandboxing of ddum.service" >&2
    DDUM_HOST_MNTNS=$(readlink /proc/self/ns/mnt) DDUM_SANDBOX=$sandbox \
      unshare --mount --propagation private env DDUM_SYSTEST_INSIDE=1 bash "$0" "$@" || rc=1
  done
  exit $rc
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
mkdir -p /opt/ddum
if [ "${DDUM_SANDBOX:-0}" = 1 ]; then
  cp dist/ddum /opt/ddum/ddum-real && sed "s|@WORK@|$work|" tests/system/sandbox.sh > /opt/ddum/ddum
else
  cp dist/ddum /opt/ddum/ddum
fi
chmod 0755 /opt/ddum/*
export DDUM_SYSTEST_WORK="$work" DDUM_BIN=/opt/ddum/ddum DDUM_HOST_MNTNS DDUM_SANDBOX
node_modules/.bin/bun test --timeout 300000 ./tests/system/logins.sys.ts
