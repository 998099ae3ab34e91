<?php
/*
 * Hands snapshots to orderbridge: sign, POST /v1/orders, and decide by the answer.
 *   2xx (202 accepted, 200 {"stale":true})  delivered: done
 *   401, 408, 429, 5xx, no answer           transient: keep in the spool, the agent retries
 *   any other 4xx                           invalid: moved to spool/rejected/, logged
 * A snapshot that is not delivered at once is spooled, never dropped. After a failed send
 * the checkout skips the network for BREAKER seconds and spools directly, so a down
 * orderbridge costs a buyer at most one timeout per minute, not one per order; the
 * agent's re-send closes the breaker again.
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
	/** @var Spool */
	private $spool;
	/** @var Transport */
	private $transport;
	/** @var callable fn(string $orderId): ?string, rebuilds a snapshot body for a spool entry */
	private $rebuild;
	/** @var callable fn(): int, the clock (the tests move it) */
	private $clock;

	public function __construct(Config $config, Spool $spool, Transport $transport,
		?callable $rebuild = null, ?callable $clock = null)
	{
		$this->config = $config;
		$this->spool = $spool;
		$this->transport = $transport;
		$this->rebuild = $rebuild ?? [self::class, 'rebuildFromOrder'];
		$this->clock = $clock ?? 'time';
	}

	public static function fromConfig(?Config $config = null): self
	{
		$config = $config ?? Config::load();
		return new self($config, new Spool($config->spoolDir), new Transport($config->timeout));
	}

	public function config(): Config
	{
		return $this->config;
	}

	public function spool(): Spool
	{
		return $this->spool;
	}

	/** A fresh webhook-id: one per snapshot, kept with it in the spool for every re-send. */
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
	 * Sends one snapshot body now (or spools it while the breaker is open).
	 * Returns DELIVERED, REJECT, or RETRY (= it is in the spool). Throws only when the
	 * spool itself cannot be written.
	 */
	public function submit(string $orderId, string $body): string
	{
		$id = self::newId();
		$down = $this->spool->downFor(($this->clock)());
		if ($down !== null && $down < self::BREAKER) {
			$this->spool->put($id, $orderId, $body);
			Log::info('orderbridge failed ' . $down . ' s ago; snapshot spooled', $orderId);
			return self::RETRY;
		}
		$verdict = $this->send($id, $orderId, $body);
		if ($verdict === self::RETRY) {
			$this->spool->put($id, $orderId, $body);
			$this->spool->markDown();
		} elseif ($verdict === self::REJECT) {
			$this->spool->reject($this->spool->put($id, $orderId, $body));
		}
		return $verdict;
	}

	/** Spools a snapshot without trying to send it (used when building it failed). */
	public function defer(string $orderId, ?string $body): void
	{
		$this->spool->put(self::newId(), $orderId, $body);
	}

	/**
	 * Re-sends the spool, oldest first, until it is empty, orderbridge fails again, or the
	 * budget is spent (an agent runs inside a page hit unless cron runs agents).
	 * Returns counts: delivered, rejected, left.
	 */
	public function flush(int $maxEntries = 200, float $budgetSeconds = 20.0): array
	{
		$done = ['delivered' => 0, 'rejected' => 0, 'left' => 0];
		if (!$this->spool->lock()) {
			$done['left'] = $this->spool->count();
			return $done;
		}
		try {
			$until = microtime(true) + $budgetSeconds;
			foreach ($this->spool->oldest($maxEntries) as $path) {
				if (microtime(true) > $until) {
					break;
				}
				$verdict = $this->resendOne($path);
				if ($verdict === self::DELIVERED) {
					$done['delivered']++;
				} elseif ($verdict === self::REJECT) {
					$done['rejected']++;
				} else {
					break; // still down: keep the order of the rest, try again next minute
				}
			}
		} finally {
			$done['left'] = $this->spool->count();
			$this->spool->unlock();
		}
		if ($done['delivered'] || $done['rejected'] || $done['left']) {
			Log::info(sprintf('spool re-send: %d delivered, %d rejected, %d left',
				$done['delivered'], $done['rejected'], $done['left']));
		}
		return $done;
	}

	private function resendOne(string $path): string
	{
		$entry = $this->spool->read($path);
		if ($entry === null) {
			Log::error('unreadable spool file ' . basename($path) . ' moved to rejected/');
			$this->spool->reject($path);
			return self::REJECT;
		}
		$orderId = (string)$entry['order_id'];
		$body = $entry['body'];
		if ($body === null) {
			try {
				$body = ($this->rebuild)($orderId);
			} catch (\Throwable $e) {
				$body = null;
				Log::error('cannot rebuild the snapshot: ' . $e->getMessage(), $orderId);
			}
			if ($body === null) {
				$this->spool->reject($path);
				return self::REJECT;
			}
		}
		$verdict = $this->send((string)$entry['id'], $orderId, $body);
		if ($verdict === self::DELIVERED) {
			$this->spool->remove($path);
			$this->spool->markUp();
		} elseif ($verdict === self::REJECT) {
			$this->spool->reject($path);
		} else {
			$this->spool->markDown();
		}
		return $verdict;
	}

	/** One signed POST; logs what went wrong, never the body or the secret. */
	private function send(string $id, string $orderId, string $body): string
	{
		if (!$this->config->isComplete()) {
			Log::warning('orderbridge URL, signing secret or site id is not set; snapshot kept in the spool', $orderId);
			return self::RETRY;
		}
		try {
			$headers = Signature::headers($this->config->secret, $id, ($this->clock)(), $body);
		} catch (\InvalidArgumentException $e) {
			Log::error($e->getMessage(), $orderId);
			return self::RETRY; // a settings problem, not the snapshot's: keep it for later
		}
		[$status, $answer, $error] = $this->transport->post($this->config->url . '/v1/orders', $headers, $body);
		$verdict = $status === 0 ? self::RETRY : self::classify($status);
		if ($verdict === self::REJECT) {
			Log::error('orderbridge refused the snapshot (' . $status . '): ' . substr($answer, 0, 300), $orderId);
		} elseif ($verdict === self::RETRY) {
			Log::warning('orderbridge did not take the snapshot: '
				. ($status === 0 ? $error : 'HTTP ' . $status), $orderId);
		}
		return $verdict;
	}

	/** The agent's way to rebuild a snapshot whose first build failed. */
	public static function rebuildFromOrder(string $orderId): ?string
	{
		if (!class_exists('\Bitrix\Sale\Order') && class_exists('\Bitrix\Main\Loader')) {
			\Bitrix\Main\Loader::includeModule('sale');
		}
		$order = \Bitrix\Sale\Order::load((int)$orderId);
		return $order ? Snapshot::encode(Snapshot::build($order, Config::load())) : null;
	}
}
