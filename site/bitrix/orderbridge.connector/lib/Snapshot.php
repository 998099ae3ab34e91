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
 *   so a field that cannot be fixed is sent as null instead;
 * - the optional fields (lid, person_type, comment, delivery, discount, coupons, cost,
 *   payments, sum_paid, utm, properties) are left out when the order has nothing for them
 *   or the sale version lacks the method that gives them; an item's base_price only when
 *   the discount lowered its price (base_price > price).
 * Sums of money are added in kopecks and thousandths of a unit (integers), never floats.
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

	public const MAX_COMMENT = 1000;
	public const MAX_PROPERTY_VALUE = 1000;
	public const MAX_COUPONS = 20;
	public const MAX_COUPON = 64;
	public const MAX_PAYMENTS = 20;
	public const MAX_NAME = 255;

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
		$snapshot += self::origin($order);
		$visitProperty = OrderProperty::findIn($props, Config::VISIT_PROPERTY);
		$visit = $visitProperty ? Visit::clean($visitProperty->getValue()) : null;
		if ($visit !== null) {
			$snapshot['roistat_visit'] = $visit;
		}
		$snapshot['buyer'] = self::buyer($order, $props, $config->personType($order->getPersonTypeId()));
		[$snapshot['items'], $itemDiscount, $quantities] = self::items($order->getBasket());
		[$delivery, $deliveryDiscount] = self::delivery($order);
		if ($delivery !== null) {
			$snapshot['delivery'] = $delivery;
		}
		if ($itemDiscount + $deliveryDiscount > 0) {
			$snapshot['discount'] = self::cents($itemDiscount + $deliveryDiscount);
		}
		$snapshot += self::coupons($order);
		$cost = self::cost($props, $quantities, (string)$order->getCurrency());
		if ($cost !== null) {
			$snapshot['cost'] = self::cents($cost);
		}
		$snapshot += self::payments($order);
		$snapshot += self::utm($props);
		$snapshot += self::properties($props, $config->sendProperties);
		return ['site' => $config->siteId, 'order' => $snapshot];
	}

	/** lid, person_type and the buyer's comment, each only when valid. */
	private static function origin($order): array
	{
		$out = [];
		$lid = method_exists($order, 'getSiteId') ? self::token($order->getSiteId()) : null;
		if ($lid !== null) {
			$out['lid'] = $lid;
		}
		$personType = self::token($order->getPersonTypeId());
		if ($personType !== null) {
			$out['person_type'] = $personType;
		}
		$comment = self::text($order->getField('USER_DESCRIPTION'), self::MAX_COMMENT);
		if ($comment !== null) {
			$out['comment'] = $comment;
		}
		return $out;
	}

	/** A site id or person type id: [A-Za-z0-9_-], at most 16 characters, else null. */
	private static function token($value): ?string
	{
		if (!is_string($value) && !is_int($value)) {
			return null;
		}
		$value = (string)$value;
		return preg_match('/^[A-Za-z0-9_-]{1,16}$/D', $value) ? $value : null;
	}

	/**
	 * The non-system shipments: their delivery services' names, the order's delivery price
	 * (after discounts) and the price before them (BASE_PRICE_DELIVERY) when that is higher.
	 * Returns [the "delivery" object or null, the delivery discount in kopecks].
	 */
	private static function delivery($order): array
	{
		if (!method_exists($order, 'getShipmentCollection')) {
			return [null, 0];
		}
		$collection = $order->getShipmentCollection();
		$shipments = [];
		foreach ($collection as $shipment) {
			if (!(method_exists($shipment, 'isSystem') && $shipment->isSystem())) {
				$shipments[] = $shipment;
			}
		}
		if (!$shipments) {
			return [null, 0];
		}
		$names = [];
		$base = 0;
		$shipmentPrices = 0;
		foreach ($shipments as $shipment) {
			$name = self::text($shipment->getDeliveryName(), self::MAX_NAME);
			if ($name !== null && !in_array($name, $names, true)) {
				$names[] = $name;
			}
			$shipmentPrices += self::kopecks($shipment->getPrice()) ?? 0;
			$base += self::kopecks($shipment->getField('BASE_PRICE_DELIVERY')) ?? self::kopecks($shipment->getPrice()) ?? 0;
		}
		$price = method_exists($order, 'getDeliveryPrice') ? self::kopecks($order->getDeliveryPrice()) : null;
		$price = $price ?? $shipmentPrices;
		$delivery = [
			'name' => self::text(implode(', ', $names), self::MAX_NAME),
			'price' => self::cents($price),
		];
		if ($base > $price) {
			$delivery['base_price'] = self::cents($base);
		}
		return [$delivery, max(0, $base - $price)];
	}

	/** The codes of the coupons that took part in the order's discounts (APPLY = Y). */
	private static function coupons($order): array
	{
		if (!method_exists($order, 'getDiscount')) {
			return [];
		}
		$discount = $order->getDiscount();
		$result = is_object($discount) && method_exists($discount, 'getApplyResult') ? $discount->getApplyResult() : [];
		$codes = [];
		foreach ((array)($result['COUPON_LIST'] ?? []) as $key => $coupon) {
			if (!is_array($coupon) || ($coupon['APPLY'] ?? 'Y') !== 'Y') {
				continue;
			}
			$code = (string)($coupon['COUPON'] ?? $key);
			if (preg_match('/^[\x21-\x7E]{1,' . self::MAX_COUPON . '}$/D', $code) && !in_array($code, $codes, true)) {
				$codes[] = $code;
			}
		}
		return $codes ? ['coupons' => array_slice($codes, 0, self::MAX_COUPONS)] : [];
	}

	/**
	 * Each payment (name, sum, paid), at most MAX_PAYMENTS, and the order's sum paid.
	 * orderbridge requires all three of a payment: a nameless one is named "#<pay system id>"
	 * (as a nameless item is "#<product id>"), and one without a usable sum or name is left out.
	 */
	private static function payments($order): array
	{
		$out = [];
		if (method_exists($order, 'getPaymentCollection')) {
			$payments = [];
			foreach ($order->getPaymentCollection() as $payment) {
				if (count($payments) >= self::MAX_PAYMENTS) {
					break;
				}
				$sum = self::kopecks($payment->getSum());
				$name = self::text($payment->getPaymentSystemName(), self::MAX_NAME);
				if ($name === null && method_exists($payment, 'getPaymentSystemId')) {
					$name = self::token($payment->getPaymentSystemId());
					$name = $name === null ? null : '#' . $name;
				}
				if ($sum === null || $name === null) {
					continue;
				}
				$payments[] = ['name' => $name, 'sum' => self::cents($sum), 'paid' => (bool)$payment->isPaid()];
			}
			if ($payments) {
				$out['payments'] = $payments;
			}
		}
		$paid = method_exists($order, 'getSumPaid') ? self::kopecks($order->getSumPaid()) : null;
		if ($paid !== null) {
			$out['sum_paid'] = self::cents($paid);
		}
		return $out;
	}

	/** The UTM_* properties that have a value (Visit::UTM), as "utm": {"source": ...}. */
	private static function utm($props): array
	{
		$utm = [];
		foreach (Visit::UTM as $code => $field) {
			$p = OrderProperty::findIn($props, $code);
			$value = $p ? Visit::utm($p->getValue()) : null;
			if ($value !== null) {
				$utm[substr($field, 4)] = $value;
			}
		}
		return $utm ? ['utm' => $utm] : [];
	}

	/**
	 * The properties named in the settings ("Properties to send") that the order has with a
	 * value: CODE => text. An empty one is left out, never sent as null: orderbridge takes
	 * only texts there, and one empty property must not get the whole order refused.
	 */
	private static function properties($props, array $codes): array
	{
		$out = [];
		foreach ($codes as $code) {
			$p = OrderProperty::findIn($props, $code);
			$value = $p !== null ? self::text($p->getValue(), self::MAX_PROPERTY_VALUE) : null;
			if ($value !== null) {
				$out[$code] = $value;
			}
		}
		return $out ? ['properties' => $out] : [];
	}

	/** An amount as whole kopecks, or null when it is not a number. */
	private static function kopecks($value): ?int
	{
		return is_numeric($value) ? (int)round((float)$value * 100) : null;
	}

	/** Kopecks as a decimal string with 2 digits ("123456" → "1234.56"). */
	private static function cents(int $kopecks): string
	{
		$sign = $kopecks < 0 ? '-' : '';
		$kopecks = abs($kopecks);
		return $sign . intdiv($kopecks, 100) . '.' . str_pad((string)($kopecks % 100), 2, '0', STR_PAD_LEFT);
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
			$p = OrderProperty::findIn($props, $code);
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

	/**
	 * The basket rows, and what they add up to: [rows, Σ (base price − price) × quantity in
	 * kopecks, product id => quantity in thousandths]. A row's price is after discounts
	 * (getPrice), base_price before (getBasePrice).
	 */
	private static function items($basket): array
	{
		$items = [];
		$discount = 0; // kopecks × thousandths
		$quantities = [];
		foreach ($basket as $item) {
			// The parts of a product set are priced inside their parent row.
			if (method_exists($item, 'isBundleChild') && $item->isBundleChild()) {
				continue;
			}
			$productId = (string)$item->getProductId();
			$row = [
				'product_id' => $productId,
				'name' => self::text($item->getField('NAME'), 255) ?? '#' . $productId,
				'price' => self::decimal($item->getPrice(), 2),
				// orderbridge keeps quantities in thousandths (Bitrix in ten-thousandths).
				'quantity' => self::decimal($item->getQuantity(), 3, true),
			];
			$qty = (int)round((float)$item->getQuantity() * 1000);
			$price = self::kopecks($item->getPrice()) ?? 0;
			$base = method_exists($item, 'getBasePrice') ? self::kopecks($item->getBasePrice()) : null;
			if ($base !== null && $base > $price) {
				$row['base_price'] = self::cents($base);
				$discount += ($base - $price) * $qty;
			}
			$quantities[$productId] = ($quantities[$productId] ?? 0) + $qty;
			$items[] = $row;
		}
		return [$items, intdiv($discount + 500, 1000), $quantities];
	}

	/**
	 * The order's cost in kopecks, as Roistat's own module computes it
	 * (roistat.integration admin/action_export.php): an order property coded "cost" wins;
	 * otherwise Σ the catalog's purchasing price (b_catalog_product.PURCHASING_PRICE, read
	 * through \Bitrix\Catalog\ProductTable) × quantity. Stricter than that module: null, not
	 * a partial sum, when a product has no purchasing price or has it in another currency,
	 * since a cost that leaves rows out overstates the profit.
	 */
	private static function cost($props, array $quantities, string $currency): ?int
	{
		foreach (['COST', 'cost'] as $code) {
			$p = OrderProperty::findIn($props, $code);
			$value = $p ? $p->getValue() : null;
			$kopecks = is_scalar($value) ? self::kopecks(str_replace(',', '.', trim((string)$value))) : null;
			if ($kopecks !== null && $kopecks >= 0) { // a typo is no cost, never a refused order
				return $kopecks;
			}
		}
		if (!$quantities || !\Bitrix\Main\Loader::includeModule('catalog') || !class_exists('\Bitrix\Catalog\ProductTable')) {
			return null;
		}
		$prices = [];
		$rows = \Bitrix\Catalog\ProductTable::getList([
			'filter' => ['@ID' => array_map('intval', array_keys($quantities))],
			'select' => ['ID', 'PURCHASING_PRICE', 'PURCHASING_CURRENCY'],
		]);
		while ($row = $rows->fetch()) {
			$currencyOk = ($row['PURCHASING_CURRENCY'] ?? '') === '' || $row['PURCHASING_CURRENCY'] === $currency;
			$prices[(string)$row['ID']] = $currencyOk ? self::kopecks($row['PURCHASING_PRICE'] ?? null) : null;
		}
		$cost = 0;
		foreach ($quantities as $productId => $qty) {
			if (($prices[$productId] ?? null) === null) {
				return null;
			}
			$cost += $prices[$productId] * $qty;
		}
		return intdiv($cost + 500, 1000);
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
