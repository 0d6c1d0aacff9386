/**
 * Reads a Thunderbird autoconfig document (`config-v1.1.xml`, the format of the ISPDB and of
 * `autoconfig.<domain>`): `clientConfig/emailProvider/incomingServer` (IMAP, POP3) and
 * `outgoingServer` (SMTP), each with `hostname`, `port`, `socketType` (`SSL`, `STARTTLS`,
 * `plain`) and `username` (`%EMAILADDRESS%`, `%EMAILLOCALPART%`, `%EMAILDOMAIN%`).
 *
 * The document comes from the network and is treated as hostile: a small, strict XML reader of
 * its own (no DTD, so no entity expansion; only the five predefined and numeric character
 * references), bounded in size, element count and depth (`src/limits.ts`), and every server it
 * names is checked by {@link serverCandidate} before it becomes a candidate. Servers without
 * TLS (`socketType` plain) are dropped: a password must not cross the network in clear text.
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import {
  AUTOCONFIG_MAX_BYTES,
  AUTOCONFIG_MAX_DEPTH,
  AUTOCONFIG_MAX_ELEMENTS,
  DISCOVERY_MAX_CANDIDATES,
} from "../limits.ts";
import {
  type DiscoverySource,
  type ServerCandidate,
  serverCandidate,
  type ServerProtocol,
} from "./server_candidate.ts";

/** One XML element: name, attributes, child elements and its own text. */
export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  text: string;
}

/** What an autoconfig document offered: checked candidates, and notes on what was dropped. */
export interface AutoconfigResult {
  candidates: ServerCandidate[];
  notes: string[];
}

const NAME = /^[A-Za-z_][A-Za-z0-9_.:-]*/;
const ATTRIBUTE = /^\s+([A-Za-z_][A-Za-z0-9_.:-]*)\s*=\s*(?:"([^"<]*)"|'([^'<]*)')/;
const ENTITIES: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

function bad(what: string): ConfigError {
  return new ConfigError(
    "EDISCOVER",
    `Cannot read the autoconfig document: ${what}; ask the provider for its server settings, or pass them to mailpeer init by hand`,
  );
}

/** Replaces character references; an unknown entity (a DTD's) is refused. */
function unescape(text: string): string {
  if (/&(?![^;&\s]{1,10};)/.test(text)) throw bad("it holds a bare '&'");
  return text.replace(/&([^;&\s]{1,10});/g, (_, ref: string) => {
    if (ref in ENTITIES) return ENTITIES[ref]!;
    const code = ref.startsWith("#x")
      ? parseInt(ref.slice(2), 16)
      : ref.startsWith("#")
      ? parseInt(ref.slice(1), 10)
      : NaN;
    if (!Number.isInteger(code) || code <= 0 || code > 0x10ffff) {
      throw bad(`it uses the unknown entity &${ref.slice(0, 10)};`);
    }
    return String.fromCodePoint(code);
  });
}

/**
 * Parses `text` as XML into its root element. Refuses a DOCTYPE (and with it every entity
 * declaration), documents over `AUTOCONFIG_MAX_BYTES`, `AUTOCONFIG_MAX_ELEMENTS` elements or
 * `AUTOCONFIG_MAX_DEPTH` levels, and anything malformed, with a `ConfigError` `EDISCOVER`.
 */
export function parseXml(text: string): XmlElement {
  if (text.length > AUTOCONFIG_MAX_BYTES) {
    throw bad(`it is larger than ${AUTOCONFIG_MAX_BYTES} bytes`);
  }
  let i = 0;
  let count = 0;
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  const skip = (end: string, what: string) => {
    const at = text.indexOf(end, i);
    if (at < 0) throw bad(`${what} is not closed`);
    i = at + end.length;
  };
  while (i < text.length) {
    const lt = text.indexOf("<", i);
    const chunk = lt < 0 ? text.slice(i) : text.slice(i, lt);
    if (chunk.trim() !== "") {
      const top = stack[stack.length - 1];
      if (!top) throw bad("it has text outside its root element");
      top.text += unescape(chunk);
    }
    if (lt < 0) break;
    i = lt;
    if (text.startsWith("<?", i)) {
      skip("?>", "a processing instruction");
    } else if (text.startsWith("<!--", i)) {
      skip("-->", "a comment");
    } else if (text.startsWith("<![CDATA[", i)) {
      const top = stack[stack.length - 1];
      if (!top) throw bad("it has text outside its root element");
      const start = i + 9;
      skip("]]>", "a CDATA section");
      top.text += text.slice(start, i - 3);
    } else if (text.startsWith("<!", i)) {
      throw bad("it has a DOCTYPE or another declaration, which autoconfig never needs");
    } else if (text.startsWith("</", i)) {
      const name = NAME.exec(text.slice(i + 2, i + 2 + 256))?.[0];
      const top = stack.pop();
      if (!name || !top || top.name !== name) throw bad("its elements are not properly nested");
      i += 2 + name.length;
      const close = /^\s*>/.exec(text.slice(i, i + 64));
      if (!close) throw bad(`the end tag of ${name} is malformed`);
      i += close[0].length;
    } else {
      const name = NAME.exec(text.slice(i + 1, i + 1 + 256))?.[0];
      if (!name) throw bad("it has a malformed tag");
      i += 1 + name.length;
      const element: XmlElement = { name, attributes: {}, children: [], text: "" };
      for (;;) {
        const attr = ATTRIBUTE.exec(text.slice(i, i + 4096));
        if (!attr) break;
        element.attributes[attr[1]!] = unescape(attr[2] ?? attr[3] ?? "");
        i += attr[0].length;
      }
      const end = /^\s*(\/?)>/.exec(text.slice(i, i + 64));
      if (!end) throw bad(`the tag ${name} is malformed`);
      i += end[0].length;
      if (++count > AUTOCONFIG_MAX_ELEMENTS) {
        throw bad(`it has more than ${AUTOCONFIG_MAX_ELEMENTS} elements`);
      }
      const parent = stack[stack.length - 1];
      if (parent) parent.children.push(element);
      else if (root) throw bad("it has more than one root element");
      else root = element;
      if (end[1] !== "/") {
        stack.push(element);
        if (stack.length > AUTOCONFIG_MAX_DEPTH) {
          throw bad(`it nests elements deeper than ${AUTOCONFIG_MAX_DEPTH} levels`);
        }
      }
    }
  }
  if (stack.length > 0) throw bad(`the element ${stack[stack.length - 1]!.name} is not closed`);
  if (!root) throw bad("it has no root element");
  return root;
}

