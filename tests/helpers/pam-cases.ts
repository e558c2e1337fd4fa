// How pam_unix's account check answers for shadow fields, relative to today (T), as pamtester
// showed it: the unit test of pamAccepts and the system test against real PAM share this table.
/** [what, shadow fields 2..7 (last change, min, max, warn, inactive, expire), accepted]. */
export const PAM_CASES: [string, (T: number) => string, boolean][] = [
  ["no ageing, no expiry", () => ":::::", true],
  ["expiry day 0 (1970-01-01)", () => ":::::0", false],
  ["expiry today", (T) => `:::::${T}`, false],
  ["expiry tomorrow", (T) => `:::::${T + 1}`, true],
  ["expiry yesterday", (T) => `:::::${T - 1}`, false],
  ["expiry -1 written out", () => ":::::-1", false],
  ["password changed day 1, max 0, inactive 0 (expired)", () => "1::0::0:", false],
  ["password changed day 1, max 0, no inactive limit (must change)", () => "1::0:::", false],
  ["must change at next login (last change day 0)", () => "0:::::", false],
  ["no last change, max 90 (must change)", () => "::90:::", false],
  ["changed in the future, max 0", (T) => `${T + 5}::0::0:`, true],
  ["changed 90 days ago, max 90", (T) => `${T - 90}::90:::`, true],
  ["changed 91 days ago, max 90", (T) => `${T - 91}::90:::`, false],
  ["changed 121 days ago, max 90, inactive 30", (T) => `${T - 121}::90::30:`, false],
  ["changed 30 days ago, max 90, inactive 30, expiry in a year", (T) => `${T - 30}::90::30:${T + 365}`, true],
];

/** A shadow entry's fields for a case. */
export const pamCaseFields = (name: string, fields: string): string[] => [name, "!", ...fields.split(":"), ""];
