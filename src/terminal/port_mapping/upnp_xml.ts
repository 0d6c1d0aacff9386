/**
 * A minimal, defensive XML reader for what UPnP gateways send (device descriptions and SOAP
 * envelopes). It knows elements, text, CDATA, comments and processing instructions, and the
 * five predefined entities plus character references. A document type declaration (and with
 * it every entity definition: "billion laughs", external entities) is refused outright, as are
 * documents over a size, depth or element count limit. Namespace prefixes are dropped: an
 * element is known by its local name.
 *
 * @module
 */
import { UPNP_MAX_XML_DEPTH, UPNP_MAX_XML_ELEMENTS } from "../../limits.ts";

/** One element: local name, child elements and the text directly inside it. */
export interface XmlElement {
  /** Local name (after any `prefix:`). */
  name: string;
  /** Child elements in document order. */
  children: XmlElement[];
  /** Text directly inside this element (entities decoded, not trimmed). */
  text: string;
}

/** Why a document was refused. */
export class XmlRefused extends Error {}

/** Limits of {@link parseXml}. */
export interface XmlLimits {
  /** Longest document, in UTF-16 code units. */
  maxLength: number;
  /** Deepest nesting; default {@link UPNP_MAX_XML_DEPTH}. */
  maxDepth?: number;
  /** Most elements; default {@link UPNP_MAX_XML_ELEMENTS}. */
  maxElements?: number;
}

const NAME = /^[A-Za-z_][\w.:-]*/;
const ENTITIES: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

function decodeText(raw: string): string {
  return raw.replace(/&([^;&<]{0,10});|&/g, (whole, body: string | undefined) => {
    if (body === undefined) throw new XmlRefused("a bare '&' in text");
    const named = ENTITIES[body];
    if (named !== undefined) return named;
    const m = /^#(?:x([0-9a-fA-F]{1,6})|([0-9]{1,7}))$/.exec(body);
    const code = m ? parseInt(m[1] ?? m[2]!, m[1] ? 16 : 10) : NaN;
    if (!(code > 0 && code <= 0x10ffff) || (code >= 0xd800 && code <= 0xdfff)) {
      throw new XmlRefused(`an unknown entity ${JSON.stringify(whole)}`);
    }
    return String.fromCodePoint(code);
  });
}

/** Parses `text` into its root element, or throws {@link XmlRefused}. */
export function parseXml(text: string, limits: XmlLimits): XmlElement {
  const maxDepth = limits.maxDepth ?? UPNP_MAX_XML_DEPTH;
  const maxElements = limits.maxElements ?? UPNP_MAX_XML_ELEMENTS;
  if (text.length > limits.maxLength) {
    throw new XmlRefused(`the document is over ${limits.maxLength} characters`);
  }
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  let count = 0;
  let i = 0;
  const fail = (why: string): never => {
    throw new XmlRefused(`${why} at offset ${i}`);
  };
  while (i < text.length) {
    const lt = text.indexOf("<", i);
    const raw = text.slice(i, lt === -1 ? text.length : lt);
    if (raw.length) {
      const top = stack.at(-1);
      if (top) top.text += decodeText(raw);
      else if (raw.trim()) fail("text outside the root element");
    }
    if (lt === -1) break;
    i = lt;
    if (text.startsWith("<!--", i)) {
      const end = text.indexOf("-->", i + 4);
      if (end === -1) fail("an unterminated comment");
      i = end + 3;
    } else if (text.startsWith("<![CDATA[", i)) {
      const end = text.indexOf("]]>", i + 9);
      const top = stack.at(-1);
      if (end === -1 || !top) fail("a CDATA section outside an element or unterminated");
      top!.text += text.slice(i + 9, end);
      i = end + 3;
    } else if (text.startsWith("<!", i)) {
      fail("a document type or entity declaration (refused: no DTDs)");
    } else if (text.startsWith("<?", i)) {
      const end = text.indexOf("?>", i + 2);
      if (end === -1) fail("an unterminated processing instruction");
      i = end + 2;
    } else if (text.startsWith("</", i)) {
      const name = NAME.exec(text.slice(i + 2, i + 2 + 256))?.[0];
      const end = text.indexOf(">", i);
      if (!name || end === -1 || text.slice(i + 2 + name.length, end).trim()) {
        fail("a malformed end tag");
      }
      const open = stack.pop();
      if (!open || open.name !== localName(name!)) {
        fail(`an end tag </${name}> that closes nothing`);
      }
      i = end + 1;
    } else {
      const name = NAME.exec(text.slice(i + 1, i + 1 + 256))?.[0];
      if (!name) fail("a malformed start tag");
      let j = i + 1 + name!.length;
      // Attributes: name="value" or name='value', values without '<'.
      for (;;) {
        const m = /^\s+([A-Za-z_][\w.:-]*)\s*=\s*("[^"<]*"|'[^'<]*')/.exec(text.slice(j, j + 4096));
        if (!m) break;
        decodeText(m[2]!.slice(1, -1));
        j += m[0].length;
      }
      const close = /^\s*(\/?)>/.exec(text.slice(j, j + 256));
      if (!close) fail("a malformed start tag");
      if (++count > maxElements) fail(`more than ${maxElements} elements`);
      const element: XmlElement = { name: localName(name!), children: [], text: "" };
      const parent = stack.at(-1);
      if (parent) parent.children.push(element);
      else if (root) fail("a second root element");
      else root = element;
      if (!close![1]) {
        stack.push(element);
        if (stack.length > maxDepth) fail(`nesting deeper than ${maxDepth}`);
      }
      i = j + close![0].length;
    }
  }
  if (!root) throw new XmlRefused("no root element");
  if (stack.length) throw new XmlRefused(`<${stack.at(-1)!.name}> is not closed`);
  return root;
}

function localName(name: string): string {
  return name.slice(name.lastIndexOf(":") + 1);
}

/** The first element named `name` below `element` (depth first), itself excluded. */
export function findElement(element: XmlElement, name: string): XmlElement | undefined {
  for (const child of element.children) {
    if (child.name === name) return child;
    const found = findElement(child, name);
    if (found) return found;
  }
  return undefined;
}

/** Every element named `name` below `element` (depth first). */
export function findElements(element: XmlElement, name: string): XmlElement[] {
  const out: XmlElement[] = [];
  for (const child of element.children) {
    if (child.name === name) out.push(child);
    out.push(...findElements(child, name));
  }
  return out;
}

/** The trimmed text of the first direct child named `name`, or undefined. */
export function childText(element: XmlElement, name: string): string | undefined {
  return element.children.find((c) => c.name === name)?.text.trim();
}

/** Escapes text for an XML element's content. */
export function escapeXml(text: string): string {
  return text.replace(
    /[<>&'"]/g,
    (c) => `&${{ "<": "lt", ">": "gt", "&": "amp", "'": "apos", '"': "quot" }[c]};`,
  );
}
