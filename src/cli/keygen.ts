/**
 * `mailpeer keygen`: creates a host key file (and prints its host card) or a terminal
 * identity key file.
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { ConfigError } from "../errors.ts";
import { formatCheckedHostCard, formatHostCard } from "../message/host_card.ts";
import {
  encodeHostKeys,
  encodeIdentityKeys,
  generateHostKeys,
  generateIdentityKeys,
  hostCardOf,
} from "../message/key_file.ts";
import { formatPeerRef, keyFingerprint } from "../message/key_fingerprint.ts";
import { loadHostKeys, loadIdentity } from "./wire.ts";

async function writeSecretFile(path: string, text: string, force: boolean): Promise<void> {
  try {
    await Deno.writeTextFile(path, text + "\n", { createNew: !force, mode: 0o600 });
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      throw new ConfigError(
        "ECONFIG",
        `Cannot write ${path}: the file exists; pass --force to replace it (the old keys are then lost)`,
        {
          cause: err,
        },
      );
    }
    throw new ConfigError(
      "ECONFIG",
      `Cannot write ${path}: ${(err as Error).message}; check the directory`,
      { cause: err },
    );
  }
}

/** The `keygen` subcommand. */
export function keygenCommand() {
  return new Command("keygen")
    .description("create a host key file (--host EMAIL) or a terminal identity (--user ID)")
    .option("--host <email>", "create host keys for this mailbox address and print the host card")
    .option("--user <id>", "create a terminal identity for this user id")
    .option("--card <file>", "print the host card of an existing host key file")
    .option(
      "--fingerprint <file>",
      "print user@fingerprint of an identity file (for terminal.allow and terminal.deny)",
    )
    .option("-o, --out <file>", "where to write the key file")
    .option("--force", "replace an existing key file")
    .option("--json", "print the result as one JSON object")
    .action(async (opts, cmd) => {
      const out = (s: unknown) =>
        Deno.stdout.write(
          new TextEncoder().encode(typeof s === "string" ? s + "\n" : JSON.stringify(s) + "\n"),
        );
      if (opts.card) {
        const hostCard = hostCardOf(await loadHostKeys(opts.card));
        // People get the card with its check against typos; JSON also the canonical form mail
        // carries (docs/config.md "Keys").
        const checked = formatCheckedHostCard(hostCard);
        await out(
          opts.json ? { event: "host-card", card: formatHostCard(hostCard), checked } : checked,
        );
        return;
      }
      if (opts.fingerprint) {
        const keys = await loadIdentity(opts.fingerprint);
        const peer = formatPeerRef(keys.userId, keys.ed25519.publicKey);
        await out(
          opts.json
            ? {
              event: "fingerprint",
              userId: keys.userId,
              fingerprint: keyFingerprint(keys.ed25519.publicKey),
              peer,
            }
            : peer,
        );
        return;
      }
      if (!!opts.host === !!opts.user) {
        cmd.error(
          "error: give exactly one of --host EMAIL, --user ID, --card or --fingerprint FILE",
          {
            exitCode: 2,
          },
        );
      }
      if (opts.host) {
        const keys = await generateHostKeys(opts.host);
        const path = opts.out ?? "host.keys.json";
        await writeSecretFile(path, encodeHostKeys(keys), opts.force ?? false);
        const card = formatHostCard(hostCardOf(keys));
        const checked = formatCheckedHostCard(hostCardOf(keys));
        await out(
          opts.json
            ? { event: "keys-written", path, card, checked }
            : `wrote ${path}\nhost card (give it to your terminals):\n${checked}`,
        );
      } else {
        const keys = await generateIdentityKeys(opts.user!);
        const path = opts.out ?? "identity.json";
        await writeSecretFile(path, encodeIdentityKeys(keys), opts.force ?? false);
        const fingerprint = keyFingerprint(keys.ed25519.publicKey);
        await out(
          opts.json
            ? {
              event: "keys-written",
              path,
              userId: opts.user,
              fingerprint,
              peer: formatPeerRef(keys.userId, keys.ed25519.publicKey),
            }
            : `wrote ${path} for user ${opts.user}\n` +
              `for the allow-lists of your peers (terminal.allow):\n` +
              formatPeerRef(keys.userId, keys.ed25519.publicKey),
        );
      }
    });
}
