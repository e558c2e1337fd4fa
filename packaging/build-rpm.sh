#!/usr/bin/env bash
# Build dist/ddum-VERSION-1.ARCH.rpm from a compiled binary with rpmbuild (Debian's rpm package
# has it). usage: packaging/build-rpm.sh ARCH BINARY      (ARCH: x86_64 or aarch64)
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:?arch}
bin=$(realpath "${2:?binary}")
version=$(node -p "require('./package.json').version")
top=$PWD/.tmp/rpm-$arch
rm -rf "$top"
mkdir -p "$top" dist
# --target: the binary is already built for ARCH; rpmbuild only packs it and reads its ELF
# dependencies. No debug package and no strip (see the spec).
rpmbuild -bb --quiet --target "$arch-linux" \
  --define "_topdir $top" --define "_rpmdir $top/out" --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
  --define "ddum_version $version" --define "ddum_binary $bin" --define "ddum_src $PWD" \
  packaging/rpm/ddum.spec >/dev/null
out="dist/ddum-$version-1.$arch.rpm"
mv "$top/out/ddum-$version-1.$arch.rpm" "$out"
rm -rf "$top"
echo "$out"
