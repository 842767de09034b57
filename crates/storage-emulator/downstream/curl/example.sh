#!/usr/bin/env bash
# The emulator from a shell, with curl: start it, read its announcement, issue
# a OneDrive grant, store a file, meet a 429 with Retry-After, read the file
# back, and look at the journal. Needs bash, curl and sed; nothing else.
#
#   STORAGE_EMULATOR=path/to/storage-emulator bash example.sh
set -euo pipefail

exe="${STORAGE_EMULATOR:-storage-emulator}"
work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

# The first stdout line is the announcement: one JSON object.
mkfifo "$work/out"
"$exe" >"$work/out" 2>"$work/log" &
pid=$!
exec 3<"$work/out"
read -r announcement <&3 || { cat "$work/log" >&2; echo "example.sh: $exe printed no announcement" >&2; exit 1; }

# The first JSON string field of this name; enough for these answers (top-level
# keys come first in the emulator's sorted output; use jq in real scripts).
field() { grep -o "\"$1\":\"[^\"]*\"" | head -n 1 | sed 's/^[^:]*:"\(.*\)"$/\1/'; }
fail() { echo "example.sh: $*" >&2; exit 1; }

control="$(field control <<<"$announcement")"
graph="$(field graph <<<"$announcement")"
[[ -n "$control" && -n "$graph" ]] || fail "no control or graph url in: $announcement"

# A grant: the credential JSON an app would store.
grant="$(curl -sf -X POST -H 'Content-Type: application/json' -d '{"provider":"onedrive"}' "${control}grants")"
token="$(field access_token <<<"$grant")"
auth=(-H "Authorization: Bearer $token")

# Store a small file (Graph's simple upload).
printf 'hello from curl\n' >"$work/hello.txt"
item="$(curl -sf "${auth[@]}" -X PUT --data-binary @"$work/hello.txt" \
  -H 'Content-Type: text/plain' "${graph}me/drive/root:/demo/hello.txt:/content")"
id="$(field id <<<"$item")"
[[ -n "$id" ]] || fail "no item id in: $item"

# The next content GET is throttled: 429 with Retry-After.
curl -sf -X POST -H 'Content-Type: application/json' "${control}faults" -d '{
  "provider": "microsoft", "method": "GET", "path": "/v1.0/me/drive/items/*/content", "times": 1,
  "action": {"kind": "respond", "status": 429, "headers": [["Retry-After", "1"]]}}' >/dev/null
status="$(curl -s -o /dev/null -D "$work/headers" -w '%{http_code}' "${auth[@]}" "${graph}me/drive/items/$id/content")"
[[ "$status" == 429 ]] || fail "expected 429, got $status"
grep -qi '^retry-after: 1' "$work/headers" || fail "no Retry-After in the 429"
sleep 1

# Read it back: Graph redirects to a pre-authenticated URL on the content origin,
# which curl follows without the Authorization header of another host.
curl -sfL "${auth[@]}" "${graph}me/drive/items/$id/content" -o "$work/back.txt"
cmp "$work/hello.txt" "$work/back.txt" || fail "the bytes read back differ"

# The journal: the throttled GET is there, and the token is redacted.
journal="$(curl -sf "${control}journal")"
grep -q '"tokens":"redacted"' <<<"$journal" || fail "the journal is not redacted"
! grep -q "$token" <<<"$journal" || fail "the journal shows the token"
gets="$(grep -o "\"path\":\"/v1.0/me/drive/items/$id/content\"" <<<"$journal" | wc -l)"
[[ "$gets" -eq 2 ]] || fail "expected 2 content GETs in the journal, saw $gets"

echo "example.sh: stored, throttled, read back and journaled item $id"
