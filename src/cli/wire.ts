/**
 * Turns a configuration into live objects: mail senders and sources, key files, stores.
 *
 * @module
 */
import type { ReceiveConfig, SendConfig } from "../config/config.ts";
import { ConfigError, MessageError } from "../errors.ts";
import { JsonFileStore } from "../host/json_file_store.ts";
import { MaildirSender } from "../mail/maildir_sender.ts";
import { MaildirSource } from "../mail/maildir_source.ts";
import type { MailSender, MailSource } from "../mail/types.ts";
import { type HostCard, parseHostCard } from "../message/host_card.ts";
import {
  decodeHostKeys,
  decodeIdentityKeys,
  type HostKeys,
  type IdentityKeys,
} from "../message/key_file.ts";
import type { Clock } from "../runtime.ts";

/** Opens the mail sender a role is configured with. */
export function openSender(config: SendConfig): MailSender {
  switch (config.kind) {
    case "local":
      return new MaildirSender(config.postOffice);
    case "smtp":
      throw new ConfigError(
        "ECONFIG",
        'Cannot send by SMTP: this build has only the local post office; set send.kind = "local"',
      );
  }
}

/** Opens the mail source a role is configured with. */
export function openSource(
  config: ReceiveConfig,
  options: { pollIntervalMs: number; clock?: Clock },
): MailSource {
  switch (config.kind) {
    case "local":
      return new MaildirSource(config.maildir, options);
    case "imap":
    case "pop3":
      throw new ConfigError(
        "ECONFIG",
        `Cannot read mail by ${config.kind.toUpperCase()}: this build has only the local post office; set receive.kind = "local"`,
      );
  }
}

async function readKeyFile(path: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    throw new ConfigError(
      "ECONFIG",
      `Cannot read the ${what} ${path}: ${
        (err as Error).message
      }; create it with \`mailpeer keygen\``,
      {
        cause: err,
      },
    );
  }
}

/** Loads the host's key file. */
export async function loadHostKeys(path: string): Promise<HostKeys> {
  return await decodeHostKeys(await readKeyFile(path, "host key file"));
}

/** Loads a terminal's identity key file. */
export async function loadIdentity(path: string): Promise<IdentityKeys> {
  return await decodeIdentityKeys(await readKeyFile(path, "identity key file"));
}

/** Parses the host cards of a terminal configuration, naming the bad one. */
export function parseHostCards(cards: string[]): HostCard[] {
  return cards.map((card, i) => {
    try {
      return parseHostCard(card);
    } catch (err) {
      if (err instanceof MessageError) {
        throw new ConfigError("ECONFIG", `Cannot read terminal.hosts[${i}]: ${err.message}`, {
          cause: err,
        });
      }
      throw err;
    }
  });
}

/** Opens the host's control table. */
export function openStore(path: string): JsonFileStore {
  return new JsonFileStore(path);
}
