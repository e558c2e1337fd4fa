#!/usr/bin/env bash
# Build dist/ddum_VERSION_ARCH.deb from a compiled binary with dpkg-deb.
# usage: packaging/build-deb.sh ARCH BINARY      (ARCH: amd64 or arm64)
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:?arch}
bin=${2:?binary}
version=$(node -p "require('./package.json').version")
stage=.tmp/deb-$arch
rm -rf "$stage"
install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/usr/sbin" "$stage/lib/systemd/system" \
  "$stage/usr/share/man/man8" "$stage/usr/share/doc/ddum/sshd_config.d"

# Never strip: the program is embedded in the executable.
install -m 0755 "$bin" "$stage/usr/bin/ddum"
# The old daemon's name: invoked as dynamodb-user-manager, ddum takes its command line.
ln -s ../bin/ddum "$stage/usr/sbin/dynamodb-user-manager"
install -m 0644 packaging/systemd/ddum.service packaging/systemd/ddum.timer packaging/systemd/ddum-daemon.service \
  "$stage/lib/systemd/system/"
gzip -9n < packaging/ddum.8 > "$stage/usr/share/man/man8/ddum.8.gz"
chmod 0644 "$stage/usr/share/man/man8/ddum.8.gz"
install -m 0644 README.md packaging/dynamodb-user-manager.cfg.example packaging/iam-policy.json packaging/iam-policy-admin.json "$stage/usr/share/doc/ddum/"
install -m 0644 packaging/sshd_config.d/*.conf "$stage/usr/share/doc/ddum/sshd_config.d/"
install -m 0644 packaging/debian/copyright "$stage/usr/share/doc/ddum/copyright"

# No conffile: the admin's /etc/dynamodb-user-manager.cfg is theirs and the package never ships it.
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" packaging/debian/control > "$stage/DEBIAN/control"
for s in postinst prerm postrm; do install -m 0755 "packaging/debian/$s" "$stage/DEBIAN/$s"; done
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$stage/DEBIAN/md5sums"

mkdir -p dist
out="dist/ddum_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zgzip --build "$stage" "$out" >/dev/null
echo "$out"
