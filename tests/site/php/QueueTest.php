<?php
/*
 * The queue table shared by the web nodes (b_orderbridge_queue): a newer snapshot replaces
 * an older pending one, and two nodes re-sending at once send every row exactly once.
 * "Two nodes" are two Relays with their own transports over the one database.
 */

use Bitrix\Main\DB\Connection;
use Orderbridge\Queue;
use Orderbridge\QueueTable;
use Orderbridge\Relay;
use Orderbridge\Transport;

/** A node's transport: records what it posted and, on its first post, lets $during run. */
class NodeTransport extends Transport
{
	public $sent = [];
	/** @var callable|null */
	public $during = null;
	public $status = 202;

	public function __construct()
	{
		parent::__construct(2.0);
	}

	public function post(string $url, array $headers, string $body): array
	{
		$this->sent[] = json_decode($body, true)['order']['id'];
		if ($this->during) {
			$during = $this->during;
			$this->during = null;
			$during();
		}
		return [$this->status, '', ''];
	}
}

final class QueueTest extends \Orderbridge\Tests\TestCase
{
	private function node(NodeTransport $t, ?callable $clock = null): Relay
	{
		return new Relay(configure(), new Queue(), $t, null, $clock);
	}

	/** Queues orders 1..$n, each as a pending snapshot. */
	private function queued(int $n): array
	{
		$ids = [];
		for ($i = 1; $i <= $n; $i++) {
			$ids[] = (string)(1000 + $i);
			(new Queue())->put(Relay::newId(), (string)(1000 + $i), body_of((string)(1000 + $i)), time());
		}
		return $ids;
	}

	/** @testdox a newer snapshot of an order replaces its older pending one, but not a rejected one */
	public function testANewerSnapshotReplacesTheOlderPendingOne(): void
	{
		$q = new Queue();
		$q->put('msg_old', '42', '{"v":1}', 100);
		$q->put('msg_other', '43', '{"v":1}', 100);
		$q->put('msg_bad', '42', '{"v":0}', 100, QueueTable::REJECTED, 'HTTP 400');
		$q->put('msg_new', '42', '{"v":2}', 101);
		eq([['msg_bad', 'rejected'], ['msg_new', 'pending']], array_map(function ($r) {
			return [$r['WEBHOOK_ID'], $r['STATE']];
		}, $q->rowsOf('42')));
		eq(['43', '42'], array_column($q->due(200, 10), 'ORDER_ID'), 'the newer one takes its place at the end');
	}

	/** @testdox a claim is a compare-and-set: of two nodes that read the same row, one wins */
	public function testAClaimIsACompareAndSet(): void
	{
		$q = new Queue();
		$q->put('msg_1', '7', '{}', 100);
		[$seenByA] = $q->due(100, 1);
		[$seenByB] = $q->due(100, 1);
		ok($q->claim($seenByB, 100), 'B claims first');
		ok(!$q->claim($seenByA, 100), 'A, with what it read before, loses');
		eq([], $q->due(100 + Queue::LEASE - 1, 1), 'the claimed row is nobody else\'s during the lease');
		[$row] = $q->rowsOf('7');
		eq(['1', (string)(100 + Queue::LEASE)], [$row['ATTEMPTS'], $row['NEXT_AT']]);
	}

	/** @testdox the row of a node that died while sending is due again once its lease ran out */
	public function testTheRowOfADeadNodeIsDueAgainAfterTheLease(): void
	{
		$q = new Queue();
		$q->put('msg_1', '8', body_of('8'), 100);
		ok($q->claim($q->due(100, 1)[0], 100), 'claimed, then the node died');
		$now = 100 + Queue::LEASE;
		$t = new NodeTransport();
		$relay = new Relay(configure(), $q, $t, null, function () use (&$now) {
			return $now;
		});
		$q->put(Relay::newId(), '9', body_of('9'), 100);
		$now = 100 + Queue::LEASE - 1;
		$relay->flush();
		eq(['9'], $t->sent, 'during the lease, only the other row');
		$now = 100 + Queue::LEASE;
		$relay->flush();
		eq(['9', '8'], $t->sent, 'after it, the dead node\'s row too');
	}

	/** @testdox two nodes re-sending at the same time send every row exactly once */
	public function testTwoNodesDrainingAtOnceSendEveryRowOnce(): void
	{
		$ids = $this->queued(6);
		$a = new NodeTransport();
		$b = new NodeTransport();
		$nodeB = $this->node($b);
		// While A sends its first row, B runs a whole re-send.
		$a->during = function () use ($nodeB) {
			$nodeB->flush();
		};
		$this->node($a)->flush();
		$all = array_merge($a->sent, $b->sent);
		sort($all);
		eq($ids, $all, 'each order once, none lost');
		ok(count($a->sent) >= 1 && count($b->sent) >= 1, 'both nodes did work');
		eq(0, (new Queue())->count(), 'the queue is empty');
	}

