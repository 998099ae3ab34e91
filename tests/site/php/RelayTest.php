<?php
/* Relay and Queue: send, classify the answer, queue, re-send oldest first. */

use Orderbridge\Relay;
use Orderbridge\Signature;
use Orderbridge\Snapshot;

final class RelayTest extends \Orderbridge\Tests\TestCase
{
	/** @testdox answers are classified: 2xx delivered; 401/408/429/5xx retried; other 4xx rejected */
	public function testAnswersAreClassified2xxDelivered401408429(): void
	{
		foreach ([200, 202, 204] as $s) {
			eq(Relay::DELIVERED, Relay::classify($s), (string)$s);
		}
		foreach ([401, 408, 429, 500, 502, 503, 0, 302] as $s) {
			eq(Relay::RETRY, Relay::classify($s), (string)$s);
		}
		foreach ([400, 403, 404, 409, 413, 415, 422] as $s) {
			eq(Relay::REJECT, Relay::classify($s), (string)$s);
		}
	}

	/** @testdox a 202 delivers: one signed POST to /v1/orders, nothing queued */
	public function testA202DeliversOneSignedPOSTToV1(): void
	{
		$t = new FakeTransport([[202, '{"order_id":"101","accepted":true}']]);
		$relay = relay_with($t, null, function () {
			return 1773385500;
		});
		$body = body_of('101');
		eq(Relay::DELIVERED, $relay->submit('101', $body));
		eq(1, count($t->requests));
		$r = $t->requests[0];
		eq('http://127.0.0.1:9/v1/orders', $r['url']);
		eq($body, $r['body'], 'the signed bytes are the sent bytes');
		eq('1773385500', $r['headers']['webhook-timestamp']);
		ok(preg_match('/^msg_[0-9a-f]{32}$/', $r['headers']['webhook-id']) === 1, 'webhook-id msg_<hex>');
		ok(Signature::verify(SECRET, $r['headers'], $body, 1773385500), 'valid signature');
		eq(0, $relay->queue()->count());
	}

	/** @testdox 200 {"stale":true} counts as delivered */
	public function test200StaleTrueCountsAsDelivered(): void
	{
		$relay = relay_with(new FakeTransport([[200, '{"stale":true}']]));
		eq(Relay::DELIVERED, $relay->submit('102', body_of('102')));
		eq(0, $relay->queue()->count());
	}

	/** @testdox each snapshot gets its own webhook-id */
	public function testEachSnapshotGetsItsOwnWebhookId(): void
	{
		$t = new FakeTransport();
		$relay = relay_with($t);
		$relay->submit('103', body_of('103'));
		$relay->submit('103', body_of('103'));
		ok($t->requests[0]['headers']['webhook-id'] !== $t->requests[1]['headers']['webhook-id'], 'ids differ');
	}

	/** @testdox daemon down: the snapshot is queued as one row, with its webhook-id and the error, and logged */
	public function testDaemonDownTheSnapshotIsQueuedAsOneRow(): void
	{
		$t = new FakeTransport([[0, '']]);
		$relay = relay_with($t, null, function () {
			return 1773385500;
		});
		$body = body_of('104');
		eq(Relay::RETRY, $relay->submit('104', $body));
		$rows = $relay->queue()->rowsOf('104');
		eq(1, count($rows));
		eq($body, $rows[0]['BODY'], 'the exact bytes, to be signed again at re-send');
		eq($t->requests[0]['headers']['webhook-id'], $rows[0]['WEBHOOK_ID'], 'the webhook-id it was first sent with');
		eq(['pending', '1773385500', '0', 'connection refused'],
			[$rows[0]['STATE'], $rows[0]['CREATED_AT'], $rows[0]['ATTEMPTS'], $rows[0]['LAST_ERROR']]);
		ok(strpos(log_text(), 'order=104') !== false && strpos(log_text(), 'connection refused') !== false,
			'logged with the order id and the reason');
		ok(strpos(log_text(), $body) === false && strpos(log_text(), substr(SECRET, 6)) === false,
			'neither the body nor the secret is logged');
	}

	/** @testdox after a failure the checkout skips the network for a minute, then tries again */
	public function testAfterAFailureTheCheckoutSkipsTheNetwork(): void
	{
		$now = 1773385500;
		$t = new FakeTransport([[503, '']]);
		$relay = relay_with($t, null, function () use (&$now) {
			return $now;
		});
		$relay->submit('105', body_of('105'));
		eq(1, count($t->requests));
		$now += 30;
		eq(Relay::RETRY, $relay->submit('106', body_of('106')));
		eq(1, count($t->requests), 'no second timeout for the next buyer');
		eq(2, $relay->queue()->count());
		$now += 31;
		$t->answers = [[202, '']];
		eq(Relay::DELIVERED, $relay->submit('107', body_of('107')));
		eq(2, count($t->requests));
	}

