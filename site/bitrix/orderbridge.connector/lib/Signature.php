<?php
/*
 * Standard Webhooks signatures (https://www.standardwebhooks.com), both directions:
 * the module signs the snapshots it posts, and verifies the status calls it receives.
 *   webhook-signature: v1,<base64 HMAC-SHA256(key, id "." timestamp "." body)>
 * where key is the base64-decoded part of the secret after "whsec_". A header may carry
 * several space-separated signatures (secret rotation); any valid v1 one is enough.
 */

namespace Orderbridge;

final class Signature
{
	/** Accepted clock difference, both ways, as in the ingest contract. */
	public const TOLERANCE = 300;
	/** Key sizes in bytes that orderbridge itself accepts for its signing_secret_file. */
	public const KEY_MIN = 16;
	public const KEY_MAX = 64;

	/** The HMAC key of a whsec_ secret; throws on a malformed one (never echoing it). */
	public static function key(string $secret): string
	{
		if (strncmp($secret, 'whsec_', 6) !== 0) {
			throw new \InvalidArgumentException('signing secret must start with whsec_');
		}
		$key = base64_decode(substr($secret, 6), true);
		if ($key === false || strlen($key) < self::KEY_MIN || strlen($key) > self::KEY_MAX) {
			throw new \InvalidArgumentException('signing secret must be whsec_ and base64 of 16 to 64 bytes');
		}
		return $key;
	}

	public static function sign(string $secret, string $id, int $timestamp, string $body): string
	{
		$mac = hash_hmac('sha256', $id . '.' . $timestamp . '.' . $body, self::key($secret), true);
		return 'v1,' . base64_encode($mac);
	}

	/** The three headers of one send; the timestamp is the time of this send. */
	public static function headers(string $secret, string $id, int $timestamp, string $body): array
	{
		return [
			'webhook-id' => $id,
			'webhook-timestamp' => (string)$timestamp,
			'webhook-signature' => self::sign($secret, $id, $timestamp, $body),
		];
	}

	/**
	 * True when $headers (names in any case) carry a valid signature of $body made within
	 * TOLERANCE seconds of $now.
	 */
	public static function verify(string $secret, array $headers, string $body, int $now): bool
	{
		$h = array_change_key_case($headers, CASE_LOWER);
		$id = (string)($h['webhook-id'] ?? '');
		$ts = (string)($h['webhook-timestamp'] ?? '');
		$given = (string)($h['webhook-signature'] ?? '');
		if ($id === '' || $given === '' || !preg_match('/^[0-9]{1,12}$/D', $ts)
			|| abs($now - (int)$ts) > self::TOLERANCE) {
			return false;
		}
		$expected = self::sign($secret, $id, (int)$ts, $body);
		foreach (preg_split('/ +/', trim($given)) as $candidate) {
			if (hash_equals($expected, $candidate)) {
				return true;
			}
		}
		return false;
	}
}
