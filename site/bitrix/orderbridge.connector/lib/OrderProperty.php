<?php
/*
 * Every lookup of an order's property value by the property's CODE goes through here.
 * getItemByOrderPropertyCode() is missing from the property collections of sale before
 * 20.0.696 (17.0, 18.6 and 20.0.275 have only getItemByOrderPropertyId and the IS_* getters),
 * which are walked instead. Each value carries its property's CODE: in its fields once loaded
 * from b_sale_order_props_value, and always in getProperty()['CODE'] (the property's row).
 * Writes go through set(), which reads the Result of setValue(): a handler of
 * OnBeforeSalePropertyValueSetField may veto the write, and then nothing was stored.
 */

namespace Orderbridge;

final class OrderProperty
{
	/** @return object|null the order's value object (getValue / setValue), or null */
	public static function find($order, string $code)
	{
		return self::findIn($order->getPropertyCollection(), $code);
	}

	/** @return object|null the collection's value object with that CODE, or null */
	public static function findIn($collection, string $code)
	{
		if ($code === '') {
			return null;
		}
		if (method_exists($collection, 'getItemByOrderPropertyCode')) {
			return $collection->getItemByOrderPropertyCode($code);
		}
		foreach ($collection as $value) {
			if (self::codeOf($value) === $code) {
				return $value;
			}
		}
		return null;
	}

	/** The value of the property with that CODE, or null when the order has no such property. */
	public static function value($order, string $code)
	{
		$property = self::find($order, $code);
		return $property ? $property->getValue() : null;
	}

	/**
	 * Writes $value and returns the errors that refused it ([] when it was stored).
	 * setValue() returns a \Bitrix\Sale\Result; very old versions return nothing, which
	 * counts as stored.
	 */
	public static function set($property, $value): array
	{
		$result = $property->setValue($value);
		if (is_object($result) && method_exists($result, 'isSuccess') && !$result->isSuccess()) {
			$errors = method_exists($result, 'getErrorMessages') ? $result->getErrorMessages() : [];
			return $errors ?: ['refused'];
		}
		return [];
	}

	private static function codeOf($value): string
	{
		$code = method_exists($value, 'getField') ? (string)$value->getField('CODE') : '';
		if ($code === '' && method_exists($value, 'getProperty')) {
			$property = $value->getProperty();
			$code = is_array($property) ? (string)($property['CODE'] ?? '') : '';
		}
		return $code;
	}
}
