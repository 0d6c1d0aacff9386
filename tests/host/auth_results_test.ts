import assert from "node:assert/strict";
import fc from "fast-check";
import { parseAuthenticationResults, senderVerified } from "../../src/host/auth_results.ts";

// ---- parser: RFC 8601 appendix B and §2.2 ----

Deno.test("a field saying no checks were made parses as none (RFC 8601 B.2)", () => {
  assert.deepEqual(parseAuthenticationResults("example.org 1; none"), {
    authservId: "example.org",
    version: 1,
    results: [],
  });
  assert.deepEqual(parseAuthenticationResults("example.com; none"), {
    authservId: "example.com",
    results: [],
  });
});

Deno.test("an SPF result with its mail-from domain is read (RFC 8601 B.3)", () => {
  assert.deepEqual(parseAuthenticationResults("example.com; spf=pass smtp.mailfrom=example.net"), {
    authservId: "example.com",
    results: [{ method: "spf", result: "pass", props: { "smtp.mailfrom": "example.net" } }],
  });
});

Deno.test("several results with comments are read in order (RFC 8601 B.4)", () => {
  const header = parseAuthenticationResults(
    "example.com;\r\n          auth=pass (cram-md5) smtp.auth=sender@example.net;\r\n" +
      "          spf=pass smtp.mailfrom=example.net",
  );
  assert.deepEqual(header?.results, [
    { method: "auth", result: "pass", props: { "smtp.auth": "sender@example.net" } },
    { method: "spf", result: "pass", props: { "smtp.mailfrom": "example.net" } },
  ]);
  assert.deepEqual(
    parseAuthenticationResults("example.com; iprev=pass\r\n  policy.iprev=192.0.2.200")?.results,
    [{ method: "iprev", result: "pass", props: { "policy.iprev": "192.0.2.200" } }],
  );
});

Deno.test("two DKIM signatures with comments and header.b are read (RFC 8601 B.6)", () => {
  const header = parseAuthenticationResults(
    "mail-router.example.net;\r\n" +
      "          dkim=pass (good signature) header.d=newyork.example.com\r\n" +
      "                header.b=oINEO8hg;\r\n" +
      "          dkim=fail (bad signature) header.d=mail-router.example.net\r\n" +
      "                header.b=EToRSuvU",
  );
  assert.deepEqual(header, {
    authservId: "mail-router.example.net",
    results: [
      {
        method: "dkim",
        result: "pass",
        props: { "header.d": "newyork.example.com", "header.b": "oINEO8hg" },
      },
      {
        method: "dkim",
        result: "fail",
        props: { "header.d": "mail-router.example.net", "header.b": "EToRSuvU" },
      },
    ],
  });
});

Deno.test("quoted reasons and header.i identities are read (RFC 8601 B.7)", () => {
  const header = parseAuthenticationResults(
    'example.com;\n    dkim=pass reason="good signature"\n' +
      "      header.i=@mail-router.example.net;\n" +
      '    dkim=fail reason="bad signature"\n      header.i=@newyork.example.com',
  );
  assert.deepEqual(header?.results, [
    {
      method: "dkim",
      result: "pass",
      reason: "good signature",
      props: { "header.i": "@mail-router.example.net" },
    },
    {
      method: "dkim",
      result: "fail",
      reason: "bad signature",
      props: { "header.i": "@newyork.example.com" },
    },
  ]);
});

Deno.test("comments may appear between every token (RFC 8601 §2.2)", () => {
  const header = parseAuthenticationResults(
    "foo.example.net (foobar) 1 (baz);\r\n" +
      "    dkim (Because I like it) / 1 (One yay) = (wait for it) fail\r\n" +
      "      policy (A dot can go here) . (like that) expired\r\n" +
      "      (this surprised me) = (as I wasn't expecting it) 1362471462",
  );
  assert.deepEqual(header, {
    authservId: "foo.example.net",
    version: 1,
    results: [{ method: "dkim", result: "fail", props: { "policy.expired": "1362471462" } }],
  });
});

