import pkg from "../package.json" with { type: "json" };

// Set at build time (bun build --define, see packaging/build-info.sh); absent when run from source.
declare const DDUM_COMMIT: string | undefined;
declare const DDUM_BUILD_DATE: string | undefined;

export const VERSION: string = pkg.version;

/** The version line of --version: version, commit, build date, platform and runtime. */
export function versionLine(): string {
  const commit = typeof DDUM_COMMIT === "string" ? DDUM_COMMIT : "unknown (run from source)";
  const built = typeof DDUM_BUILD_DATE === "string" ? DDUM_BUILD_DATE : "not built";
  return `ddum ${VERSION} (commit ${commit}, built ${built}, ${process.platform} ${process.arch}, bun ${Bun.version})`;
}
