<?php
/*
 * The Roistat visit id of a new order. It comes from the buyer's browser (a form field
 * filled by roistat-visit.js, or the roistat_visit cookie), so it is untrusted: only
 * 1–32 ASCII digits are accepted; anything else is dropped, never stored or sent.
 */

namespace Orderbridge;

final class Visit
{
	public const MAX_LENGTH = 32;

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
		$property = $order->getPropertyCollection()->getItemByOrderPropertyCode(Config::VISIT_PROPERTY);
		if ($property === null) {
			Log::warning('order property ' . Config::VISIT_PROPERTY . ' is missing for person type '
				. $order->getPersonTypeId() . '; reinstall the module or create it');
			return null;
		}
		$current = $property->getValue();
		$visit = self::pick($request, $cookies, $current);
		if ($visit !== null) {
			$property->setValue($visit);
		} elseif ($current !== null && $current !== '') {
			Log::warning('dropped an invalid roistat_visit value');
			$property->setValue('');
		}
		return $visit;
	}
}
