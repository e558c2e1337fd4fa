// Warnings raised deep inside a command (a request tried again) reach the command's logger
// through this one sink, set once by the CLI; by default they go nowhere.
let sink: ((line: string) => void) | undefined;

export function setNoticeSink(fn: ((line: string) => void) | undefined): void {
  sink = fn;
}

export function notice(line: string): void {
  sink?.(line);
}
