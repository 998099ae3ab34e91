<?php
/*
 * Where a new order came from: the Roistat visit id and the UTM tags. Both come from the
 * buyer's browser (a form field filled by roistat-visit.js, the query, or cookies), so they
 * are untrusted: a visit is only 1–32 ASCII digits, anything else is dropped, never stored
 * or sent; a UTM tag is one line of at most 255 bytes.
 * They are taken only in a buyer's public checkout request (requestKind() === 'public'):
 * an order a manager makes in the admin panel, one made by cron or a CLI script, and one
 * that 1C's exchange imports would otherwise take the manager's or nobody's cookies.
 */

namespace Orderbridge;

final class Visit
{
	public const MAX_LENGTH = 32;
	public const PUBLIC_REQUEST = 'public';
	/** Order property code => the request field and cookie that fill it (created by the installer). */
	public const UTM = [
		'UTM_SOURCE' => 'utm_source',
		'UTM_MEDIUM' => 'utm_medium',
		'UTM_CAMPAIGN' => 'utm_campaign',
		'UTM_CONTENT' => 'utm_content',
		'UTM_TERM' => 'utm_term',
	];
	public const UTM_MAX_BYTES = 255;

	/**
	 * @var array|null what requestKind() reads instead of this process's own PHP_SAPI,
	 * constants and $_SERVER: ['sapi' => ..., 'constants' => [NAME => value], 'server' => [...]].
	 * The tests run under the CLI and set it; null in production.
	 */
	public static $environment = null;

	/**
	 * 'public' for a buyer's request to the site; otherwise why not:
	 *  'cron'   BX_CRONTAB === true (bitrix/modules/main/tools/cron_events.php defines it);
	 *  'cli'    PHP_SAPI cli (cron, CLI scripts, migrations);
	 *  '1c'     the 1C exchange: sale/admin/1c_exchange.php, served as /bitrix/admin/1c_exchange.php.
	 *           It defines no marker of its own (BX_SESSION_ID_CHANGE, NO_AGENT_CHECK ... are
	 *           used elsewhere too) and ADMIN_SECTION only for type=crm, so its path decides;
	 *  'admin'  ADMIN_SECTION === true (the admin panel's prolog), or any other script under
	 *           /bitrix/admin/.
	 * BX_CRONTAB_SUPPORT is not a sign of cron: dbconn.php defines it on every request of a
	 * site whose agents run from cron.
	 */
	public static function requestKind(): string
	{
		$env = self::$environment ?? [
			'sapi' => PHP_SAPI,
			'constants' => [
				'ADMIN_SECTION' => defined('ADMIN_SECTION') ? constant('ADMIN_SECTION') : null,
				'BX_CRONTAB' => defined('BX_CRONTAB') ? constant('BX_CRONTAB') : null,
			],
			'server' => $_SERVER,
		];
		$constants = (array)($env['constants'] ?? []);
		$server = (array)($env['server'] ?? []);
		$script = strtolower((string)($server['SCRIPT_NAME'] ?? $server['PHP_SELF'] ?? ''));
		$uri = strtolower((string)parse_url((string)($server['REQUEST_URI'] ?? ''), PHP_URL_PATH));
		if (($constants['BX_CRONTAB'] ?? null) === true) {
			return 'cron';
		}
		if (($env['sapi'] ?? '') === 'cli') {
			return 'cli';
		}
		if (strpos($script . ' ' . $uri, '1c_exchange') !== false) {
			return '1c';
		}
		if (($constants['ADMIN_SECTION'] ?? null) === true
			|| strpos($script, '/bitrix/admin/') === 0 || strpos($uri, '/bitrix/admin/') === 0) {
			return 'admin';
		}
		return self::PUBLIC_REQUEST;
	}

	/** The visit if $value is a valid one, else null. */
	public static function clean($value): ?string
	{
		if (!is_string($value) && !is_int($value)) {
			return null;
		}
		$value = trim((string)$value);
		return preg_match('/^[0-9]{1,' . self::MAX_LENGTH . '}$/D', $value) ? $value : null;
	}

