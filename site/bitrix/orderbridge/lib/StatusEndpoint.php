<?php
/*
 * The status endpoint's logic (tools/status.php is the thin HTTP wrapper): orderbridge
 * asks the site to move an order to another status, or to cancel or un-cancel it, when the
 * deal moved in Bitrix24 (two-way sync).
 *   POST, Standard Webhooks signed with the same secret as the snapshots
 *   {"order_id": "123", "status": "P"} or {"order_id": "123", "canceled": true}
 *   200 {"order_id","status","canceled","changed"}  400 invalid  401 bad signature
 *   404 no such order  405 not POST  413 too large  500 the save failed  503 not configured
 * Invariants: nothing changes without a valid signature; the order is saved through the
 * D7 API (so the sale module's own rules and events run); that save is not echoed back to
 * orderbridge (EventHandlers::suppress); a retried request (same webhook-id) is applied
 * once and answered like the first time.
 */

namespace Orderbridge;

final class StatusEndpoint
{
	public const MAX_BODY = 65536;
	/** How long a webhook-id is remembered: longer than the signature tolerance. */
	public const SEEN_TTL = 2 * Signature::TOLERANCE;

	/** @var Config */
	private $config;
	/** @var callable fn(int $id): ?Order */
	private $loadOrder;
	/** @var callable fn(): string[] the order status ids of the shop */
	private $statuses;
	/** @var callable fn(): int */
	private $clock;

	public function __construct(Config $config, ?callable $loadOrder = null, ?callable $statuses = null,
		?callable $clock = null)
	{
		$this->config = $config;
		$this->loadOrder = $loadOrder ?? function (int $id) {
			return \Bitrix\Sale\Order::load($id);
		};
		$this->statuses = $statuses ?? function (): array {
			return array_map('strval', array_keys(\Bitrix\Sale\OrderStatus::getAllStatusesNames()));
		};
		$this->clock = $clock ?? 'time';
	}

	/** @return array{0:int,1:array} HTTP status and the JSON answer */
	public function handle(string $method, array $headers, string $body): array
	{
		if ($method !== 'POST') {
			return [405, ['error' => 'method_not_allowed']];
		}
		if ($this->config->secret === '') {
			return [503, ['error' => 'not_configured']];
		}
		if (strlen($body) > self::MAX_BODY) {
			return [413, ['error' => 'too_large']];
		}
		try {
			$valid = Signature::verify($this->config->secret, $headers, $body, ($this->clock)());
		} catch (\InvalidArgumentException $e) {
			Log::error('status endpoint: ' . $e->getMessage());
			return [503, ['error' => 'not_configured']];
		}
		if (!$valid) {
			return [401, ['error' => 'bad_signature']];
		}
		$id = (string)array_change_key_case($headers, CASE_LOWER)['webhook-id'];
		$seen = $this->seenAnswer($id);
		if ($seen !== null) {
			return [200, $seen];
		}
		[$code, $answer] = $this->apply($body);
		if ($code === 200) {
			$this->remember($id, $answer);
		}
		return [$code, $answer];
	}

	private function apply(string $body): array
	{
		$req = json_decode($body, true);
		if (!is_array($req)) {
			return [400, ['error' => 'invalid_json']];
		}
		$orderId = $req['order_id'] ?? null;
		if (!(is_string($orderId) || is_int($orderId)) || !preg_match('/^[1-9][0-9]{0,17}$/D', (string)$orderId)) {
			return self::invalid('order_id', 'must be the numeric id of a site order');
		}
		$orderId = (string)$orderId;
		if (isset($req['site']) && $req['site'] !== $this->config->siteId) {
			return self::invalid('site', 'this is ' . $this->config->siteId);
		}
		$status = $req['status'] ?? null;
		$canceled = $req['canceled'] ?? null;
		if ($status === null && $canceled === null) {
			return self::invalid('status', 'status or canceled is required');
		}
		if ($canceled !== null && !is_bool($canceled)) {
			return self::invalid('canceled', 'must be true or false');
		}
		if ($status !== null && (!is_string($status) || !in_array($status, ($this->statuses)(), true))) {
			return self::invalid('status', 'not an order status of this shop');
		}
		$order = ($this->loadOrder)((int)$orderId);
		if (!$order) {
			return [404, ['error' => 'not_found', 'order_id' => $orderId]];
		}
		$changed = false;
		if ($status !== null && $order->getField('STATUS_ID') !== $status) {
			$changed = true;
		}
		if ($canceled !== null && (bool)$order->isCanceled() !== $canceled) {
			$changed = true;
		}
		if ($changed) {
			EventHandlers::suppress($orderId);
			if ($status !== null) {
				$order->setField('STATUS_ID', $status);
			}
			if ($canceled !== null) {
				$order->setField('CANCELED', $canceled ? 'Y' : 'N');
			}
			$result = $order->save();
			if (!$result->isSuccess()) {
				$message = implode('; ', $result->getErrorMessages());
				Log::error('status endpoint could not save the order: ' . $message, $orderId);
				return [500, ['error' => 'save_failed', 'message' => $message]];
			}
			Log::info('status set by orderbridge to ' . $order->getField('STATUS_ID')
				. ($order->isCanceled() ? ' (canceled)' : ''), $orderId);
		}
		return [200, [
			'order_id' => $orderId,
			'status' => (string)$order->getField('STATUS_ID'),
			'canceled' => (bool)$order->isCanceled(),
			'changed' => $changed,
		]];
	}

	private static function invalid(string $field, string $message): array
	{
		return [400, ['error' => 'invalid_field', 'field' => $field, 'message' => $message]];
	}

	/** Remembered answers live next to the spool, one small file per webhook-id. */
	private function seenPath(string $id): string
	{
		return $this->config->spoolDir . '/status-seen/' . hash('sha256', $id) . '.json';
	}

	private function seenAnswer(string $id): ?array
	{
		$path = $this->seenPath($id);
		$data = @file_get_contents($path);
		if ($data === false) {
			return null;
		}
		$answer = json_decode($data, true);
		return is_array($answer) ? $answer : null;
	}

	private function remember(string $id, array $answer): void
	{
		$dir = dirname($this->seenPath($id));
		if (!is_dir($dir) && !@mkdir($dir, 0770, true) && !is_dir($dir)) {
			return; // then a retry is applied again, which is harmless: it sets the same values
		}
		$now = ($this->clock)();
		foreach (glob($dir . '/*.json') ?: [] as $old) {
			if (@filemtime($old) < $now - self::SEEN_TTL) {
				@unlink($old);
			}
		}
		@file_put_contents($this->seenPath($id), json_encode($answer), LOCK_EX);
	}
}
