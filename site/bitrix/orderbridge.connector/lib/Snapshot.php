<?php
/*
 * The order snapshot of the ingest contract (README, "The ingest contract"):
 * a D7 \Bitrix\Sale\Order in, the {"site": ..., "order": {...}} body out. Invariants:
 * - money and quantities are decimal strings ("4990.00", "2", "0.25"), never JSON numbers;
 * - version grows with every snapshot of an order (see nextVersion);
 * - roistat_visit is present only when it is 1–32 digits;
 * - buyer fields are strings or null, chosen by the order's person type (Config);
 * - texts fit orderbridge's limits (no control characters, at most N bytes, e-mail with
 *   an "@", INN of 10 or 12 digits): a buyer's typo must not get the whole order refused,
 *   so a field that cannot be fixed is sent as null instead.
 */

namespace Orderbridge;

final class Snapshot
{
	/** @var int the last version handed out in this PHP process */
	private static $lastVersion = 0;

	/**
	 * Microseconds since the epoch, strictly increasing within one process.
	 *
	 * Why not DATE_UPDATE: it has one-second resolution, so two saves of one order in the
	 * same second (a status change right after payment) would tie and orderbridge would
	 * drop the second as stale. Why not a counter column: it costs a table and a write per
	 * save. A snapshot is built right after its save committed, so a later save gives a
	 * later snapshot; a spooled snapshot keeps its version, so orderbridge recognises an
	 * old one re-sent after a newer one arrived (200 {"stale":true}). The value fits in
	 * 53 bits, so any JSON parser reads it exactly. It assumes the site's clock does not
	 * step back by more than the time between two saves of one order.
	 */
	public static function nextVersion(): int
	{
		[$usec, $sec] = explode(' ', microtime());
		$v = (int)$sec * 1000000 + (int)substr($usec, 2, 6);
		self::$lastVersion = max($v, self::$lastVersion + 1);
		return self::$lastVersion;
	}

	public static function build($order, Config $config, ?int $version = null): array
	{
		$props = $order->getPropertyCollection();
		$snapshot = [
			'id' => (string)$order->getId(),
			'account_number' => (string)($order->getField('ACCOUNT_NUMBER') ?: $order->getId()),
			'version' => $version ?? self::nextVersion(),
			'status' => (string)$order->getField('STATUS_ID'),
			'canceled' => (bool)$order->isCanceled(),
			'paid' => (bool)$order->isPaid(),
			'created_at' => self::isoTime($order->getField('DATE_INSERT')),
			'updated_at' => self::isoTime($order->getField('DATE_UPDATE') ?: time()),
			'price' => self::decimal($order->getPrice(), 2),
			'currency' => (string)$order->getCurrency(),
		];
		$visitProperty = $props->getItemByOrderPropertyCode(Config::VISIT_PROPERTY);
		$visit = $visitProperty ? Visit::clean($visitProperty->getValue()) : null;
		if ($visit !== null) {
			$snapshot['roistat_visit'] = $visit;
		}
		$snapshot['buyer'] = self::buyer($order, $props, $config->personType($order->getPersonTypeId()));
		$snapshot['items'] = self::items($order->getBasket());
		return ['site' => $config->siteId, 'order' => $snapshot];
	}

	/** The exact bytes that are signed, sent and spooled. */
	public static function encode(array $snapshot): string
	{
		return json_encode($snapshot, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES
			| JSON_INVALID_UTF8_SUBSTITUTE | JSON_THROW_ON_ERROR);
	}

