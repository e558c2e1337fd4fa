// Password hashing with the system's own libcrypt (libxcrypt on Debian), through bun:ffi: the
// hash is made by the same code that PAM's pam_unix will check it with. The plaintext lives in
// one buffer of this process, is wiped after use, and is never logged or sent anywhere.
import { CString, dlopen, FFIType, ptr } from "bun:ffi";
import { DdumError } from "./errors.ts";

type Lib = ReturnType<typeof open>;
let lib: Lib | undefined;

function open() {
  for (const name of ["libcrypt.so.1", "libcrypt.so.2", "libcrypt.so"]) {
    try {
      return dlopen(name, {
        crypt_gensalt_rn: {
          args: [FFIType.cstring, FFIType.u64, FFIType.ptr, FFIType.i32, FFIType.ptr, FFIType.i32],
          returns: FFIType.ptr,
        },
        crypt_rn: { args: [FFIType.cstring, FFIType.ptr, FFIType.ptr, FFIType.i32], returns: FFIType.ptr },
      });
    } catch {}
  }
  throw new DdumError("cannot load the system's libcrypt (libcrypt.so.1); install libcrypt1");
}

function libcrypt(): Lib["symbols"] {
  lib ??= open();
  return lib.symbols;
}

export type Scheme = "yescrypt" | "sha512";
export const SCHEME_PREFIX: Record<Scheme, string> = { yescrypt: "$y$", sha512: "$6$" };

/** sizeof(struct crypt_data) in libxcrypt; its first member is the output string. */
const CRYPT_DATA_SIZE = 32768;
const CRYPT_GENSALT_OUTPUT_SIZE = 192;

/** A fresh setting (scheme, cost, random salt) from libcrypt, which takes the salt from the OS. */
export function gensalt(scheme: Scheme): string {
  const out = new Uint8Array(CRYPT_GENSALT_OUTPUT_SIZE);
  const r = libcrypt().crypt_gensalt_rn(Buffer.from(`${SCHEME_PREFIX[scheme]}\0`), 0, null, 0, ptr(out), out.length);
  if (r === null) throw new DdumError(`libcrypt cannot make a ${scheme} salt on this system`);
  return new CString(r).toString();
}

/**
 * crypt(3): hash phrase with setting (a salt from gensalt, or an existing hash to check against).
 * The phrase is given as bytes so the caller can wipe them; this copy is wiped here.
 */
export function crypt(phrase: Uint8Array, setting: string): string {
  if (phrase.includes(0)) throw new DdumError("a password must not contain a NUL byte");
  const p = new Uint8Array(phrase.length + 1);
  p.set(phrase);
  const data = new Uint8Array(CRYPT_DATA_SIZE);
  try {
    const r = libcrypt().crypt_rn(p, ptr(Buffer.from(`${setting}\0`)), ptr(data), data.length);
    if (r === null) throw new DdumError("libcrypt refused to hash the password (unsupported scheme?)");
    const end = data.indexOf(0);
    const out = Buffer.from(data.subarray(0, end)).toString("latin1");
    if (out.startsWith("*")) throw new DdumError("libcrypt refused to hash the password (unsupported scheme?)");
    return out;
  } finally {
    p.fill(0);
    data.fill(0);
  }
}

/** A new hash of phrase in scheme. */
export function hashPassword(phrase: Uint8Array, scheme: Scheme = "yescrypt"): string {
  return crypt(phrase, gensalt(scheme));
}
