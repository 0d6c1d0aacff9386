/**
 * File transfer over an established {@link PeerLink} (protocol in `docs/apps.md`).
 *
 * Every message starts with a tag byte: `1` = a UTF-8 JSON control message, `2` = file bytes.
 * sender → `{kind:"file", name, size?}` (no size: a stream of unknown length, such as a pipe);
 * receiver → `{kind:"ready"}` or
 * `{kind:"ack", ok:false, reason}`; sender → chunks; sender → `{kind:"end", size, sha256}`;
 * receiver → `{kind:"ack", ok:true}` or `{kind:"ack", ok:false, reason}`. A sender that gives
 * up sends `{kind:"cancel", reason}`. Both sides stream: the file is never held in memory,
 * and each side reuses one chunk buffer (the receiver through `receive({ into })`, so a TCP
 * session decrypts every chunk straight into it).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { basename, join } from "node:path";
import { PeerError } from "../errors.ts";
import type { PeerLink } from "../peer/types.ts";
import {
  CHUNK_TAG,
  type Control,
  decodeControl,
  DEFAULT_CHUNK_BYTES,
  encodeControl,
  malformed,
  receiveControl,
  sanitizeFileName,
} from "./file_transfer_control.ts";

/** Largest file `receiveFile` accepts unless told otherwise (4 GiB). */
export const DEFAULT_MAX_FILE_BYTES = 4 * 1024 ** 3;

/** How far a transfer got, passed to `onProgress`. */
export interface TransferProgress {
  done: number;
  /** Bytes in total; absent while a stream of unknown length (see {@link sendStream}) crosses. */
  total?: number;
}

/** What a finished transfer moved. */
export interface FileTransferResult {
  /** The name as sent (sender) or as written after sanitising (receiver). */
  name: string;
  size: number;
  /** SHA-256 of the content, lowercase hex. */
  sha256: string;
}

/** A file that arrived, and where it was written. */
export interface ReceivedFile extends FileTransferResult {
  path: string;
}

/** Options of {@link sendFile}. */
export interface SendFileOptions {
  /** Name the receiver is told; default the basename of `path`. */
  name?: string;
  /** Bytes per chunk message; default {@link DEFAULT_CHUNK_BYTES}. */
  chunkBytes?: number;
  /** Called after every chunk. */
  onProgress?: (progress: TransferProgress) => void;
  signal?: AbortSignal;
}

/** Options of {@link sendStream}: the name is required, there is no path to take it from. */
export interface SendStreamOptions extends SendFileOptions {
  name: string;
}

/**
 * Bytes to send that are not a regular file: a pipe, standard input, a socket. `read` fills
 * the front of `into` and returns how many bytes it put there, or `null` at the end
 * (`Deno.stdin` and `Deno.FsFile` are such sources).
 */
export interface ByteSource {
  read(into: Uint8Array): Promise<number | null>;
}

/** Options of {@link receiveFile}. */
export interface ReceiveFileOptions {
  /** Largest file accepted; default {@link DEFAULT_MAX_FILE_BYTES}. */
  maxBytes?: number;
  /** Replace an existing file of the same name; default false (the transfer is refused). */
  overwrite?: boolean;
  /** Called after every chunk. */
  onProgress?: (progress: TransferProgress) => void;
  signal?: AbortSignal;
}

/**
 * Local file failures (`EFILE`).
 */
