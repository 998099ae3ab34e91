<?php
/*
 * One line per event, with the order id when there is one. Goes to Bitrix's event log
 * (Settings → Event log, audit type ORDERBRIDGE) and to PHP's error_log, so it is seen
 * both by the shop admin and by whoever reads the server logs. Callers never pass the
 * secret, a signature or a snapshot body: only ids, statuses and error texts.
 */

namespace Orderbridge;

final class Log
{
	/** @var callable|null fn(string $level, string $line); the tests capture lines here */
	public static $sink = null;

	public static function info(string $message, string $orderId = ''): void
	{
		self::write('info', $message, $orderId);
	}

	public static function warning(string $message, string $orderId = ''): void
	{
		self::write('warning', $message, $orderId);
	}

	public static function error(string $message, string $orderId = ''): void
	{
		self::write('error', $message, $orderId);
	}

	private static function write(string $level, string $message, string $orderId): void
	{
		$line = 'orderbridge ' . $level . ($orderId !== '' ? ' order=' . $orderId : '') . ': '
			. preg_replace('/\s+/', ' ', $message);
		try {
			if (self::$sink !== null) {
				(self::$sink)($level, $line);
				return;
			}
			error_log($line);
			// Info lines stay in error_log only: the admin's event log is for what needs a look.
			if ($level !== 'info' && class_exists('\CEventLog')) {
				\CEventLog::Add([
					'SEVERITY' => $level === 'error' ? 'ERROR' : 'WARNING',
					'AUDIT_TYPE_ID' => 'ORDERBRIDGE',
					'MODULE_ID' => Config::MODULE_ID,
					'ITEM_ID' => $orderId,
					'DESCRIPTION' => $line,
				]);
			}
		} catch (\Throwable $e) {
			// Logging must never be the thing that breaks a checkout.
		}
	}
}
