<?php
/*
 * Hands snapshots to orderbridge: sign, POST /v1/orders, and decide by the answer.
 *   2xx (202 accepted, 200 {"stale":true})  delivered: done
 *   401, 408, 429, 5xx, no answer           transient: kept in the queue, the agent retries
 *   any other 4xx                           invalid: kept in the queue as rejected, logged
 * A snapshot that is not delivered at once is queued (b_orderbridge_queue), never dropped.
 * After a failed send the checkout skips the network for BREAKER seconds and queues
 * directly, so a down orderbridge costs a buyer at most one timeout per minute, not one per
 * order; the agent's re-send closes the breaker again. Several web nodes may re-send at
 * once: each row is sent only by the node whose claim on it won (Queue::claim).
 */

namespace Orderbridge;

class Relay
{
	public const DELIVERED = 'delivered';
	public const RETRY = 'retry';
	public const REJECT = 'reject';
	public const BREAKER = 60;

	/** @var Config */
	private $config;
	/** @var Queue */
	private $queue;
	/** @var Transport */
	private $transport;
	/** @var callable fn(string $orderId): ?string, rebuilds a snapshot body for a queued id */
	private $rebuild;
	/** @var callable fn(): int, the clock in unix seconds (the tests move it) */
	private $clock;

	public function __construct(Config $config, Queue $queue, Transport $transport,
		?callable $rebuild = null, ?callable $clock = null)
	{
		$this->config = $config;
		$this->queue = $queue;
		$this->transport = $transport;
		$this->rebuild = $rebuild ?? [self::class, 'rebuildFromOrder'];
		$this->clock = $clock ?? 'time';
	}

	public static function fromConfig(?Config $config = null): self
	{
		$config = $config ?? Config::load();
		return new self($config, new Queue(), new Transport($config->timeout));
	}

	public function config(): Config
	{
		return $this->config;
	}

	public function queue(): Queue
	{
		return $this->queue;
	}

	/** The same relay (queue, transport, clock) with other settings: those of one site. */
	public function withConfig(Config $config): self
	{
		$relay = clone $this;
		$relay->config = $config;
		return $relay;
	}

	/** A fresh webhook-id: one per snapshot, kept with it in the queue for every re-send. */
	public static function newId(): string
	{
		return 'msg_' . bin2hex(random_bytes(16));
	}

	public static function classify(int $status): string
	{
		if ($status >= 200 && $status < 300) {
			return self::DELIVERED;
		}
		if ($status >= 400 && $status < 500 && !in_array($status, [401, 408, 429], true)) {
			return self::REJECT;
		}
		return self::RETRY;
	}

	/**
	 * Sends one snapshot body now (or queues it while the breaker is open).
	 * Returns DELIVERED, REJECT, or RETRY (= it is in the queue). Throws only when the
	 * queue itself cannot be written.
	 */
	public function submit(string $orderId, string $body): string
	{
		$id = self::newId();
		$now = ($this->clock)();
		$down = $this->queue->downFor($now);
		if ($down !== null && $down < self::BREAKER) {
			$this->queue->put($id, $orderId, $body, $now);
			Log::info('orderbridge failed ' . $down . ' s ago; snapshot queued', $orderId);
			return self::RETRY;
		}
		[$verdict, $error] = $this->send($id, $orderId, $body, $this->config);
		if ($verdict === self::RETRY) {
			$this->queue->put($id, $orderId, $body, $now, QueueTable::PENDING, $error);
			$this->queue->markDown($now);
		} elseif ($verdict === self::REJECT) {
			$this->queue->put($id, $orderId, $body, $now, QueueTable::REJECTED, $error);
		}
		return $verdict;
	}

	/** Queues a snapshot without trying to send it (used when building it failed). */
	public function defer(string $orderId, ?string $body): void
	{
		$this->queue->put(self::newId(), $orderId, $body, ($this->clock)());
	}

	/**
	 * Re-sends the queue, oldest first, until it is empty, orderbridge fails again, or the
	 * budget is spent (an agent runs inside a page hit unless cron runs agents). A row that
	 * another node claimed first is skipped. Returns counts: delivered, rejected, left.
	 */
	public function flush(int $maxEntries = 200, float $budgetSeconds = 20.0): array
	{
		$done = ['delivered' => 0, 'rejected' => 0, 'left' => 0];
		$until = hrtime(true) + (int)($budgetSeconds * 1e9);
		foreach ($this->queue->due(($this->clock)(), $maxEntries) as $row) {
			if (hrtime(true) > $until) {
				break;
			}
			if (!$this->queue->claim($row, ($this->clock)())) {
				continue; // another node sends this one
			}
			$verdict = $this->resendOne($row);
			if ($verdict === null) {
				continue; // replaced by a newer snapshot since it was read
			}
			if ($verdict === self::DELIVERED) {
				$done['delivered']++;
			} elseif ($verdict === self::REJECT) {
				$done['rejected']++;
			} else {
				break; // still down: keep the order of the rest, try again next minute
			}
		}
		$done['left'] = $this->queue->count();
		if ($done['delivered'] || $done['rejected'] || $done['left']) {
			Log::info(sprintf('queue re-send: %d delivered, %d rejected, %d left',
				$done['delivered'], $done['rejected'], $done['left']));
		}
		return $done;
	}

