<?php
/*
 * The Bitrix24 deal of an order, as the status endpoint receives it from orderbridge and
 * the admin's order page shows it: the deal id (1-18 digits) and the portal it lives on.
 * Only the portal's scheme://host[:port] is ever kept from a deal URL: the rest of a URL
 * is not needed to build a deal's link, and nothing from a path or query (where a webhook
 * code could sit) is stored or shown.
 */

namespace Orderbridge;

final class Deal
{
	public const MAX_URL = 512;
	/** Bitrix24's deal card, below the portal. */
	private const PATH = '/crm/deal/details/%s/';

	/** The deal id as a string if $value is one (1 to 18 digits), else null. */
	public static function cleanId($value): ?string
	{
		$value = is_int($value) ? (string)$value : $value;
		return is_string($value) && preg_match('/^[0-9]{1,18}$/D', $value) ? $value : null;
	}

	/**
	 * scheme://host[:port] of a deal URL, lower-cased, or null when the URL is not one to
	 * keep: longer than MAX_URL, not printable ASCII, with a user or password, without a
	 * host, not https (plain http only to a loopback host, for tests).
	 */
	public static function portalOf($url): ?string
	{
		if (!is_string($url) || strlen($url) > self::MAX_URL || !preg_match('/^[\x21-\x7e]+$/D', $url)) {
			return null;
		}
		$parts = parse_url($url);
		if (!is_array($parts) || !isset($parts['scheme'], $parts['host']) || isset($parts['user'])
			|| isset($parts['pass'])) {
			return null;
		}
		$scheme = strtolower($parts['scheme']);
		$host = strtolower($parts['host']);
		if (!self::isHost($host) || !($scheme === 'https' || ($scheme === 'http' && self::isLoopback($host)))) {
			return null;
		}
		$port = '';
		if (isset($parts['port'])) {
			if ($parts['port'] < 1 || $parts['port'] > 65535) {
				return null;
			}
			$port = ':' . $parts['port'];
		}
		return $scheme . '://' . $host . $port;
	}

	/** The deal's card on the portal; both parts must have passed cleanId() / portalOf(). */
	public static function url(string $portal, string $dealId): string
	{
		return $portal . sprintf(self::PATH, $dealId);
	}

	/** A DNS name, an IPv4 address, or a bracketed IPv6 address. */
	private static function isHost(string $host): bool
	{
		if (preg_match('/^\[([0-9a-f:.]+)\]$/D', $host, $m)) {
			return filter_var($m[1], FILTER_VALIDATE_IP, FILTER_FLAG_IPV6) !== false;
		}
		return strlen($host) <= 253
			&& preg_match('/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/D', $host);
	}

	private static function isLoopback(string $host): bool
	{
		return $host === 'localhost' || $host === '[::1]'
			|| (filter_var($host, FILTER_VALIDATE_IP, FILTER_FLAG_IPV4) !== false && strpos($host, '127.') === 0);
	}
}