	/** @testdox a node that read the queue before another node claimed its rows sends none of them */
	public function testANodeWithAStaleReadSendsNothingTwice(): void
	{
		$ids = $this->queued(4);
		$a = new NodeTransport();
		$b = new NodeTransport();
		$nodeB = $this->node($b);
		// A has read the due rows; just before its first claim, B drains the whole queue.
		Connection::instance()->beforeQuery = function () use ($nodeB) {
			Connection::instance()->beforeQuery = null;
			$nodeB->flush();
		};
		$this->node($a)->flush();
		eq($ids, $b->sent, 'B sent them all, oldest first');
		eq([], $a->sent, 'A lost every claim: nothing sent twice');
	}

	/** @testdox a failed re-send keeps the row with its error and attempts, due at the next run */
	public function testAFailedReSendKeepsTheRowWithItsError(): void
	{
		$this->queued(2);
		$t = new NodeTransport();
		$t->status = 503;
		$relay = $this->node($t);
		eq(['delivered' => 0, 'rejected' => 0, 'left' => 2], $relay->flush());
		eq(['1001'], $t->sent, 'stopped at the first failure');
		$rows = (new Queue())->due(time(), 10);
		eq(['1001', '1002'], array_column($rows, 'ORDER_ID'), 'due again, in order');
		$row = (new Queue())->rowsOf('1001')[0];
		eq(['1', 'HTTP 503'], [$row['ATTEMPTS'], $row['LAST_ERROR']]);
	}

	/** @testdox a re-send whose time budget is spent claims and sends nothing more */
	public function testAReSendPastItsBudgetSendsNothing(): void
	{
		$this->queued(3);
		$t = new NodeTransport();
		eq(['delivered' => 0, 'rejected' => 0, 'left' => 3], $this->node($t)->flush(200, 0.0));
		eq([], $t->sent);
		eq(3, count((new Queue())->due(time(), 10)), 'nothing was claimed either');
	}

	/** @testdox the agent returns itself and re-sends through the queue table */
	public function testTheAgentReSendsThroughTheQueueTable(): void
	{
		configure('http://127.0.0.1:' . free_port());
		(new Queue())->put(Relay::newId(), '77', body_of('77'), time());
		eq('\Orderbridge\Agent::resend();', \Orderbridge\Agent::resend());
		[$row] = (new Queue())->rowsOf('77');
		eq(['1', 'pending'], [$row['ATTEMPTS'], $row['STATE']], 'tried once, kept');
		ok($row['LAST_ERROR'] !== '', 'with the reason');
	}

	/** @testdox a queued snapshot is re-sent with the settings of its site (order.lid); an excluded site's is kept aside */
	public function testAReSendUsesTheSettingsOfTheSnapshotsSite(): void
	{
		$config = configure('http://global.example:9', ['sites' => json_encode([
			's2' => ['url' => 'http://second.example:9', 'site_id' => 'second.example.ru'],
			's3' => ['enabled' => false],
		])]);
		$q = new Queue();
		foreach (['s1' => '301', 's2' => '302', 's3' => '303'] as $lid => $id) {
			$body = \Orderbridge\Snapshot::encode(\Orderbridge\Snapshot::build(
				individual_order(['ID' => (int)$id, 'LID' => $lid]), $config->forSite($lid)));
			$q->put(Relay::newId(), $id, $body, time());
		}
		$t = new FakeTransport();
		eq(['delivered' => 2, 'rejected' => 1, 'left' => 0], (new Relay($config, $q, $t))->flush());
		eq(['http://global.example:9/v1/orders', 'http://second.example:9/v1/orders'], array_column($t->requests, 'url'));
		eq('rejected', $q->rowsOf('303')[0]['STATE'], 'the excluded site\'s snapshot waits for the admin');
	}

	/** @testdox a snapshot longer than a TEXT column is queued by id and rebuilt from the order when re-sent */
	public function testASnapshotTooLongForTheColumnIsRebuilt(): void
	{
		$t = new FakeTransport([[503, '']]);
		$relay = relay_with($t, null, null, function (string $id) {
			return body_of($id);
		});
		$big = str_repeat('x', QueueTable::MAX_BODY + 1);
		eq(Relay::RETRY, $relay->submit('950', $big), 'not lost, although MySQL would refuse (or cut) it');
		eq('', $relay->queue()->rowsOf('950')[0]['BODY']);
		$t->answers = [[202, '']];
		$relay->queue()->markUp();
		$relay->flush();
		eq('950', json_decode(end($t->requests)['body'], true)['order']['id'], 'the rebuilt snapshot was sent');
		eq(0, $relay->queue()->count());
	}

	/** @testdox a row replaced by a newer snapshot right after it was claimed is skipped; the newer one goes next */
	public function testARowReplacedAfterItsClaimIsSkipped(): void
	{
		$q = new Queue();
		$q->put(Relay::newId(), '60', body_of('60'), time());
		$newer = body_of('60');
		Connection::instance()->afterQuery = function () use ($q, $newer) {
			Connection::instance()->afterQuery = null;
			$q->put(Relay::newId(), '60', $newer, time()); // a checkout on another node, just now
		};
		$t = new FakeTransport();
		$relay = new Relay(configure(), $q, $t);
		eq(['delivered' => 0, 'rejected' => 0, 'left' => 1], $relay->flush());
		eq([], $t->requests, 'the replaced one is not sent');
		$relay->flush();
		eq([$newer], array_column($t->requests, 'body'), 'the newer one is');
	}
}
