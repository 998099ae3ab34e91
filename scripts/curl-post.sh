#!/bin/sh
# Signs an order snapshot with the shared secret and posts it with curl: the reference
# for a sender in any language. Usage: curl-post.sh URL SECRET_FILE BODY_FILE
# Signed content: "<webhook-id>.<webhook-timestamp>.<body>", HMAC-SHA256, base64;
# the key is the base64-decoded part of the secret after "whsec_".
set -eu
url=$1 secret_file=$2 body_file=$3
secret=$(cat "$secret_file")
key_hex=$(printf %s "${secret#whsec_}" | base64 -d | od -An -v -tx1 | tr -d ' \n')
id="msg_$(date +%s)_$$"
ts=$(date +%s)
sig=$({ printf '%s.%s.' "$id" "$ts"; cat "$body_file"; } |
	openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key_hex" -binary | base64)
exec curl -sS -w '\n%{http_code}\n' "$url" -H 'Content-Type: application/json' \
	-H "webhook-id: $id" -H "webhook-timestamp: $ts" -H "webhook-signature: v1,$sig" \
	--data-binary "@$body_file"
