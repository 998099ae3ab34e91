<?php
/*
 * Sends the shop's existing orders to orderbridge: those whose DATE_UPDATE falls in
 * [--since, --until], by ascending ID, a page at a time, each loaded with Order::load and sent
 * as a signed snapshot through the same Relay as live orders (so a failure is queued, never
 * lost), with the settings of each order's site (Config::forSite; an excluded site's orders
 * are skipped). Run by tools/backfill.php under CLI, and in short slices by the settings page.
 * Invariants:
 * - the ID is the cursor: after each order its ID is stored (option backfill_state), so an
 *   interrupted run resumes after the last order done; only a run killed between a send and
 *   that save sends that one order again (orderbridge keeps the newer version). DATE_UPDATE
 *   is only the filter: it changes when an order is saved, which the live handlers send;
 * - at most `rate` orders per second (sleep between sends), so the shop stays responsive;
 * - one progress line per page; no line carries a body, a buyer's data or the secret.
 */

namespace Orderbridge;

use Bitrix\Main\Config\Option;

final class Backfill
{
	public const STATE_OPTION = 'backfill_state';
	public const PAGE = 100;
	public const DEFAULT_RATE = 20;
	public const MAX_RATE = 500;
	public const USAGE = 'usage: php tools/backfill.php --since YYYY-MM-DD [--until YYYY-MM-DD] [--rate N] [--resume]';

	/** @var Relay */
	private $relay;
	/** @var callable fn(): float, monotonic seconds */
	private $clock;
	/** @var callable fn(float $seconds): void */
	private $sleep;
	/** @var callable fn(string $line): void, one progress line */
	private $out;

	public function __construct(Relay $relay, ?callable $clock = null, ?callable $sleep = null, ?callable $out = null)
	{
		$this->relay = $relay;
		$this->clock = $clock ?? function (): float {
			return hrtime(true) / 1e9;
		};
		$this->sleep = $sleep ?? function (float $seconds): void {
			usleep((int)($seconds * 1e6));
		};
		$this->out = $out ?? function (string $line): void {
			echo $line, "\n";
		};
	}

	/**
	 * The tool's body: parses $argv (the script's name first), runs, returns the exit code:
	 * 0 done (or the $budget seconds spent: the settings page's slices), 1 a bad argument
	 * (the message names it), 2 a failure while running.
	 */
	public static function main(array $argv, ?Relay $relay = null, ?callable $clock = null,
		?callable $sleep = null, ?callable $out = null, ?callable $err = null, float $budget = INF): int
	{
		$err = $err ?? function (string $line): void {
			fwrite(STDERR, $line . "\n");
		};
		try {
			$options = self::parseArgs(array_slice($argv, 1));
			if (isset($options['help'])) {
				($out ?? function (string $l) {
					echo $l, "\n";
				})(self::USAGE);
				return 0;
			}
			$state = self::startState($options);
		} catch (\InvalidArgumentException $e) {
			$err('backfill: ' . $e->getMessage());
			$err(self::USAGE);
			return 1;
		}
		try {
			(new self($relay ?? Relay::fromConfig(), $clock, $sleep, $out))->run($state, (int)$options['rate'], $budget);
		} catch (\Throwable $e) {
			$err('backfill: stopped: ' . $e->getMessage());
			return 2;
		}
		return 0;
	}

	/**
	 * --since DATE, --until DATE, --rate N, --resume (also --name=value). Throws
	 * InvalidArgumentException naming the argument that is wrong.
	 */
	public static function parseArgs(array $args): array
	{
		$options = ['rate' => self::DEFAULT_RATE];
		for ($i = 0; $i < count($args); $i++) {
			$arg = (string)$args[$i];
			[$name, $value] = array_pad(explode('=', $arg, 2), 2, null);
			if ($name === '--resume' || $name === '--help') {
				if ($value !== null) {
					throw new \InvalidArgumentException($name . ' takes no value');
				}
				$options[substr($name, 2)] = true;
				continue;
			}
			if (!in_array($name, ['--since', '--until', '--rate'], true)) {
				throw new \InvalidArgumentException('unknown argument ' . self::shown($arg));
			}
			if ($value === null) {
				$value = $args[++$i] ?? null;
				if ($value === null) {
					throw new \InvalidArgumentException($name . ' needs a value');
				}
			}
			$options[substr($name, 2)] = $name === '--rate' ? self::rate($value) : self::date($name, $value);
		}
		if (isset($options['since'], $options['until']) && $options['until'] < $options['since']) {
			throw new \InvalidArgumentException('--until ' . $options['until'] . ' is before --since ' . $options['since']);
		}
		if (empty($options['help']) && !isset($options['since']) && empty($options['resume'])) {
			throw new \InvalidArgumentException('--since is required (or --resume)');
		}
		if (!empty($options['resume']) && (isset($options['since']) || isset($options['until']))) {
			throw new \InvalidArgumentException('--resume continues with the dates of the last backfill; give no --since or --until');
		}
		return $options;
	}

	/** Where to start: after the stored last ID (--resume), or from the beginning (a new --since). */
	private static function startState(array $options): array
	{
		if (!empty($options['resume'])) {
			$state = json_decode(Option::get(Config::MODULE_ID, self::STATE_OPTION, ''), true);
			if (!is_array($state) || !isset($state['since'], $state['last_id'])) {
				throw new \InvalidArgumentException('--resume: there is no backfill to resume');
			}
			return ['since' => (string)$state['since'], 'until' => $state['until'] ?? null, 'last_id' => (int)$state['last_id']];
		}
		return ['since' => $options['since'], 'until' => $options['until'] ?? null, 'last_id' => 0];
	}

