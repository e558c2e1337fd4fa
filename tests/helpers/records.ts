import type { User } from "../../src/model.ts";

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