	/**
	 * The settings a queued snapshot is re-sent with: those of its site ("order.lid" of the
	 * body, Config::forSite), else the module's. The agent's Relay holds the module's global
	 * settings, which forSite() starts from.
	 */
	public function configFor(string $body): Config
	{
		$data = json_decode($body, true);
		$lid = is_array($data) ? ($data['order']['lid'] ?? '') : '';
		if (!is_string($lid) || !preg_match(Config::LID_PATTERN, $lid)) {
			return $this->config;
		}
		return $this->config->forSite($lid);
	}

	/** Sends one claimed row; null when the row is gone. */
	private function resendOne(array $row): ?string
	{
		$id = (int)$row['ID'];
		$orderId = (string)$row['ORDER_ID'];
		$body = $this->queue->body($id);
		if ($body === null) {
			return null;
		}
		if ($body === '') { // to be rebuilt from the order (Queue::put)
			try {
				$body = ($this->rebuild)($orderId);
			} catch (\Throwable $e) {
				$body = null;
				Log::error('cannot rebuild the snapshot: ' . $e->getMessage(), $orderId);
			}
			if ($body === null || $body === '') {
				$this->queue->reject($id, 'cannot rebuild the snapshot');
				return self::REJECT;
			}
		}
		$config = $this->configFor($body);
		if (!$config->enabled) {
			Log::warning('site ' . $config->lid . ' is excluded in the settings: the queued snapshot is kept aside', $orderId);
			$this->queue->reject($id, 'site ' . $config->lid . ' is excluded in the settings');
			return self::REJECT;
		}
		[$verdict, $error] = $this->send((string)$row['WEBHOOK_ID'], $orderId, $body, $config);
		$now = ($this->clock)();
		if ($verdict === self::DELIVERED) {
			$this->queue->remove($id);
			$this->queue->markUp();
		} elseif ($verdict === self::REJECT) {
			$this->queue->reject($id, $error);
		} else {
			$this->queue->release($id, $error, $now);
			$this->queue->markDown($now);
		}
		return $verdict;
	}

	/**
	 * One signed POST; logs what went wrong, never the body or the secret.
	 * @return array{0:string,1:string} [verdict, what went wrong ('' when delivered)]
	 */
	private function send(string $id, string $orderId, string $body, Config $config): array
	{
		if (!$config->isComplete()) {
			Log::warning('orderbridge URL, signing secret or site id is not set; snapshot kept in the queue', $orderId);
			return [self::RETRY, 'settings incomplete'];
		}
		try {
			$headers = Signature::headers($config->secret, $id, ($this->clock)(), $body);
		} catch (\InvalidArgumentException $e) {
			Log::error($e->getMessage(), $orderId);
			return [self::RETRY, $e->getMessage()]; // a settings problem, not the snapshot's: keep it
		}
		[$status, $answer, $error] = $this->transport->post($config->url . '/v1/orders', $headers, $body);
		$verdict = $status === 0 ? self::RETRY : self::classify($status);
		if ($verdict === self::REJECT) {
			$error = 'HTTP ' . $status . ': ' . substr($answer, 0, 300);
			Log::error('orderbridge refused the snapshot (' . $status . '): ' . substr($answer, 0, 300), $orderId);
		} elseif ($verdict === self::RETRY) {
			$error = $status === 0 ? $error : 'HTTP ' . $status;
			Log::warning('orderbridge did not take the snapshot: ' . $error, $orderId);
		}
		return [$verdict, $verdict === self::DELIVERED ? '' : (string)$error];
	}

	/** The agent's way to rebuild a snapshot whose first build failed. */
	public static function rebuildFromOrder(string $orderId): ?string
	{
		if (!class_exists('\Bitrix\Sale\Order') && class_exists('\Bitrix\Main\Loader')) {
			\Bitrix\Main\Loader::includeModule('sale');
		}
		$order = \Bitrix\Sale\Order::load((int)$orderId);
		if (!$order) {
			return null;
		}
		return Snapshot::encode(Snapshot::build($order, Config::load()->forOrder($order)));
	}
}