	/**
	 * Sends the orders after $state['last_id'], at most $rate a second, until none are left
	 * or $budget seconds passed (the settings page runs it in slices). Returns the state.
	 */
	public function run(array $state, int $rate = self::DEFAULT_RATE, float $budget = INF): array
	{
		$range = self::rangeFilter($state);
		$total = (int)\Bitrix\Sale\Internals\OrderTable::getCount($range);
		$done = $state['last_id'] > 0
			? (int)\Bitrix\Sale\Internals\OrderTable::getCount($range + ['<=ID' => $state['last_id']]) : 0;
		$start = ($this->clock)();
		$sent = 0;
		$counts = ['queued' => 0, 'rejected' => 0, 'skipped' => 0];
		$this->save($state);
		while (($ids = $this->page($range, $state['last_id'])) !== []) {
			foreach ($ids as $id) {
				if (($this->clock)() - $start >= $budget) {
					($this->out)(sprintf('backfill: paused at %d/%d orders, last id %d; resume to go on',
						$done, $total, $state['last_id']));
					return $state;
				}
				$this->sendOne($id, $counts);
				$state['last_id'] = $id;
				$this->save($state);
				$sent++;
				$done++;
				$this->pace($start, $sent, $rate);
			}
			$elapsed = ($this->clock)() - $start;
			($this->out)(sprintf('backfill: %d/%d orders, last id %d, %d/s', $done, $total, $state['last_id'],
				$elapsed > 0 ? (int)round($sent / $elapsed) : 0));
		}
		($this->out)(sprintf('backfill: done, %d orders sent, %d queued for the agent, %d rejected',
			$sent - $counts['skipped'], $counts['queued'], $counts['rejected'])
			. ($counts['skipped'] ? sprintf(', %d of excluded sites skipped', $counts['skipped']) : ''));
		$state['done'] = true;
		$this->save($state);
		return $state;
	}

	/** The IDs of the next page: after $lastId, ascending (OrderTable is what Order::getList queries). */
	private function page(array $range, int $lastId): array
	{
		$rows = \Bitrix\Sale\Internals\OrderTable::getList([
			'select' => ['ID'],
			'filter' => $range + ['>ID' => $lastId],
			'order' => ['ID' => 'ASC'],
			'limit' => self::PAGE,
		]);
		$ids = [];
		while ($row = $rows->fetch()) {
			$ids[] = (int)$row['ID'];
		}
		return $ids;
	}

	/** One order, as the live handlers send it; one that cannot be built is queued by id. */
	private function sendOne(int $id, array &$counts): void
	{
		$orderId = (string)$id;
		try {
			$order = \Bitrix\Sale\Order::load($id);
			if (!$order) {
				Log::warning('backfill: the order is gone', $orderId);
				return;
			}
			$config = $this->relay->config()->forOrder($order);
			if (!$config->enabled) {
				Log::info('backfill: site ' . $config->lid . ' is excluded in the settings: the order is not sent', $orderId);
				$counts['skipped']++;
				return;
			}
			$body = Snapshot::encode(Snapshot::build($order, $config));
		} catch (\Throwable $e) {
			Log::error('backfill: cannot build the snapshot, queued for a rebuild: ' . $e->getMessage(), $orderId);
			$this->relay->defer($orderId, null);
			$counts['queued']++;
			return;
		}
		$verdict = $this->relay->withConfig($config)->submit($orderId, $body);
		if ($verdict === Relay::RETRY) {
			$counts['queued']++;
		} elseif ($verdict === Relay::REJECT) {
			$counts['rejected']++;
		}
	}

	/** Sleeps until the $sent-th order is due at $rate a second from $start. */
	private function pace(float $start, int $sent, int $rate): void
	{
		$wait = $start + $sent / $rate - ($this->clock)();
		if ($wait > 0) {
			($this->sleep)($wait);
		}
	}

	/** The stored state of the last backfill (for the settings page), or null. */
	public static function lastState(): ?array
	{
		$state = json_decode(Option::get(Config::MODULE_ID, self::STATE_OPTION, ''), true);
		return is_array($state) ? $state : null;
	}

	private function save(array $state): void
	{
		Option::set(Config::MODULE_ID, self::STATE_OPTION, json_encode($state));
	}

	/** DATE_UPDATE within [since 00:00, the day after until 00:00), in the site's time zone. */
	private static function rangeFilter(array $state): array
	{
		$filter = ['>=DATE_UPDATE' => new \Bitrix\Main\Type\DateTime($state['since'] . ' 00:00:00', 'Y-m-d H:i:s')];
		if (!empty($state['until'])) {
			$next = (new \DateTimeImmutable($state['until']))->modify('+1 day')->format('Y-m-d');
			$filter['<DATE_UPDATE'] = new \Bitrix\Main\Type\DateTime($next . ' 00:00:00', 'Y-m-d H:i:s');
		}
		return $filter;
	}

	private static function date(string $name, string $value): string
	{
		$d = \DateTimeImmutable::createFromFormat('!Y-m-d', $value);
		if (!$d || $d->format('Y-m-d') !== $value) {
			throw new \InvalidArgumentException($name . ': not a date (YYYY-MM-DD): ' . self::shown($value));
		}
		return $value;
	}

	private static function rate(string $value): int
	{
		if (!preg_match('/^\d{1,4}$/', $value) || (int)$value < 1 || (int)$value > self::MAX_RATE) {
			throw new \InvalidArgumentException('--rate: orders per second, 1 to ' . self::MAX_RATE . ': ' . self::shown($value));
		}
		return (int)$value;
	}

	/** An argument as shown in a message: printable, at most 40 bytes. */
	private static function shown(string $value): string
	{
		return '"' . substr(preg_replace('/[^\x20-\x7e]/', '?', $value), 0, 40) . '"';
	}
}
