<?php
/*
 * Finds an order's property value by the property's CODE. getItemByOrderPropertyCode()
 * is missing from the property collections of older sale module versions, which are
 * walked instead (each value carries its property's CODE: sale/lib/entitypropertyvalue.php).
 */

namespace Orderbridge;

final class OrderProperty
{
	/** @return object|null the collection's value object (getValue / setValue), or null */
	public static function find($order, string $code)
	{
		$collection = $order->getPropertyCollection();
		if (method_exists($collection, 'getItemByOrderPropertyCode')) {
			return $collection->getItemByOrderPropertyCode($code);
		}
		foreach ($collection as $value) {
			if ((string)$value->getField('CODE') === $code) {
				return $value;
			}
		}
		return null;
	}
}