Deno.test("nested comments, quoted values and any letter case are understood", () => {
  const header = parseAuthenticationResults(
    '(outer (inner; spf=pass) still) "mx.host.test" ; ' +
      'SPF=Pass (a (b) c) SMTP.MailFrom="j d"@a.test ' +
      "Header.From=a.test; DKIM=PASS header.d=a.test header.b=ab/c+d==;",
  );
  assert.deepEqual(header, {
    authservId: "mx.host.test",
    results: [
      {
        method: "spf",
        result: "pass",
        props: { "smtp.mailfrom": "j d@a.test", "header.from": "a.test" },
      },
      { method: "dkim", result: "pass", props: { "header.d": "a.test", "header.b": "ab/c+d==" } },
    ],
  });
});

Deno.test("a real-world Gmail-style field is read", () => {
  const header = parseAuthenticationResults(
    "mx.google.com;\r\n" +
      "       dkim=pass header.i=@example.org header.s=20230601 header.b=Xy1AbC9z;\r\n" +
      "       spf=pass (google.com: domain of alice@example.org designates 192.0.2.1 as " +
      "permitted sender) smtp.mailfrom=alice@example.org;\r\n" +
      "       dmarc=pass (p=NONE sp=NONE dis=NONE) header.from=example.org",
  );
  assert.deepEqual(header?.results.map((r) => `${r.method}=${r.result}`), [
    "dkim=pass",
    "spf=pass",
    "dmarc=pass",
  ]);
  assert.equal(header?.results[1]?.props["smtp.mailfrom"], "alice@example.org");
});

Deno.test("garbage is not a field", () => {
  for (
    const text of [
      "",
      "   ",
      "(unclosed comment",
      "example.com",
      "example.com; spf",
      "example.com; spf=",
      "example.com; spf=pass smtp",
      "example.com; spf=pass smtp.mailfrom",
      "example.com; spf=pass smtp.mailfrom=",
      'example.com; spf=pass reason="unterminated',
      "example.com x; spf=pass",
      "example.com; =pass",
      "; spf=pass",
      "example.com; spf=pass (open",
    ]
  ) {
    assert.equal(parseAuthenticationResults(text), undefined, JSON.stringify(text));
  }
});

Deno.test("the parser never throws, whatever the input", () => {
  const pieces = fc.constantFrom(
    "example.com",
    ";",
    " ",
    "\r\n ",
    "(",
    ")",
    '"',
    "\\",
    "=",
    ".",
    "/",
    "1",
    "spf",
    "dkim",
    "pass",
    "none",
    "smtp.mailfrom",
    "header.d",
    "reason",
    "@",
  );
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.array(pieces).map((p) => p.join(""))), (text) => {
      const header = parseAuthenticationResults(text);
      if (header !== undefined) assert.ok(header.authservId.length > 0);
    }),
    { numRuns: 3000 },
  );
});

Deno.test("every well-formed field parses back to what was written", () => {
  const keyword = fc.stringMatching(/^[a-z][a-z0-9-]{0,8}[a-z0-9]$/);
  const value = fc.stringMatching(/^[A-Za-z0-9@.+\/-]{1,20}$/);
  const result = fc.record({
    method: keyword,
    result: keyword,
    props: fc.dictionary(
      fc.tuple(keyword, keyword).map(([a, b]) => `${a}.${b}`),
      value,
      { maxKeys: 3, noNullPrototype: true },
    ),
  }, { noNullPrototype: true });
  fc.assert(
    fc.property(keyword, fc.array(result, { minLength: 1, maxLength: 4 }), (id, results) => {
      const text = `${id};` + results.map((r) =>
        ` ${r.method.toUpperCase()}=${r.result} (c)` +
        Object.entries(r.props).map(([k, v]) => `\r\n\t${k}=${v}`).join("")
      ).join(";");
      assert.deepEqual(parseAuthenticationResults(text), { authservId: id, results });
    }),
  );
});

// ---- senderVerified ----

const mx = { authservId: "mx.host.test", from: "Alice <alice@a.test>" };

Deno.test("an aligned SPF pass from the host's own server verifies the sender", () => {
  assert.deepEqual(senderVerified(["mx.host.test; spf=pass smtp.mailfrom=alice@a.test"], mx), {
    ok: true,
    reason: "spf=pass for a.test, aligned with From a.test",
  });
  assert.equal(senderVerified(["MX.Host.Test; spf=pass smtp.mailfrom=a.test"], mx).ok, true);
});

