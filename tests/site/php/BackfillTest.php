<?php
/*
 * tools/backfill.php: existing orders sent as snapshots through the relay, a page at a time,
 * at a bounded rate, resumable; run through Backfill::main with a fake clock and sleep.
 */

use Bitrix\Main\Type\DateTime;
use Bitrix\Sale\Order;
use Orderbridge\Backfill;
use Orderbridge\Queue;

require_once MODULE_DIR . '/tools/backfill.php';

final class BackfillTest extends \Orderbridge\Tests\TestCase
{
	/** @var float the fake monotonic clock, moved only by the fake sleep */
	private $now = 0.0;
	private $slept = 0.0;
	private $out = [];
	private $err = [];
	/** @var FakeTransport */
	private $transport;
	/** fake time of each POST */
	private $sentAt = [];

	protected function setUp(): void
	{
		parent::setUp();
		configure();
		$this->transport = new FakeTransport();
	}

	/** Orders $from..$to, last updated at $updated. */
	private function orders(int $from, int $to, string $updated = '2026-02-10 12:00:00'): array
	{
		for ($id = $from; $id <= $to; $id++) {
			Order::$saved[$id] = individual_order(['ID' => $id, 'DATE_UPDATE' => new DateTime($updated)]);
		}
		return array_map('strval', range($from, $to));
	}

	/** Runs the tool's body; $sleep may be replaced to interrupt it. */
	private function backfill(array $args, ?callable $sleep = null): int
	{
		$relay = new \Orderbridge\Relay(\Orderbridge\Config::load(), new Queue(), $this->transport);
		return Backfill::main(array_merge(['backfill.php'], $args), $relay,
			function () {
				return $this->now;
			},
			$sleep ?? function (float $s) {
				$this->slept += $s;
				$this->now += $s;
			},
			function (string $line) {
				$this->out[] = $line;
			},
			function (string $line) {
				$this->err[] = $line;
			});
	}

	/** @testdox one progress line per page of 100: done/total, the last id and the rate */
	public function testOneProgressLinePerPage(): void
	{
		$this->orders(1, 250);
		eq(0, $this->backfill(['--since', '2026-01-01', '--rate', '50']));
		eq([
			'backfill: 100/250 orders, last id 100, 50/s',
			'backfill: 200/250 orders, last id 200, 50/s',
			'backfill: 250/250 orders, last id 250, 50/s',
			'backfill: done, 250 orders sent, 0 queued for the agent, 0 rejected',
		], $this->out);
		eq(array_map('strval', range(1, 250)), $this->transport->orderIds(), 'by ascending id, each once');
	}

	/** @testdox N orders at R a second take at least N/R seconds, never two sends closer than 1/R */
	public function testTheRateIsLimited(): void
	{
		$this->orders(1, 30);
		$times = [];
		$this->transport = new class([[202, '']], $times, $this) extends \Orderbridge\Transport {
			private $times;
			private $test;

			public function __construct(array $a, array &$times, $test)
			{
				parent::__construct(2.0);
				$this->times = &$times;
				$this->test = $test;
			}

			public function post(string $url, array $headers, string $body): array
			{
				$this->times[] = $this->test->fakeNow();
				return [202, '', ''];
			}
		};
		eq(0, $this->backfill(['--since=2026-01-01', '--rate=10']));
		ok($this->slept >= 30 / 10 - 1e-9, sprintf('slept %.3f s for 30 orders at 10/s', $this->slept));
		eq(30, count($times));
		for ($i = 1; $i < count($times); $i++) {
			ok($times[$i] - $times[$i - 1] >= 0.1 - 1e-9, 'send ' . $i . ' waited its turn');
		}
	}

	public function fakeNow(): float
	{
		return $this->now;
	}

	/** @testdox the default rate is 20 orders a second */
	public function testTheDefaultRateIs20(): void
	{
		$this->orders(1, 40);
		eq(0, $this->backfill(['--since', '2026-01-01']));
		ok(abs($this->slept - 2.0) < 1e-6, 'slept ' . $this->slept);
	}

	/** @testdox an interrupted backfill resumes after the last order done and sends nothing twice */
	public function testAnInterruptedBackfillResumes(): void
	{
		$ids = $this->orders(1, 230);
		$sleeps = 0;
		$rc = $this->backfill(['--since', '2026-01-01'], function (float $s) use (&$sleeps) {
			if (++$sleeps === 137) {
				throw new \RuntimeException('killed'); // as a Ctrl-C between two orders
			}
			$this->now += $s;
		});
		eq(2, $rc, 'stopped');
		eq(137, count($this->transport->requests));
		ok(strpos(implode("\n", $this->err), 'killed') !== false, 'says why');
		$this->out = [];
		eq(0, $this->backfill(['--resume']));
		eq($ids, $this->transport->orderIds(), 'the rest, after the last one done: each order once');
		eq('backfill: 230/230 orders, last id 230, 20/s', $this->out[0], 'progress counts the orders done before');
	}

	/** @testdox a new --since starts over; --resume after a finished run sends only newer orders */
	public function testANewSinceStartsOver(): void
	{
		$this->orders(1, 5);
		$this->backfill(['--since', '2026-01-01']);
		$this->backfill(['--resume']);
		eq(5, count($this->transport->requests), '--resume: nothing new');
		$this->orders(6, 6);
		$this->backfill(['--resume']);
		eq(['1', '2', '3', '4', '5', '6'], $this->transport->orderIds());
		$this->backfill(['--since', '2026-01-01']);
		eq(12, count($this->transport->requests), 'a new --since sends all again');
	}