function fileError(message: string, cause: unknown): PeerError {
  return new PeerError("EFILE", message, { cause });
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** Reads until `into` is full or the source ends; returns the bytes read. */
async function readFull(file: ByteSource, into: Uint8Array): Promise<number> {
  let filled = 0;
  while (filled < into.length) {
    const n = await file.read(into.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return filled;
}

/**
 * Sends the file at `path` over `link` and waits for the receiver to confirm that it arrived
 * with the right size and SHA-256. Rejects with `PeerError` `EPEER` when the receiver refuses
 * it or the link fails; an aborted `signal` tells the receiver to discard the partial file.
 *
 * @example
 * ```ts
 * const sent = await sendFile(link, "./map.bin", {
 *   onProgress: ({ done, total }) => console.log(done, "/", total),
 * });
 * console.log(sent.sha256);
 * ```
 */
export async function sendFile(
  link: PeerLink,
  path: string,
  options: SendFileOptions = {},
): Promise<FileTransferResult> {
  const chunkBytes = checkedChunkBytes(options.chunkBytes);
  options.signal?.throwIfAborted();
  const name = options.name ?? basename(path);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (err) {
    throw fileError(`Cannot send file ${path}: ${(err as Error).message}; check the path`, err);
  }
  try {
    const size = (await file.stat()).size;
    return await send(link, file, size, name, chunkBytes, options);
  } finally {
    file.close();
  }
}

/**
 * Sends a stream of unknown length (a pipe, standard input) over `link` as a file named
 * `options.name`, until the source ends, and waits for the receiver to confirm the size and
 * SHA-256 it counted. The receiver enforces its `maxBytes` as the bytes come; progress has no
 * `total`. Errors as {@link sendFile}.
 *
 * @example
 * ```ts
 * // tar c maps | mailpeer-based-app  →  the receiver stores maps.tar
 * const sent = await sendStream(link, Deno.stdin, { name: "maps.tar" });
 * console.log(sent.size, sent.sha256);
 * ```
 */
export async function sendStream(
  link: PeerLink,
  source: ByteSource,
  options: SendStreamOptions,
): Promise<FileTransferResult> {
  const chunkBytes = checkedChunkBytes(options.chunkBytes);
  options.signal?.throwIfAborted();
  return await send(link, source, undefined, options.name, chunkBytes, options);
}

function checkedChunkBytes(chunkBytes = DEFAULT_CHUNK_BYTES): number {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > 8 * 1024 * 1024) {
    throw new RangeError(`chunkBytes must be a whole number from 1 to 8 MiB, got ${chunkBytes}`);
  }
  return chunkBytes;
}

/**
 * The sender's side of the protocol: header, `ready`, chunks until `size` bytes (or, with no
 * `size`, until the source ends), `end`, final `ack`.
 */
async function send(
  link: PeerLink,
  source: ByteSource,
  size: number | undefined,
  name: string,
  chunkBytes: number,
  options: SendFileOptions,
): Promise<FileTransferResult> {
  const { signal, onProgress } = options;
  const what = `send file ${name}`;
  await link.send(
    encodeControl(size === undefined ? { kind: "file", name } : { kind: "file", name, size }),
  );
  const answer = await receiveControl(link, what, signal);
  if (answer.kind === "ack" && !answer.ok) throw refused(name, answer.reason);
  if (answer.kind !== "ready") throw malformed(`"${answer.kind}" where "ready" was expected`);

  // From here the receiver may refuse at any time; listen for that while streaming.
  const listening = new AbortController();
  const final = receiveControl(link, what, listening.signal);
  const answered: { early: Control | Error | null } = { early: null };
  final.then((c) => answered.early = c, (err) => answered.early = err);
  const hash = createHash("sha256");
  let done = 0;
  // Reused for every chunk: send() is awaited before the next read.
  const buffer = new Uint8Array(1 + Math.min(chunkBytes, size ?? chunkBytes));
  buffer[0] = CHUNK_TAG;
  try {
    while ((size === undefined || done < size) && answered.early === null) {
      signal?.throwIfAborted();
      const want = size === undefined ? chunkBytes : Math.min(chunkBytes, size - done);
      let n: number;
      try {
        n = await readFull(source, buffer.subarray(1, 1 + want));
      } catch (err) {
        throw fileError(`Cannot ${what}: ${(err as Error).message}; check the file`, err);
      }
      if (size !== undefined && n < want) {
        throw fileError(
          `Cannot ${what}: the file shrank while it was sent; send it again`,
          "file shrank",
        );
      }
      if (n === 0) break; // the stream ended
      const chunk = buffer.subarray(0, 1 + n);
      hash.update(chunk.subarray(1));
      await link.send(chunk);
      done += n;
      onProgress?.(size === undefined ? { done } : { done, total: size });
      if (n < want) break; // the stream ended inside this chunk
    }
    signal?.throwIfAborted();
  } catch (err) {
    listening.abort();
    await final.catch(() => {});
    if (!answered.early || answered.early instanceof Error) {
      const reason = err instanceof Error ? err.message : String(err);
      await link.send(encodeControl({ kind: "cancel", reason })).catch(() => {});
    }
    throw err;
  }
  const sha256 = hash.digest("hex");
  if (!answered.early) await link.send(encodeControl({ kind: "end", size: done, sha256 }));
  const onAbort = () => listening.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  let ack: Control;
  try {
    ack = await final;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  if (ack.kind !== "ack") throw malformed(`"${ack.kind}" where "ack" was expected`);
  if (!ack.ok) throw refused(name, ack.reason);
  return { name, size: done, sha256 };
}

function refused(name: string, reason = "no reason given"): PeerError {
  return new PeerError(
    "EPEER",
    `Cannot send file ${name}: the receiver refused it (${reason}); fix that and send it again`,
    { cause: reason },
  );
}

/**
 * Receives one file from `link` into `dir`. The file is written to `<name>.part` and renamed
 * to its sanitised name only after its size and SHA-256 match; on any failure the `.part` is
 * deleted and the sender is told why. A size or hash mismatch is `PeerError` `EFRAME`.
 *
 * @example
 * ```ts
 * const got = await receiveFile(link, "./downloads", { maxBytes: 1024 ** 3 });
 * console.log(`${got.path}: ${got.size} bytes, sha256 ${got.sha256}`);
 * ```
 */
export async function receiveFile(
  link: PeerLink,
  dir: string,
  options: ReceiveFileOptions = {},
): Promise<ReceivedFile> {
  const { signal, onProgress, overwrite = false } = options;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_FILE_BYTES;
  signal?.throwIfAborted();
  const header = await receiveControl(link, "receive a file", signal);
  if (header.kind !== "file") throw malformed(`"${header.kind}" where a file header was expected`);
  const name = sanitizeFileName(header.name);
  const path = join(dir, name);
  const part = `${path}.part`;
  const refuse = async (reason: string, problem: string, hint: string): Promise<never> => {
    await link.send(encodeControl({ kind: "ack", ok: false, reason })).catch(() => {});
    throw new PeerError("EPEER", `Cannot receive file ${name}: ${problem}; ${hint}`, {
      cause: reason,
    });
  };
  // A stream of unknown length (no size) is held to maxBytes as its bytes come.
  if (header.size !== undefined && header.size > maxBytes) {
    await refuse(
      `${header.size} bytes is more than the receiver accepts`,
      `it has ${header.size} bytes, more than maxBytes ${maxBytes}`,
      "raise maxBytes or ask for a smaller file",
    );
  }
  if (!overwrite && await exists(path)) {
    await refuse("a file of that name exists", `${path} exists`, "move it away or allow overwrite");
  }
  let file: Deno.FsFile;
  try {
    file = await Deno.open(part, { write: true, createNew: true });
  } catch (err) {
    return await refuse(
      "the receiver cannot store it",
      `${part}: ${(err as Error).message}`,
      "remove a leftover .part file or check the directory",
    );
  }
  let closed = false;
  const closeFile = () => {
    if (!closed) file.close();
    closed = true;
  };
  let tellSender = true;
  try {
    await link.send(encodeControl({ kind: "ready" }));
    const hash = createHash("sha256");
    let done = 0;
    // One buffer for every chunk (each is written and hashed before the next receive); it
    // grows once when the sender's chunks are larger than the default.
    let into = new Uint8Array(1 + DEFAULT_CHUNK_BYTES);
    const mismatch = (what: string) =>
      new PeerError(
        "EFRAME",
        `Cannot receive file ${name}: ${what} mismatch; ask the sender to send it again`,
      );
    while (true) {
      const message = await link.receive({ signal, into });
      if (message === null) {
        tellSender = false;
        throw new PeerError(
          "EPEER",
          `Cannot receive file ${name}: the sender disconnected after ${done}` +
            `${header.size === undefined ? "" : ` of ${header.size}`} bytes; ` +
            "ask the sender to send it again",
        );
      }
      if (message[0] === CHUNK_TAG) {
        const bytes = message.subarray(1);
        if (header.size !== undefined && done + bytes.length > header.size) {
          throw mismatch("size");
        }
        if (done + bytes.length > maxBytes) {
          // Only a stream gets here: a sized header over the limit was refused up front.
          throw new PeerError(
            "EPEER",
            `Cannot receive file ${name}: the stream grew past maxBytes ${maxBytes}; ` +
              "raise maxBytes or ask for a smaller file",
            { cause: "too big" },
          );
        }
        try {
          for (let at = 0; at < bytes.length;) at += await file.write(bytes.subarray(at));
        } catch (err) {
          throw fileError(
            `Cannot receive file ${name}: ${(err as Error).message}; check ${dir}`,
            err,
          );
        }
        hash.update(bytes);
        done += bytes.length;
        onProgress?.(header.size === undefined ? { done } : { done, total: header.size });
        if (message.length > into.length) into = new Uint8Array(message.length);
        continue;
      }
      const control = decodeControl(message);
      if (control.kind === "cancel") {
        tellSender = false;
        throw new PeerError(
          "EPEER",
          `Cannot receive file ${name}: the sender cancelled (${control.reason}); ` +
            "ask the sender to send it again",
          { cause: control.reason },
        );
      }
      if (control.kind !== "end") throw malformed(`"${control.kind}" inside a file transfer`);
      if (control.size !== done || (header.size !== undefined && done !== header.size)) {
        throw mismatch("size");
      }
      const sha256 = hash.digest("hex");
      if (control.sha256 !== sha256 || (header.sha256 && header.sha256 !== sha256)) {
        throw mismatch("hash");
      }
      closeFile();
      if (!overwrite && await exists(path)) {
        throw fileError(
          `Cannot receive file ${name}: ${path} appeared meanwhile; move it away or allow overwrite`,
          "file exists",
        );
      }
      await Deno.rename(part, path);
      await link.send(encodeControl({ kind: "ack", ok: true }));
      return { name, size: done, sha256, path };
    }
  } catch (err) {
    closeFile();
    await Deno.remove(part).catch(() => {});
    if (tellSender) {
      // Tell the sender what went wrong, but never local paths.
      const reason = err instanceof PeerError && err.code === "EFRAME"
        ? err.message
        : err instanceof PeerError && err.cause === "too big"
        ? `more than the receiver accepts (${maxBytes} bytes)`
        : signal?.aborted
        ? "the receiver cancelled"
        : "the receiver could not store it";
      await link.send(encodeControl({ kind: "ack", ok: false, reason })).catch(() => {});
    }
    throw err;
  }
}
