#!/usr/bin/env python3
"""End-to-end smoke check of the mailpeer test mail stack (run by `mailstack.sh smoke`).

alice@a.test submits on 127.0.0.11:587 (STARTTLS + AUTH, certificate checked against the
test CA) to host@host.test; the mail is relayed a.test -> host.test over port 25, delivered by
LMTP, then read back via IMAP 143 (STARTTLS), IMAPS 993, POP3 110 (STLS) and POP3S 995. A mail
to a domain outside the stack is refused; one to an unknown user of b.test bounces to alice. Messages are deleted after.
"""
import imaplib
import json
import poplib
import smtplib
import ssl
import sys
import time
import uuid
from email.message import EmailMessage

TIMEOUT = 15.0


def provider(stack, domain):
    return next(p for p in stack["providers"] if p["domain"] == domain)


def user(prov, local):
    return next(u for u in prov["users"] if u["address"].startswith(local + "@"))


def submit(prov, sender, to, subject, ctx):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender["address"], to, subject
    msg.set_content("mailpeer stack smoke test\n")
    with smtplib.SMTP(prov["ip"], prov["ports"]["submission"], timeout=TIMEOUT) as smtp:
        smtp.starttls(context=ctx)
        smtp.login(sender["user"], sender["password"])
        smtp.send_message(msg)


def imap_find(prov, u, subject, ctx, implicit_tls=False, delete=False):
    """Wait until a mail whose Subject contains `subject` is in INBOX; return its body."""
    if implicit_tls:
        imap = imaplib.IMAP4_SSL(prov["ip"], prov["ports"]["imaps"], ssl_context=ctx, timeout=TIMEOUT)
    else:
        imap = imaplib.IMAP4(prov["ip"], prov["ports"]["imap"], timeout=TIMEOUT)
        imap.starttls(ssl_context=ctx)
    try:
        imap.login(u["user"], u["password"])
        deadline = time.monotonic() + TIMEOUT
        while True:
            imap.select("INBOX")
            _, data = imap.search(None, "SUBJECT", f'"{subject}"')
            ids = data[0].split()
            if ids:
                _, parts = imap.fetch(ids[0], "(RFC822)")
                body = parts[0][1].decode()
                if delete:
                    imap.store(ids[0], "+FLAGS", "\\Deleted")
                    imap.expunge()
                return body
            if time.monotonic() > deadline:
                raise SystemExit(f"smoke: FAIL: no mail '{subject}' for {u['address']} via IMAP")
            time.sleep(0.05)
    finally:
        imap.logout()


def pop3_find(prov, u, subject, ctx, implicit_tls=False, delete=False):
    if implicit_tls:
        pop = poplib.POP3_SSL(prov["ip"], prov["ports"]["pop3s"], context=ctx, timeout=TIMEOUT)
    else:
        pop = poplib.POP3(prov["ip"], prov["ports"]["pop3"], timeout=TIMEOUT)
        pop.stls(context=ctx)
    try:
        pop.user(u["user"])
        pop.pass_(u["password"])
        count, _ = pop.stat()
        for i in range(1, count + 1):
            lines = pop.retr(i)[1]
            text = b"\n".join(lines).decode()
            if subject in text:
                if delete:
                    pop.dele(i)
                return text
        raise SystemExit(f"smoke: FAIL: no mail '{subject}' for {u['address']} via POP3")
    finally:
        pop.quit()


def main():
    stack = json.load(open(sys.argv[1]))
    ctx = ssl.create_default_context(cafile=stack["caFile"])
    a, h = provider(stack, "a.test"), provider(stack, "host.test")
    alice, host = user(a, "alice"), user(h, "host")
    token = uuid.uuid4().hex[:12]
    subject = f"[mailstack smoke] {token}"

    t0 = time.monotonic()
    submit(a, alice, host["address"], subject, ctx)
    t_sent = time.monotonic()
    imap_find(h, host, subject, ctx)
    t_imap = time.monotonic()
    imap_find(h, host, subject, ctx, implicit_tls=True)
    pop3_find(h, host, subject, ctx, implicit_tls=True)
    pop3_find(h, host, subject, ctx, delete=True)
    print(f"smoke: ok  alice@a.test -> host@host.test: submit {1000 * (t_sent - t0):.0f} ms, "
          f"visible in IMAP after {1000 * (t_imap - t0):.0f} ms; read via IMAP 143+993, POP3 110+995")

    # A domain outside the stack is refused at once (550 at RCPT): nothing leaves the machine.
    try:
        submit(a, alice, "nobody@example.com", f"[mailstack smoke refuse] {token}", ctx)
        raise SystemExit("smoke: FAIL: mail to example.com was accepted")
    except smtplib.SMTPRecipientsRefused as e:
        code = e.recipients["nobody@example.com"][0]
        if code != 550:
            raise SystemExit(f"smoke: FAIL: example.com refused with {code}, expected 550")
    print("smoke: ok  nobody@example.com refused with 550 (unknown domain)")

    # An unknown user of another provider: a.test accepts, b.test refuses, a.test bounces a
    # DSN back to alice.
    submit(a, alice, "nobody@b.test", f"[mailstack smoke bounce] {token}", ctx)
    t_b = time.monotonic()
    body = imap_find(a, alice, "Undelivered", ctx, delete=True)
    if token not in body:
        raise SystemExit("smoke: FAIL: alice got a DSN, but not for the smoke mail")
    print(f"smoke: ok  nobody@b.test bounced back to alice@a.test in "
          f"{1000 * (time.monotonic() - t_b):.0f} ms")

if __name__ == "__main__":
    main()
