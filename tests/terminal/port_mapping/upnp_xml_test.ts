import assert from "node:assert/strict";
import {
  childText,
  escapeXml,
  findElement,
  parseXml,
  XmlRefused,
} from "../../../src/terminal/port_mapping/upnp_xml.ts";

const LIMITS = { maxLength: 4096 };

Deno.test("UPnP XML: namespaces, entities, CDATA, comments and PIs are read", () => {
  const root = parseXml(
    `<?xml version="1.0"?><!-- hi --><s:Envelope xmlns:s="a" s:x='1'><s:Body>
     <u:R xmlns:u="b"><A>a &lt;&amp;&gt; &#65;&#x42;</A><B><![CDATA[<raw>&]]></B><C/></u:R>
     </s:Body></s:Envelope>`,
    LIMITS,
  );
  assert.equal(root.name, "Envelope");
  const r = findElement(root, "R")!;
  assert.equal(childText(r, "A"), "a <&> AB");
  assert.equal(childText(r, "B"), "<raw>&");
  assert.equal(childText(r, "C"), "");
  assert.equal(childText(r, "D"), undefined);
});

Deno.test("UPnP XML: malformed or hostile documents are refused", () => {
  for (
    const text of [
      "",
      "text only",
      "<a></b>",
      "<a>",
      "<a/><b/>",
      "<a>&#0;</a>",
      "<a>&#xD800;</a>",
      "<a>& b</a>",
      "<a>&amp</a>",
      '<!DOCTYPE a SYSTEM "http://x/">' + "<a/>",
      "<a><!ENTITY x 'y'></a>",
      "<a><!-- never closed</a>",
      '<a b="<"/>',
      "<1a/>",
      "x".repeat(5000),
    ]
  ) {
    assert.throws(() => parseXml(text, LIMITS), XmlRefused, JSON.stringify(text.slice(0, 40)));
  }
});

Deno.test("UPnP XML: escaping round-trips through the parser", () => {
  const nasty = `<>&'"\u00e9 x`;
  assert.equal(parseXml(`<a>${escapeXml(nasty)}</a>`, LIMITS).text, nasty);
});