	/**
	 * The first valid visit among: the form field (sent as roistat_visit, or inside
	 * order[...] by sale.order.ajax), the value the order property already holds (the
	 * snippet can fill ORDER_PROP_<id>), then the cookie. An invalid candidate is skipped,
	 * so a hostile form field cannot hide a good cookie.
	 */
	public static function pick(array $request, array $cookies, $propertyValue = null): ?string
	{
		$candidates = [
			$request['roistat_visit'] ?? null,
			is_array($request['order'] ?? null) ? ($request['order']['roistat_visit'] ?? null) : null,
			$propertyValue,
			$cookies['roistat_visit'] ?? null,
		];
		foreach ($candidates as $candidate) {
			$visit = self::clean($candidate);
			if ($visit !== null) {
				return $visit;
			}
		}
		return null;
	}

	/**
	 * Writes the visit into the order's ROISTAT_VISIT property, or clears a value that is
	 * not a valid visit. Returns what the property holds afterwards.
	 */
	public static function store($order, array $request, array $cookies): ?string
	{
		$property = OrderProperty::find($order, Config::VISIT_PROPERTY);
		if ($property === null) {
			Log::warning('order property ' . Config::VISIT_PROPERTY . ' is missing for person type '
				. $order->getPersonTypeId() . '; reinstall the module or create it');
			return null;
		}
		$current = $property->getValue();
		$visit = self::pick($request, $cookies, $current);
		if ($visit !== null) {
			$errors = OrderProperty::set($property, $visit);
			if ($errors) {
				Log::warning('the visit was not saved: a handler refused the property value: '
					. implode('; ', $errors));
				return self::clean($property->getValue());
			}
		} elseif ($current !== null && $current !== '') {
			Log::warning('dropped an invalid roistat_visit value');
			if ($errors = OrderProperty::set($property, '')) {
				Log::warning('the invalid visit could not be cleared: ' . implode('; ', $errors));
			}
		}
		return $visit;
	}

	/**
	 * Fills the order's empty UTM_* properties from the request (utm_source ..., also inside
	 * order[...]) or else the cookies of the same names. A property the order lacks, or one
	 * that already has a value, is left alone. Returns code => value of what was stored.
	 */
	public static function storeUtm($order, array $request, array $cookies): array
	{
		$stored = [];
		$nested = is_array($request['order'] ?? null) ? $request['order'] : [];
		foreach (self::UTM as $code => $field) {
			$property = OrderProperty::find($order, $code);
			if ($property === null || (string)self::scalar($property->getValue()) !== '') {
				continue;
			}
			$value = self::utm($request[$field] ?? null) ?? self::utm($nested[$field] ?? null)
				?? self::utm($cookies[$field] ?? null);
			if ($value === null) {
				continue;
			}
			$errors = OrderProperty::set($property, $value);
			if ($errors) {
				Log::warning($code . ' was not saved: a handler refused the property value: ' . implode('; ', $errors));
				continue;
			}
			$stored[$code] = $value;
		}
		return $stored;
	}

	/** One line of valid UTF-8, at most UTM_MAX_BYTES, or null. */
	public static function utm($value): ?string
	{
		$value = self::scalar($value);
		if ($value === null || !preg_match('//u', $value)) {
			return null;
		}
		$value = trim(preg_replace('/[\x00-\x1F\x7F\s]+/u', ' ', $value));
		if (strlen($value) > self::UTM_MAX_BYTES) {
			$value = substr($value, 0, self::UTM_MAX_BYTES);
			while (!preg_match('//u', $value)) {
				$value = substr($value, 0, -1);
			}
			$value = rtrim($value);
		}
		return $value === '' ? null : $value;
	}

	private static function scalar($value): ?string
	{
		return is_string($value) || is_int($value) ? (string)$value : null;
	}
}
