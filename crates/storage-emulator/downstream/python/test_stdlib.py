"""The emulator from Python with the standard library only.

Starts the `storage-emulator` binary, reads the announcement (its first stdout
line), issues a Drive grant through the control API, adds a fault, runs a
resumable upload that meets the fault and resumes, and asserts on the journal.

    STORAGE_EMULATOR=path/to/storage-emulator python3 test_stdlib.py

Without STORAGE_EMULATOR, `storage-emulator` is looked up on PATH.
"""

import hashlib
import json
import unittest
import urllib.error
import urllib.request

from storage_emulator import Emulator, control

CHUNK = 256 * 1024  # Drive wants chunks in multiples of 256 KiB


def request(method, url, body=None, headers=None):
    """(status, headers, body bytes) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


class ResumableUploadWithAFault(unittest.TestCase):
    def test_upload_resumes_after_a_503_and_the_journal_shows_it(self):
        with Emulator() as emu:
            grant = control(emu, "POST", "grants", {"provider": "gdrive"})
            self.assertEqual(grant["provider"], "gdrive")
            bearer = {"Authorization": "Bearer " + grant["access_token"]}

            # The first chunk PUT to the content origin answers 503 once.
            added = control(
                emu,
                "POST",
                "faults",
                {
                    "provider": "google",
                    "origin": "content",
                    "method": "PUT",
                    "times": 1,
                    "action": {"kind": "respond", "status": 503},
                },
            )
            (rule_id,) = added["ids"]

            data = bytes(i * 7 % 251 for i in range(2 * CHUNK + 1000))
            total = len(data)
            status, headers, _ = request(
                "POST",
                emu["google"]["upload"] + "files?uploadType=resumable",
                json.dumps({"name": "report.pdf"}).encode(),
                dict(bearer, **{
                    "Content-Type": "application/json; charset=UTF-8",
                    "X-Upload-Content-Type": "application/pdf",
                    "X-Upload-Content-Length": str(total),
                }),
            )
            self.assertEqual(status, 200)
            session = headers["Location"]
            self.assertTrue(session.startswith(emu["origins"]["content"]), session)

            def put(first, chunk):
                last = first + len(chunk) - 1
                return request(
                    "PUT",
                    session,
                    chunk,
                    {"Content-Range": f"bytes {first}-{last}/{total}"},
                )

            status, _, _ = put(0, data[:CHUNK])
            self.assertEqual(status, 503, "the fault answers first")
            # Ask the session what it holds: nothing yet (308 without Range).
            status, headers, _ = request(
                "PUT", session, b"", {"Content-Range": f"bytes */{total}"}
            )
            self.assertEqual(status, 308)
            self.assertIsNone(headers.get("Range"))
            offset = 0
            while True:
                status, headers, body = put(offset, data[offset : offset + CHUNK])
                if status != 308:
                    break
                # The server says what it holds: resume from there.
                offset = int(headers["Range"].split("-")[1]) + 1
            # Drive's docs: "200 OK or 201 Created" when the upload completes.
            self.assertIn(status, (200, 201), body)
            meta = json.loads(body)
            self.assertEqual(meta["name"], "report.pdf")

            # Drive gives sizes as strings, and an md5 of what it stored.
            status, _, body = request(
                "GET",
                emu["google"]["api"]
                + f"files/{meta['id']}?fields=id,size,md5Checksum",
                headers=bearer,
            )
            self.assertEqual(status, 200)
            stored = json.loads(body)
            self.assertEqual(stored["size"], str(total))
            self.assertEqual(stored["md5Checksum"], hashlib.md5(data).hexdigest())
            status, _, body = request(
                "GET", emu["google"]["api"] + f"files/{meta['id']}?alt=media", headers=bearer
            )
            self.assertEqual((status, body), (200, data))

            # The rule acted once, and the journal holds what was sent.
            rules = control(emu, "GET", "faults")
            (rule,) = [r for r in rules if r["id"] == rule_id]
            self.assertEqual(rule["fired"], 1)
            journal = control(emu, "GET", "journal")
            self.assertEqual(journal["tokens"], "redacted")
            entries = journal["entries"]
            puts = [e for e in entries if e["origin"] == "content" and e["method"] == "PUT"]
            ranges = [dict(e["headers"]).get("content-range") for e in puts]
            self.assertEqual(
                ranges,
                [
                    f"bytes 0-{CHUNK - 1}/{total}",
                    f"bytes */{total}",
                    f"bytes 0-{CHUNK - 1}/{total}",
                    f"bytes {CHUNK}-{2 * CHUNK - 1}/{total}",
                    f"bytes {2 * CHUNK}-{total - 1}/{total}",
                ],
            )
            # No Authorization went to the session URI, and the journal hides the token.
            self.assertTrue(all("authorization" not in dict(e["headers"]) for e in puts))
            text = json.dumps(entries)
            self.assertNotIn(grant["access_token"], text)
            self.assertIn("Bearer [redacted]", text)


if __name__ == "__main__":
    unittest.main()
