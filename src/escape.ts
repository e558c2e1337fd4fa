// How every human-readable report (sync, status, check, user and group show and list, import, the
// log) shows a control character: the one place that decides it.

// Control characters: C0, DEL, C1, and the line and paragraph separators. Each is shown as its
// JSON escape (\u001b, \n, \u009b), in every human-readable report, so no value can move the
// cursor, set a terminal's title, or start a line that looks like ddum's own.
const CONTROL_CHAR = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
const escapeChar = (c: string): string => (c < " " ? JSON.stringify(c).slice(1, -1) : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
export const quoted = (s: string): string => JSON.stringify(s).replace(CONTROLS, escapeChar);

/** A value for a human-readable report: as it is when it holds no control character, else JSON-quoted with them escaped. */
export function terminalSafe(s: string): string {
  return CONTROL_CHAR.test(s) ? quoted(s) : s;
}

/** A line of a human-readable report with any control character left in it escaped the same way. */
export function escapeControls(line: string): string {
  return CONTROL_CHAR.test(line) ? line.replace(CONTROLS, escapeChar) : line;
}
