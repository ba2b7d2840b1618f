"""A real SMTP server for tests/it/alerts.rs (aiosmtpd): listens on 127.0.0.1:0, prints its
port on the first line, and writes each message it receives to DIR/<n>.eml, decoded (headers
and the text body as Python's email package reads them: encoded words and quoted-printable
or base64 undone), so the test reads what a mail client shows.

Usage: smtp_sink.py DIR [CERT KEY]   (with CERT and KEY: STARTTLS offered and required)
"""
import asyncio
import email
import email.policy
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP


class Store:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        path = os.path.join(self.directory, f"{self.count}.eml")
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        text = "".join(f"{k}: {v}\n" for k, v in msg.items())
        text += "\n" + msg.get_body(preferencelist=("plain",)).get_content()
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
        os.rename(path + ".tmp", path)
        return "250 OK"


async def main():
    directory = sys.argv[1]
    context = None
    if len(sys.argv) >= 4:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
    handler = Store(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            tls_context=context,
            require_starttls=context is not None,
            hostname="sink.test",
        ),
        "127.0.0.1",
        0,
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


asyncio.run(main())