function child(e: XmlElement, name: string): string | undefined {
  return e.children.find((c) => c.name === name)?.text.trim();
}

/** The login name a template stands for; undefined when it uses a placeholder we cannot fill. */
function username(template: string | undefined, email: string): string | undefined {
  if (template === undefined || template === "") return undefined;
  const at = email.lastIndexOf("@");
  const filled = template
    .replaceAll("%EMAILADDRESS%", email)
    .replaceAll("%EMAILLOCALPART%", email.slice(0, at))
    .replaceAll("%EMAILDOMAIN%", email.slice(at + 1));
  // deno-lint-ignore no-control-regex -- a login name with control characters is refused
  return /%[A-Z]+%/.test(filled) || /[\x00-\x20\x7f]/.test(filled) ? undefined : filled;
}

const TYPES: Record<string, ServerProtocol> = { imap: "imap", pop3: "pop3", smtp: "smtp" };

/**
 * The servers an autoconfig document offers for `email`, in its order (IMAP, POP3 and SMTP
 * mixed as listed), each checked; servers it names badly, without TLS or of another type
 * become notes instead. Throws `EDISCOVER` when the document is no autoconfig document.
 *
 * @example
 * ```ts
 * const { candidates } = parseAutoconfig(
 *   `<clientConfig version="1.1"><emailProvider id="example.org">
 *      <incomingServer type="imap"><hostname>imap.example.org</hostname><port>993</port>
 *        <socketType>SSL</socketType><username>%EMAILADDRESS%</username></incomingServer>
 *    </emailProvider></clientConfig>`,
 *   { email: "alice@example.org", source: "autoconfig" },
 * );
 * candidates[0]; // { protocol: "imap", hostname: "imap.example.org", port: 993, tls: "implicit", ... }
 * ```
 */
export function parseAutoconfig(
  text: string,
  options: { email: string; source: DiscoverySource },
): AutoconfigResult {
  const root = parseXml(text);
  if (root.name !== "clientConfig") {
    throw bad(`its root element is <${root.name.slice(0, 40)}>, not <clientConfig>`);
  }
  const provider = root.children.find((c) => c.name === "emailProvider");
  if (!provider) throw bad("it has no <emailProvider>");
  const candidates: ServerCandidate[] = [];
  const notes: string[] = [];
  for (const server of provider.children) {
    if (server.name !== "incomingServer" && server.name !== "outgoingServer") continue;
    const type = TYPES[server.attributes.type ?? ""];
    if (!type || (type === "smtp") !== (server.name === "outgoingServer")) {
      notes.push(
        `${options.source}: a server of type ${
          JSON.stringify((server.attributes.type ?? "").slice(0, 20))
        } is not used`,
      );
      continue;
    }
    const socket = (child(server, "socketType") ?? "").toUpperCase();
    const tls = socket === "SSL" ? "implicit" : socket === "STARTTLS" ? "starttls" : undefined;
    const hostname = child(server, "hostname") ?? "";
    if (!tls) {
      notes.push(
        `${options.source}: ${type} ${hostname.slice(0, 80)} without TLS (socketType ${
          JSON.stringify(socket.slice(0, 20))
        }) is not used: the password would cross the network in clear text`,
      );
      continue;
    }
    const portText = child(server, "port") ?? "";
    const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN;
    const login = username(child(server, "username"), options.email);
    const found = serverCandidate({
      protocol: type,
      hostname,
      port,
      tls,
      ...(login !== undefined ? { username: login } : {}),
      source: options.source,
    });
    if (typeof found === "string") notes.push(found);
    else if (candidates.length < DISCOVERY_MAX_CANDIDATES) candidates.push(found);
  }
  return { candidates, notes };
}
