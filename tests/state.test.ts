// The state file's fast reader against JSON.parse: the same value for every text it takes, and
// it takes no text JSON.parse would refuse.
import { describe, expect, test } from "bun:test";
import { parseStateText } from "../src/state.ts";

// A small seeded generator, so a failure can be replayed.
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}
const ALPHABET = ["a", "b", "z", "0", "9", ".", "_", "-", "]", "[", ",", ":", " ", "{", "}", "é", "ü", "😀", "x"];
const ODD = ['"', "\\", "\n", "\t", "\u0001"];

function state(r: () => number, odd: boolean) {
  const name = () => {
    let n = "";
    const len = Math.floor(r() * 8);
    for (let i = 0; i < len; i++) n += odd && r() < 0.05 ? ODD[Math.floor(r() * ODD.length)] : ALPHABET[Math.floor(r() * ALPHABET.length)];
    return n;
  };
  const names = () => Array.from({ length: Math.floor(r() * 6) }, name);
  const lists = () => Object.fromEntries(Array.from({ length: Math.floor(r() * 4) }, () => [name(), names()]));
  return { version: 1, ownership: { users: names(), groups: names(), members: lists(), admins: lists() } };
}

describe("parseStateText", () => {
  test("gives JSON.parse's value for 500 random state files as ddum writes them", () => {
    const r = rng(7);
    let fast = 0;
    for (let i = 0; i < 500; i++) {
      const odd = i % 2 === 1;
      const text = `${JSON.stringify(state(r, odd))}\n`;
      const got = parseStateText(text);
      if (got === undefined) {
        // Declined: only for text with escapes or control characters.
        expect([i, /[\\\u0000-\u001f]/.test(text.slice(0, -1))]).toEqual([i, true]);
        continue;
      }
      fast++;
      expect([i, got]).toEqual([i, JSON.parse(text)]);
    }
    expect(fast).toBeGreaterThan(250);
  });

  test("takes no text JSON.parse refuses, and gives JSON.parse's value for every mutated text it takes", () => {
    const r = rng(11);
    const pieces = ["]", "[", '"', ",", " ", "}", "{", "1", ':"x"', '],"groups":[', '],"members":', "null"];
    let taken = 0;
    for (let i = 0; i < 2000; i++) {
      const text = JSON.stringify(state(r, false));
      const at = Math.floor(r() * (text.length + 1));
      const cut = r() < 0.3 ? Math.floor(r() * 3) : 0;
      const mutated = text.slice(0, at) + pieces[Math.floor(r() * pieces.length)] + text.slice(at + cut);
      let parsed: unknown;
      try {
        parsed = JSON.parse(mutated);
      } catch {
        parsed = undefined;
      }
      const got = parseStateText(mutated);
      if (got === undefined) continue;
      taken++;
      expect([i, mutated, parsed !== undefined]).toEqual([i, mutated, true]);
      expect([i, got] as unknown[]).toEqual([i, parsed]);
    }
    expect(taken).toBeGreaterThan(50);
  });

  test.each([
    ['{"version":1,"ownership":{"users":[],"groups":[],"members":{},"admins":{}}}\n', true],
    ['{"version":1,"ownership":{"users":[""],"groups":["g"],"members":{"g":[]},"admins":{}}}', true],
    ['{"version":2,"ownership":{"users":[],"groups":[],"members":{},"admins":{}}}', false],
    ['{"version":1, "ownership":{"users":[],"groups":[],"members":{},"admins":{}}}', false],
    ['{"version":1,"ownership":{"users":["a","b\\"c"],"groups":[],"members":{},"admins":{}}}', false],
    ['{"version":1,"ownership":{"users":["a",1],"groups":[],"members":{},"admins":{}}}', false],
    ['{"version":1,"ownership":{"users":["a"],"groups":[],"members":{},"admins":{}}}}', false],
  ])("%s taken: %p", (text, taken) => {
    const got = parseStateText(text);
    expect(got !== undefined).toBe(taken);
    if (taken) expect(got).toEqual(JSON.parse(text));
  });
});