Deno.test("an aligned DKIM pass verifies the sender even when SPF fails", () => {
  const v = senderVerified(
    ["mx.host.test; spf=fail smtp.mailfrom=bounce@esp.test; dkim=pass header.d=a.test"],
    mx,
  );
  assert.deepEqual(v, { ok: true, reason: "dkim=pass for a.test, aligned with From a.test" });
  assert.equal(senderVerified(["mx.host.test; dkim=pass header.i=@mail.a.test"], mx).ok, true);
});

Deno.test("a subdomain on either side counts as aligned", () => {
  const ok = (d: string, from: string) =>
    senderVerified([`mx.host.test; dkim=pass header.d=${d}`], { ...mx, from }).ok;
  assert.equal(ok("mail.a.test", "alice@a.test"), true);
  assert.equal(ok("a.test", "alice@eu.a.test"), true);
  assert.equal(ok("A.Test.", "alice@a.test"), true);
  assert.equal(ok("test", "alice@a.test"), false); // a bare TLD never aligns
  assert.equal(ok("xa.test", "alice@a.test"), false);
  assert.equal(ok("b.test", "alice@a.test"), false);
});

Deno.test("a DMARC pass for the From domain verifies the sender", () => {
  const v = senderVerified(["mx.host.test; dmarc=pass header.from=a.test"], mx);
  assert.equal(v.ok, true);
});

Deno.test("a forged field with another authserv-id is ignored", () => {
  const forged =
    "mx.host.test.evil; spf=pass smtp.mailfrom=alice@a.test; dkim=pass header.d=a.test";
  assert.deepEqual(senderVerified([forged, "other.test; dkim=pass header.d=a.test"], mx), {
    ok: false,
    reason: "no Authentication-Results from mx.host.test (2 other(s) ignored)",
  });
  assert.deepEqual(senderVerified([], mx), {
    ok: false,
    reason: "no Authentication-Results from mx.host.test",
  });
  const both = senderVerified([forged, "mx.host.test; spf=fail smtp.mailfrom=alice@a.test"], mx);
  assert.deepEqual(both, { ok: false, reason: "spf=fail for a.test and no aligned dkim=pass" });
});

Deno.test("passes for another domain than the From domain are refused", () => {
  const v = senderVerified(
    ["mx.host.test; spf=pass smtp.mailfrom=x@b.test; dkim=pass header.d=c.test"],
    mx,
  );
  assert.deepEqual(v, {
    ok: false,
    reason: "spf=pass for b.test (not aligned with a.test) and no aligned dkim=pass " +
      "(dkim=pass for c.test is not aligned)",
  });
});

Deno.test("failed, neutral or missing checks do not verify the sender", () => {
  for (
    const value of [
      "mx.host.test; none",
      "mx.host.test; spf=softfail smtp.mailfrom=a.test",
      "mx.host.test; spf=neutral smtp.mailfrom=a.test; dkim=fail header.d=a.test",
      "mx.host.test; spf=pass",
      "mx.host.test; dkim=pass header.s=sel",
      "mx.host.test; auth=pass smtp.auth=alice@a.test",
      "mx.host.test; iprev=pass policy.iprev=192.0.2.1",
    ]
  ) {
    assert.equal(senderVerified([value], mx).ok, false, value);
  }
  assert.equal(
    senderVerified(["mx.host.test; none"], mx).reason,
    "no spf result and no aligned dkim=pass",
  );
});

Deno.test("results from several fields of the host's server are combined", () => {
  const v = senderVerified(
    [
      "mx.host.test; spf=fail smtp.mailfrom=a.test",
      "evil.test; spf=pass smtp.mailfrom=a.test",
      "mx.host.test; dkim=pass header.d=a.test",
    ],
    mx,
  );
  assert.equal(v.ok, true);
});

Deno.test("a From address without a domain is never verified", () => {
  const v = senderVerified(["mx.host.test; spf=pass smtp.mailfrom=a.test"], {
    ...mx,
    from: "alice",
  });
  assert.deepEqual(v, { ok: false, reason: 'From address "alice" has no domain' });
});

Deno.test("no forged field can verify a sender", () => {
  fc.assert(
    fc.property(fc.array(fc.string()), (junk) => {
      const forged = junk.map((j) => `evil.test; spf=pass smtp.mailfrom=a.test; ${j}`);
      assert.equal(senderVerified([...forged, ...junk], mx).ok, false);
    }),
  );
});
