"""Google's official Python client against the emulator binary.

Uses only what the announcement and the crate README say: an OAuth code flow
with google-auth-oauthlib (PKCE, offline access), then google-api-python-client
on the bundled Drive v3 discovery document with its rootUrl set to the
announcement's API origin. Covers a resumable upload that meets a fault,
download, list, update, trash, a refresh after the access token expires, and
delete.

    STORAGE_EMULATOR=path/to/storage-emulator python test_google_client.py

Needs the packages in requirements-google.txt (`cargo xtask ci` installs them
into a throwaway virtualenv).
"""

import hashlib
import io
import json
import os
import unittest
import urllib.error
import urllib.request

# The emulator speaks plain http on loopback; oauthlib wants https otherwise.
os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"

from google_auth_oauthlib.flow import Flow  # noqa: E402
from googleapiclient import discovery_cache  # noqa: E402
from googleapiclient.discovery import build_from_document  # noqa: E402
from googleapiclient.errors import HttpError  # noqa: E402
from googleapiclient.http import MediaIoBaseDownload, MediaIoBaseUpload  # noqa: E402
from storage_emulator import Emulator, control  # noqa: E402

SCOPE = "https://www.googleapis.com/auth/drive.file"
REDIRECT = "http://127.0.0.1:9/callback"  # never served: the redirect is read, not followed
CHUNK = 256 * 1024


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def sign_in(announcement):
    """The OAuth code flow; the emulator's consent screen answers "Allow" at once."""
    client = announcement["clients"]["google"][0]
    oauth = announcement["oauth"]["google"]
    flow = Flow.from_client_config(
        {
            "web": {
                "client_id": client["client_id"],
                "client_secret": client["client_secret"],
                "auth_uri": oauth["authorize"],
                "token_uri": oauth["token"],
            }
        },
        scopes=[SCOPE],
        redirect_uri=REDIRECT,
    )
    url, state = flow.authorization_url(access_type="offline", prompt="consent")
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(url, timeout=30)
        raise AssertionError("the authorize endpoint did not redirect")
    except urllib.error.HTTPError as err:
        assert err.code == 302, err.code
        callback = err.headers["Location"]
    assert callback.startswith(REDIRECT) and f"state={state}" in callback, callback
    flow.fetch_token(authorization_response=callback)
    return flow.credentials


def drive(announcement, credentials):
    """A Drive v3 service from the bundled discovery document, rooted at the emulator."""
    document = json.loads(discovery_cache.get_static_doc("drive", "v3"))
    document["rootUrl"] = announcement["origins"]["api"]
    return build_from_document(document, credentials=credentials)


class OfficialClient(unittest.TestCase):
    def test_code_flow_then_every_file_operation(self):
        with Emulator() as emu:
            creds = sign_in(emu)
            self.assertTrue(creds.refresh_token, "access_type=offline gives a refresh token")
            service = drive(emu, creds)

            # A resumable upload in 256 KiB chunks; the second chunk meets a 503 once.
            control(emu, "POST", "faults", {
                "provider": "google", "origin": "content", "method": "PUT",
                "skip": 1, "times": 1, "action": {"kind": "respond", "status": 503},
            })
            data = bytes(i * 13 % 256 for i in range(3 * CHUNK + 4321))
            media = MediaIoBaseUpload(
                io.BytesIO(data), mimetype="application/pdf", chunksize=CHUNK, resumable=True
            )
            request = service.files().create(
                body={"name": "scan-0001.pdf"}, media_body=media,
                fields="id,name,size,md5Checksum",
            )
            created, failures = None, 0
            while created is None:
                # Retried here, not with next_chunk(num_retries=…): in 2.202.0 that
                # retry sends a chunk read from a stream again without rewinding it,
                # so the PUT announces 262144 bytes and sends none (seen against
                # this emulator: the request then waits for its body until timeout).
                try:
                    _, created = request.next_chunk()
                except HttpError as err:
                    failures += 1
                    self.assertEqual((err.resp.status, failures), (503, 1))
            self.assertEqual(created["name"], "scan-0001.pdf")
            self.assertEqual(created["size"], str(len(data)))
            self.assertEqual(created["md5Checksum"], hashlib.md5(data).hexdigest())
            fired = [r["fired"] for r in control(emu, "GET", "faults")]
            self.assertEqual(fired, [1], "the fault met the upload")
            file_id = created["id"]

            # Download.
            out = io.BytesIO()
            downloader = MediaIoBaseDownload(out, service.files().get_media(fileId=file_id))
            done = False
            while not done:
                _, done = downloader.next_chunk()
            self.assertEqual(out.getvalue(), data)

            # List by name.
            found = service.files().list(
                q="name = 'scan-0001.pdf' and trashed = false", fields="files(id,name)"
            ).execute()["files"]
            self.assertEqual([f["id"] for f in found], [file_id])

            # Update: a new name. Then the access token expires; the client refreshes it.
            control(emu, "POST", "tokens/expire")
            renamed = service.files().update(
                fileId=file_id, body={"name": "scan-0001-renamed.pdf"}, fields="id,name"
            ).execute()
            self.assertEqual(renamed["name"], "scan-0001-renamed.pdf")

            # Trash: still there, trashed, and out of `trashed = false` listings.
            service.files().update(fileId=file_id, body={"trashed": True}).execute()
            meta = service.files().get(fileId=file_id, fields="trashed").execute()
            self.assertIs(meta["trashed"], True)
            listed = service.files().list(q="trashed = false", fields="files(id)").execute()
            self.assertNotIn(file_id, [f["id"] for f in listed["files"]])

            # Delete: then the file is gone.
            service.files().delete(fileId=file_id).execute()
            with self.assertRaises(HttpError) as gone:
                service.files().get(fileId=file_id).execute()
            self.assertEqual(gone.exception.resp.status, 404)

            # What the emulator saw: one code exchange and one refresh, and the
            # chunks at the session URI on the content origin, the one that met
            # the 503 sent again.
            entries = control(emu, "GET", "journal")["entries"]
            tokens = [e for e in entries if e["path"] == "/token"]
            self.assertEqual(len(tokens), 2, [e["path"] for e in entries])
            chunks = [
                dict(e["headers"]).get("content-range")
                for e in entries
                if e["origin"] == "content" and e["method"] == "PUT"
            ]
            second = f"bytes {CHUNK}-{2 * CHUNK - 1}/{len(data)}"
            self.assertGreaterEqual(chunks.count(second), 2, chunks)
            self.assertEqual(chunks[-1], f"bytes {3 * CHUNK}-{len(data) - 1}/{len(data)}")


if __name__ == "__main__":
    unittest.main()
