// A stop asked for by a signal (SIGTERM from systemd, SIGINT): a pass that has not applied
// anything yet stops before it takes the locks; one making homes finishes the home in hand,
// makes no more, and reports the rest as not made.
export const stopSignal = { requested: null as string | null };
