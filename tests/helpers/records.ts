import type { User } from "../../src/model.ts";
import type { Policy } from "../../src/plan.ts";

/** A user record as a minimal item decodes: name, IDs (GID = UID), home and shell; nothing else. */
export function bareUser(name: string, uid: number, over: Partial<User> = {}): User {
  return {
    name,
    uid,
    gid: uid,
    realName: "",
    home: `/home/${name}`,
    shell: "/bin/sh",
    password: null,
    lastChange: null,
    minDays: null,
    maxDays: null,
    warnDays: null,
    inactiveDays: null,
    expire: null,
    sshKeys: [],
    ...over,
  };
}

/** A plan's policy for the planner's unit tests: the usual ranges, nothing adopted or merged, missing users kept, no brake. */
export function planPolicy(more: Partial<Policy> = {}): Policy {
  return {
    uidMin: 1000,
    uidMax: 60000,
    gidMin: 1000,
    gidMax: 60000,
    adoptUsers: [],
    adoptGroups: [],
    missingUsers: "keep",
    maxDisablePercent: 100,
    force: false,
    ...more,
  };
}