	private static function buyer($order, $props, array $map): array
	{
		$byCode = function (string $code) use ($props) {
			if ($code === '') {
				return null;
			}
			$p = $props->getItemByOrderPropertyCode($code);
			return $p ? $p->getValue() : null;
		};
		$byFlag = function (string $getter) use ($props) {
			$p = method_exists($props, $getter) ? $props->$getter() : null;
			return $p ? $p->getValue() : null;
		};
		$email = self::text($map['email'] !== '' ? $byCode($map['email']) : $byFlag('getUserEmail'), 254);
		$inn = self::text($byCode($map['inn']), 32);
		$inn = $inn === null ? null : preg_replace('/[\s-]+/', '', $inn);
		return [
			'type' => $map['legal'] ? 'legal' : 'individual',
			'name' => self::text($map['name'] !== '' ? $byCode($map['name']) : $byFlag('getPayerName'), 255),
			'phone' => self::text($map['phone'] !== '' ? $byCode($map['phone']) : $byFlag('getPhone'), 64),
			'email' => $email !== null && strpos($email, '@') !== false ? $email : null,
			'company' => self::text($byCode($map['company']), 255),
			'inn' => $inn !== null && preg_match('/^([0-9]{10}|[0-9]{12})$/D', $inn) ? $inn : null,
		];
	}

	private static function items($basket): array
	{
		$items = [];
		foreach ($basket as $item) {
			// The parts of a product set are priced inside their parent row.
			if (method_exists($item, 'isBundleChild') && $item->isBundleChild()) {
				continue;
			}
			$productId = (string)$item->getProductId();
			$items[] = [
				'product_id' => $productId,
				'name' => self::text($item->getField('NAME'), 255) ?? '#' . $productId,
				'price' => self::decimal($item->getPrice(), 2),
				// orderbridge keeps quantities in thousandths (Bitrix in ten-thousandths).
				'quantity' => self::decimal($item->getQuantity(), 3, true),
			];
		}
		return $items;
	}

	/**
	 * One line of valid UTF-8, at most $maxBytes long (cut between characters), or null
	 * when nothing is left. Line breaks (an address from a textarea) become spaces.
	 */
	private static function text($value, int $maxBytes): ?string
	{
		if (is_array($value)) { // a multiple property: its first value
			$value = reset($value);
		}
		if ($value === null || $value === false || is_array($value) || is_object($value)) {
			return null;
		}
		$value = (string)$value;
		if (!preg_match('//u', $value)) { // invalid bytes become U+FFFD, without ext/mbstring
			$value = htmlspecialchars_decode(htmlspecialchars($value, ENT_SUBSTITUTE | ENT_NOQUOTES, 'UTF-8'), ENT_NOQUOTES);
		}
		$value = trim(preg_replace('/[\x00-\x1F\x7F\s]+/u', ' ', $value));
		if (strlen($value) > $maxBytes) {
			$value = substr($value, 0, $maxBytes);
			while (!preg_match('//u', $value)) { // drop a character cut in half
				$value = substr($value, 0, -1);
			}
			$value = rtrim($value);
		}
		return $value === '' ? null : $value;
	}

	/**
	 * A Bitrix amount (a float, or a numeric string from the database) as a decimal
	 * string with $scale digits; $trim drops trailing zeros ("2.0000" → "2").
	 * Rounding to $scale digits first removes binary noise such as 4989.999999999.
	 */
	public static function decimal($value, int $scale, bool $trim = false): string
	{
		if (!is_numeric($value)) {
			throw new \InvalidArgumentException('not a number: ' . var_export($value, true));
		}
		$s = number_format(round((float)$value, $scale), $scale, '.', '');
		if ($s === '-0' || preg_match('/^-0\.0+$/', $s)) {
			$s = ltrim($s, '-');
		}
		if ($trim && strpos($s, '.') !== false) {
			$s = rtrim(rtrim($s, '0'), '.');
		}
		return $s;
	}

	/** A Bitrix DateTime (or a unix time) as ISO 8601 with the site's UTC offset. */
	public static function isoTime($value): string
	{
		if (is_object($value) && method_exists($value, 'getTimestamp')) {
			$ts = $value->getTimestamp();
		} elseif (is_int($value)) {
			$ts = $value;
		} else {
			throw new \InvalidArgumentException('not a date');
		}
		$tz = new \DateTimeZone(date_default_timezone_get());
		return (new \DateTimeImmutable('@' . $ts))->setTimezone($tz)->format('Y-m-d\TH:i:sP');
	}
}