	/** @testdox the queue empties oldest first once orderbridge is back, with the same webhook-ids */
	public function testTheQueueEmptiesOldestFirstOnceOrderbridgeIs(): void
	{
		$t = new FakeTransport([[0, '']]);
		$relay = relay_with($t);
		foreach (['201', '202', '203'] as $id) {
			$relay->queue()->markUp(); // let each one try the network
			$relay->submit($id, body_of($id));
		}
		$firstIds = array_map(function ($r) {
			return $r['headers']['webhook-id'];
		}, $t->requests);
		eq(3, $relay->queue()->count());
		$t->requests = [];
		$t->answers = [[202, '']];
		eq(['delivered' => 3, 'rejected' => 0, 'left' => 0], $relay->flush());
		eq(['201', '202', '203'], $t->orderIds(), 'oldest first');
		eq($firstIds, array_map(function ($r) {
			return $r['headers']['webhook-id'];
		}, $t->requests), 'a re-send keeps its webhook-id');
		eq(null, $relay->queue()->downFor(time()), 'the breaker is closed again');
	}

	/** @testdox a re-send stops at the first failure and keeps the rest in order */
	public function testAReSendStopsAtTheFirstFailure(): void
	{
		$t = new FakeTransport([[0, '']]);
		$relay = relay_with($t);
		foreach (['301', '302', '303'] as $id) {
			$relay->queue()->put(Relay::newId(), $id, body_of($id), time());
		}
		$t->answers = [[202, ''], [503, ''], [202, '']];
		eq(['delivered' => 1, 'rejected' => 0, 'left' => 2], $relay->flush());
		eq(['301', '302'], $t->orderIds());
		eq(['302', '303'], array_column($relay->queue()->due(time(), 10), 'ORDER_ID'), 'still in order');
		$t->answers = [[202, '']];
		$t->requests = [];
		$relay->flush();
		eq(['302', '303'], $t->orderIds(), 'the next re-send starts with the one that failed');
	}

	/** @testdox a snapshot refused as invalid (400) is kept aside, logged, and never re-sent */
	public function testASnapshotRefusedAsInvalid400IsKept(): void
	{
		$t = new FakeTransport([[400, '{"error":"invalid_field","field":"order.price"}']]);
		$relay = relay_with($t);
		eq(Relay::REJECT, $relay->submit('401', body_of('401')));
		eq(0, $relay->queue()->count());
		eq(1, $relay->queue()->rejectedCount());
		ok(strpos(log_text(), 'order.price') !== false, 'the reason is logged');
		ok(strpos($relay->queue()->rowsOf('401')[0]['LAST_ERROR'], 'HTTP 400') === 0, 'and kept with the row');
		$relay->queue()->put(Relay::newId(), '402', body_of('402'), time());
		$t->requests = [];
		eq(['delivered' => 0, 'rejected' => 1, 'left' => 0], $relay->flush());
		eq(['402'], $t->orderIds(), 'the first rejected one is not sent again');
		eq(2, $relay->queue()->rejectedCount());
		$relay->flush();
		eq(1, count($t->requests), 'nor the second');
	}

	/** @testdox 401, 408 and 429 are retried, not rejected */
	public function test401408And429AreRetriedNotRejected(): void
	{
		foreach ([401, 408, 429] as $status) {
			$relay = relay_with(new FakeTransport([[$status, '']]));
			$relay->queue()->markUp();
			eq(Relay::RETRY, $relay->submit('403', body_of('403')), (string)$status);
			eq(0, $relay->queue()->rejectedCount());
		}
	}

	/** @testdox an order whose snapshot could not be built is rebuilt by the re-send */
	public function testAnOrderWhoseSnapshotCouldNotBeBuilt(): void
	{
		$t = new FakeTransport();
		$relay = relay_with($t, null, null, function (string $id) {
			return body_of($id);
		});
		$relay->defer('501', null);
		eq(['delivered' => 1, 'rejected' => 0, 'left' => 0], $relay->flush());
		eq(['501'], $t->orderIds());
	}

	/** @testdox without URL or secret nothing is posted and the snapshot waits in the queue */
	public function testWithoutURLOrSecretNothingIsPostedAnd(): void
	{
		$t = new FakeTransport();
		$relay = relay_with($t, configure(''));
		eq(Relay::RETRY, $relay->submit('601', body_of('601')));
		eq(0, count($t->requests));
		eq(1, $relay->queue()->count());
		ok(strpos(log_text(), 'not set') !== false, 'the missing setting is logged');
	}

	/** @testdox an order whose snapshot cannot be rebuilt is kept as rejected instead of blocking the queue */
	public function testAnUnbuildableOrderIsRejectedInsteadOfBlocking(): void
	{
		$t = new FakeTransport();
		$relay = relay_with($t, null, null, function (string $id) {
			if ($id === '800') {
				throw new \RuntimeException('order 800 is gone');
			}
			return body_of($id);
		});
		$relay->defer('800', null);
		$relay->queue()->put(Relay::newId(), '801', body_of('801'), time());
		eq(['delivered' => 1, 'rejected' => 1, 'left' => 0], $relay->flush());
		eq(['801'], $t->orderIds());
		eq('rejected', $relay->queue()->rowsOf('800')[0]['STATE']);
		ok(strpos(log_text(), 'order=800') !== false && strpos(log_text(), 'order 800 is gone') !== false,
			'the reason is logged with the order id');
	}
}

function body_of(string $orderId): string
{
	return Snapshot::encode(Snapshot::build(individual_order(['ID' => (int)$orderId]), configure()));
}
