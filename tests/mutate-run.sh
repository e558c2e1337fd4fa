#!/usr/bin/env bash
# The test command StrykerJS runs for each mutant (make mutate): the tests that guard the safety
# modules, fastest first, stopping at the first failure. MUTATE_TESTS="tests/a.test.ts ..." runs
# only those (tests/mutate.ts sets it for each group and stage). The executable they start is the sandbox's
# dist/ddum, built once from the instrumented sources; the active mutant reaches it through the
# environment (__STRYKER_ACTIVE_MUTANT__).
set -euo pipefail
default=(
  tests/rulebook.test.ts tests/model.test.ts tests/plan.test.ts tests/judge.test.ts tests/apply.test.ts tests/keyledger.test.ts
  tests/compat-hashes.test.ts tests/compat-tables.test.ts tests/pagememo.test.ts tests/localdb.test.ts
  tests/rules.test.ts tests/sync.test.ts tests/locks.test.ts tests/keyfiles.test.ts tests/homes.test.ts
  tests/homebuild.test.ts tests/homepaths.test.ts
)
# shellcheck disable=SC2206
files=(${MUTATE_TESTS:-${default[*]}})
# The sandbox's node_modules is a link to the project's; the project's own bun when it is not there.
bun=node_modules/.bin/bun
[ -x "$bun" ] || bun=$(command -v bun)
exec "$bun" test --bail --timeout 120000 "${files[@]}"
