#!/bin/sh
# The --define flags that stamp a build with its commit and date, for `bun build`.
# Values hold no spaces: the output is split into words by the calling shell.
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="${commit}-modified"; fi
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
printf '%s\n' "--define DDUM_COMMIT=\"$commit\" --define DDUM_BUILD_DATE=\"$date\""
