<?php
/*
 * The status endpoint's logic (tools/status.php is the thin HTTP wrapper): the site's side
 * of two-way sync. orderbridge asks the site to move an order to the status its deal's
 * stage maps back to, to cancel or un-cancel it, and tells it which Bitrix24 deal belongs
 * to the order.
 *   POST, Standard Webhooks signed with the same secret as the snapshots
 *   {"site"?, "order_id": "123", "status"?: "F", "canceled"?: true|false,
 *    "deal_id"?: "55", "deal_url"?: "https://portal.example/crm/deal/details/55/"}
 *   at least one of status, canceled, deal_id; deal_url only with deal_id
 *   200 {"order_id","status","canceled","changed","deal_id"}    changed: status or cancel flag
 *   400 {"error":"invalid_field","field","message"}  401 bad signature  404 no such order
 *   409 {"error":"refused","field":"status"|"canceled"|"deal_id","message"}  Bitrix refused
 *       the change (setField / setValue gave errors, in its own words); nothing is saved
 *   422 {"error":"refused","field":"order","message"}  $order->save() gave errors
 *   405 not POST  413 too large  503 not configured  (500 internal: an exception, in the wrapper)
 * Invariants: nothing changes without a valid signature; the order is changed and saved
 * through the D7 API, so the sale module's own rules and the shop's handlers run and may
 * refuse; a refusal is logged and answered, never remembered, so a retry is checked again;
 * a 200 is remembered per webhook-id, so a retry is applied once and answered like the
 * first time. A status or cancel change is sent back to orderbridge as a snapshot like any
 * other change (orderbridge needs the new status for Roistat and stops the echo itself); a
 * save that only wrote the deal id is not (EventHandlers::suppress): a snapshot does not
 * carry the deal id. The portal of the deal URL is kept for the admin's order page.
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
		$invalid = $this->validate($req);
		if ($invalid !== null) {
			return $invalid;
		}
		$orderId = (string)$req['order_id'];
		$order = ($this->loadOrder)((int)$orderId);
		if (!$order) {
			return [404, ['error' => 'not_found', 'order_id' => $orderId]];
		}
		$dealId = isset($req['deal_id']) ? Deal::cleanId($req['deal_id']) : null;
		$changed = false;
		$dealWritten = false;
		$refused = self::setStatus($order, $req['status'] ?? null, $req['canceled'] ?? null, $orderId, $changed)
			?? self::writeDeal($order, $dealId, $orderId, $dealWritten)
			?? self::save($order, $changed, $dealWritten, $orderId);
		if ($refused !== null) {
			return $refused;
		}
		if (isset($req['deal_url'])) {
			$this->config->savePortalUrl(Deal::portalOf($req['deal_url']));
		}
		$deal = OrderProperty::find($order, Config::DEAL_PROPERTY);
		$stored = $deal === null ? '' : (string)$deal->getValue();
		return [200, [
			'order_id' => $orderId,
			'status' => (string)$order->getField('STATUS_ID'),
			'canceled' => (bool)$order->isCanceled(),
			'changed' => $changed,
			'deal_id' => $stored === '' ? null : $stored,
		]];
	}

	/** Sets what differs of status and cancel flag; null, or Bitrix's refusal (409). */
	private static function setStatus($order, ?string $status, ?bool $canceled, string $orderId, bool &$changed): ?array
	{
		if ($status !== null && $order->getField('STATUS_ID') !== $status) {
			$refused = self::refusedBy($order->setField('STATUS_ID', $status), 409, 'status', $orderId);
			if ($refused !== null) {
				return $refused;
			}
			$changed = true;
		}
		if ($canceled !== null && (bool)$order->isCanceled() !== $canceled) {
			$refused = self::refusedBy($order->setField('CANCELED', $canceled ? 'Y' : 'N'), 409, 'canceled', $orderId);
			if ($refused !== null) {
				return $refused;
			}
			$changed = true;
		}
		return null;
	}

	/** Writes the deal id into B24_DEAL_ID unless it is there; null, or a refusal (409). */
	private static function writeDeal($order, ?string $dealId, string $orderId, bool &$written): ?array
	{
		if ($dealId === null) {
			return null;
		}
		$property = OrderProperty::find($order, Config::DEAL_PROPERTY);
		if ($property === null) {
			$message = 'the order has no ' . Config::DEAL_PROPERTY . ' property for its person type '
				. $order->getPersonTypeId() . ': reinstall the orderbridge module, which creates it';
			Log::error('status endpoint: ' . $message, $orderId);
			return [409, ['error' => 'refused', 'field' => 'deal_id', 'message' => $message]];
		}
		if ((string)$property->getValue() === $dealId) {
			return null;
		}
		$refused = self::refusedBy($property->setValue($dealId), 409, 'deal_id', $orderId);
		$written = $refused === null;
		return $refused;
	}

	/**
	 * Saves what changed; null, or Bitrix's refusal (422). A save that only wrote the deal id
	 * is not sent to orderbridge: a snapshot does not carry it.
	 */
	private static function save($order, bool $changed, bool $dealWritten, string $orderId): ?array
	{
		if (!$changed && !$dealWritten) {
			return null;
		}
		if (!$changed) {
			EventHandlers::suppress($orderId);
		}
		$refused = self::refusedBy($order->save(), 422, 'order', $orderId);
		if ($refused === null) {
			Log::info('set by orderbridge: status ' . $order->getField('STATUS_ID')
				. ($order->isCanceled() ? ' (canceled)' : '') . ($dealWritten ? ', a new deal id' : ''), $orderId);
		}
		return $refused;
	}

	/** null if the request is well-formed, else the 400 answer naming the first bad field. */
	private function validate(array $req): ?array
	{
		$orderId = $req['order_id'] ?? null;
		if (!(is_string($orderId) || is_int($orderId)) || !preg_match('/^[1-9][0-9]{0,17}$/D', (string)$orderId)) {
			return self::invalid('order_id', 'must be the numeric id of a site order');
		}
		if (isset($req['site']) && $req['site'] !== $this->config->siteId) {
			return self::invalid('site', 'this is ' . $this->config->siteId);
		}
		$status = $req['status'] ?? null;
		$canceled = $req['canceled'] ?? null;
		$dealId = $req['deal_id'] ?? null;
		if ($status === null && $canceled === null && $dealId === null) {
			return self::invalid('status', 'status, canceled or deal_id is required');
		}
		if ($canceled !== null && !is_bool($canceled)) {
			return self::invalid('canceled', 'must be true or false');
		}
		if ($status !== null && (!is_string($status) || !in_array($status, ($this->statuses)(), true))) {
			return self::invalid('status', 'not an order status of this shop');
		}
		if ($dealId !== null && Deal::cleanId($dealId) === null) {
			return self::invalid('deal_id', 'must be the id of a Bitrix24 deal: 1 to 18 digits');
		}
		if (isset($req['deal_url'])) {
			if ($dealId === null) {
				return self::invalid('deal_url', 'is only meaningful with deal_id');
			}
			if (Deal::portalOf($req['deal_url']) === null) {
				return self::invalid('deal_url', 'must be an https:// URL (http:// only to a loopback host) of at most '
					. Deal::MAX_URL . ' bytes, without a user or password');
			}
		}
		return null;
	}

	/**
	 * null if Bitrix's $result is a success; else the refusal to answer, in Bitrix's words,
	 * which is logged here (one line, with the order id).
	 */
	private static function refusedBy($result, int $code, string $field, string $orderId): ?array
	{
		if ($result->isSuccess()) {
			return null;
		}
		$message = self::utf8Prefix(implode('; ', $result->getErrorMessages()), 1000);
		if ($message === '') {
			$message = 'refused by the sale module, without a reason';
		}
		Log::error('status endpoint: Bitrix refused ' . $field . ': ' . $message, $orderId);
		return [$code, ['error' => 'refused', 'field' => $field, 'message' => $message]];
	}

	/**
	 * At most $max bytes of $s, cut between UTF-8 characters (mbstring is not required); text
	 * that is not UTF-8 at all (a site in windows-1251) keeps its ASCII only, so that the
	 * answer can still be encoded as JSON.
	 */
	private static function utf8Prefix(string $s, int $max): string
	{
		$s = substr($s, 0, $max);
		for ($i = 0; $i < 3 && !preg_match('//u', $s); $i++) {
			$s = substr($s, 0, -1);
		}
		return preg_match('//u', $s) ? $s : preg_replace('/[^\x20-\x7e]/', '?', substr($s, 0, $max));
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
