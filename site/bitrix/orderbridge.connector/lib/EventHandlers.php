<?php
/*
 * The sale module's D7 events, registered by install/index.php:
 *   OnSaleOrderBeforeSaved   a new order gets its Roistat visit and UTM tags (Visit), only
 *                            in a buyer's public checkout request (Visit::requestKind)
 *   OnSaleOrderSaved, OnSaleStatusOrderChange, OnSaleOrderPaid, OnSaleOrderCanceled
 *                            the order's snapshot goes to orderbridge (Relay), with the
 *                            settings of the order's site (Config::forSite of its LID); a
 *                            site excluded in the settings sends nothing
 * Invariant: nothing thrown in here reaches the sale module, because that would break
 * the buyer's checkout or the manager's order form. Errors are logged, and an order whose
 * snapshot could not be built is spooled by id so that the agent rebuilds it later.
 * One save fires several of these events; a snapshot equal to the one already sent for
 * that order in this request is not sent twice.
 */

namespace Orderbridge;

final class EventHandlers
{
	/** @var array order id => hash of the last snapshot sent in this request */
	private static $sent = [];
	/** @var array order id => true: saves by the status endpoint that wrote only the deal id */
	private static $suppressed = [];
	/** @var callable|null fn(Config $config): Relay; the tests inject one */
	public static $relayFactory = null;

	public static function onOrderBeforeSaved($event): void
	{
		try {
			$order = $event->getParameter('ENTITY');
			$isNew = method_exists($order, 'isNew') ? $order->isNew() : !$order->getId();
			if (!$isNew) {
				return;
			}
			$kind = Visit::requestKind();
			if ($kind !== Visit::PUBLIC_REQUEST) {
				Log::info('new order made outside a public checkout (' . $kind
					. '): its visit and UTM tags are not taken from this request');
				return;
			}
			Visit::store($order, $_REQUEST ?? [], $_COOKIE ?? []);
			Visit::storeUtm($order, $_REQUEST ?? [], $_COOKIE ?? []);
		} catch (\Throwable $e) {
			Log::error('visit capture failed: ' . $e->getMessage());
		}
	}

	public static function onOrderSaved($event): void
	{
		self::relay($event, 'OnSaleOrderSaved');
	}

	public static function onStatusChange($event): void
	{
		self::relay($event, 'OnSaleStatusOrderChange');
	}

	public static function onPaid($event): void
	{
		self::relay($event, 'OnSaleOrderPaid');
	}

	public static function onCanceled($event): void
	{
		self::relay($event, 'OnSaleOrderCanceled');
	}

	/**
	 * Called by StatusEndpoint before a save that only wrote the order's deal id, which a
	 * snapshot does not carry, so that the save is not sent to orderbridge. Lasts for the rest
	 * of the request (the endpoint's request handles one order).
	 */
	public static function suppress(string $orderId): void
	{
		self::$suppressed[$orderId] = true;
	}

	/** Forgets this request's state (for long-running processes and the tests). */
	public static function reset(): void
	{
		self::$sent = [];
		self::$suppressed = [];
	}

	private static function relay($event, string $why): void
	{
		$orderId = '';
		$relay = null;
		try {
			$order = $event->getParameter('ENTITY');
			$orderId = (string)$order->getId();
			if ($orderId === '' || $orderId === '0' || isset(self::$suppressed[$orderId])) {
				return;
			}
			$config = Config::load()->forOrder($order);
			if (!$config->enabled) {
				Log::info('site ' . $config->lid . ' is excluded in the settings: the order is not sent', $orderId);
				return;
			}
			$relay = self::$relayFactory ? (self::$relayFactory)($config) : Relay::fromConfig($config);
			$snapshot = Snapshot::build($order, $relay->config());
			$hash = self::contentHash($snapshot);
			if ((self::$sent[$orderId] ?? null) === $hash) {
				return;
			}
			self::$sent[$orderId] = $hash;
			$relay->submit($orderId, Snapshot::encode($snapshot));
		} catch (\Throwable $e) {
			Log::error($why . ' handler failed: ' . get_class($e) . ': ' . $e->getMessage(), $orderId);
			self::deferRebuild($relay, $orderId);
		}
	}

	/** The snapshot without the fields that change at every build. */
	private static function contentHash(array $snapshot): string
	{
		unset($snapshot['order']['version'], $snapshot['order']['updated_at']);
		return md5(serialize($snapshot));
	}

	private static function deferRebuild(?Relay $relay, string $orderId): void
	{
		if ($orderId === '' || $orderId === '0') {
			return;
		}
		try {
			($relay ?? Relay::fromConfig())->defer($orderId, null);
		} catch (\Throwable $e) {
			Log::error('cannot spool the order for a later rebuild: ' . $e->getMessage(), $orderId);
		}
	}
}