	/** @testdox only orders updated within --since..--until (whole days) are sent */
	public function testOnlyOrdersWithinTheDatesAreSent(): void
	{
		$this->orders(1, 2, '2025-12-31 23:59:59');
		$this->orders(3, 4, '2026-01-01 00:00:00');
		$this->orders(5, 6, '2026-01-31 23:59:59');
		$this->orders(7, 8, '2026-02-01 00:00:00');
		eq(0, $this->backfill(['--since', '2026-01-01', '--until', '2026-01-31']));
		eq(['3', '4', '5', '6'], $this->transport->orderIds());
	}

	/** @testdox bad arguments are refused with exit code 1 and a message naming the argument */
	public function testBadArgumentsAreRefusedNamingThem(): void
	{
		$this->orders(1, 3);
		$cases = [
			[['--since', '2026-13-01'], '--since: not a date (YYYY-MM-DD): "2026-13-01"'],
			[['--since', '01.01.2026'], '--since: not a date'],
			[['--since'], '--since needs a value'],
			[['--since', '2026-01-01', '--until', '2025-12-01'], '--until 2025-12-01 is before --since 2026-01-01'],
			[['--since', '2026-01-01', '--rate', '0'], '--rate: orders per second, 1 to 500: "0"'],
			[['--since', '2026-01-01', '--rate', 'fast'], '--rate'],
			[['--sinse', '2026-01-01'], 'unknown argument "--sinse"'],
			[[], '--since is required'],
			[['--resume'], '--resume: there is no backfill to resume'],
		];
		foreach ($cases as [$args, $message]) {
			$this->err = [];
			eq(1, $this->backfill($args), implode(' ', $args));
			ok(strpos($this->err[0] ?? '', 'backfill: ' . $message) === 0, $message . ' in ' . implode(' | ', $this->err));
		}
		eq([], $this->transport->requests, 'nothing was sent');
	}

	/** @testdox failures go into the queue: orderbridge down, and an order whose snapshot cannot be built */
	public function testFailuresAreQueued(): void
	{
		$this->orders(1, 4);
		Order::$saved[3] = new class(['ID' => 3, 'DATE_UPDATE' => new DateTime('2026-02-10 12:00:00')], [], []) extends Order {
			public function getPropertyCollection()
			{
				throw new \RuntimeException('broken property');
			}
		};
		$this->transport->answers = [[503, '']];
		eq(0, $this->backfill(['--since', '2026-01-01']));
		$queue = new Queue();
		eq(4, $queue->count(), 'every order waits for the agent');
		eq('', $queue->rowsOf('3')[0]['BODY'], 'the broken one by id, to be rebuilt');
		eq('backfill: done, 4 orders sent, 4 queued for the agent, 0 rejected', end($this->out));
		ok(strpos(log_text(), 'order=3') !== false && strpos(log_text(), 'broken property') !== false, 'logged with its id');
	}

	/** @testdox the CLI bootstrap finds the document root from bitrix/modules or local/modules */
	public function testTheBootstrapFindsTheDocumentRoot(): void
	{
		eq('/home/bitrix/www', orderbridge_backfill_document_root('/home/bitrix/www/bitrix/modules/orderbridge.connector/tools'));
		eq('/home/bitrix/www', orderbridge_backfill_document_root('/home/bitrix/www/local/modules/orderbridge.connector/tools'));
		eq(null, orderbridge_backfill_document_root('/tmp/orderbridge.connector/tools'));
	}

	/** @testdox a slice with a time budget (the settings page) pauses, and --resume goes on from there */
	public function testASliceWithATimeBudgetPauses(): void
	{
		$ids = $this->orders(1, 50);
		$relay = new \Orderbridge\Relay(\Orderbridge\Config::load(), new Queue(), $this->transport);
		$clock = function () {
			return $this->now;
		};
		$sleep = function (float $s) {
			$this->now += $s;
		};
		$out = function (string $line) {
			$this->out[] = $line;
		};
		eq(0, Backfill::main(['options.php', '--since', '2026-01-01'], $relay, $clock, $sleep, $out, null, 1.0));
		eq(20, count($this->transport->requests), 'one second at 20/s');
		eq('backfill: paused at 20/50 orders, last id 20; resume to go on', end($this->out));
		eq(false, Backfill::lastState()['done'] ?? false);
		eq(0, $this->backfill(['--resume']));
		eq($ids, $this->transport->orderIds());
		eq(true, Backfill::lastState()['done']);
	}

	/** @testdox each order goes with the settings of its site; an excluded site's orders are skipped */
	public function testEachOrderGoesWithItsSitesSettings(): void
	{
		configure('http://global.example:9', ['sites' => json_encode([
			's2' => ['url' => 'http://second.example:9'],
			's3' => ['enabled' => false],
		])]);
		foreach ([1 => 's1', 2 => 's2', 3 => 's3'] as $id => $lid) {
			Order::$saved[$id] = individual_order(['ID' => $id, 'LID' => $lid, 'DATE_UPDATE' => new DateTime('2026-02-10')]);
		}
		eq(0, $this->backfill(['--since', '2026-01-01']));
		eq(['http://global.example:9/v1/orders', 'http://second.example:9/v1/orders'],
			array_column($this->transport->requests, 'url'));
		eq('backfill: done, 2 orders sent, 0 queued for the agent, 0 rejected, 1 of excluded sites skipped', end($this->out));
	}
}
