<?php
/* Relay and Spool: send, classify the answer, spool, re-send oldest first. */

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

	/** @testdox a 202 delivers: one signed POST to /v1/orders, nothing spooled */
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
		eq(0, $relay->spool()->count());
	}

	/** @testdox 200 {"stale":true} counts as delivered */
	public function test200StaleTrueCountsAsDelivered(): void
	{
		$relay = relay_with(new FakeTransport([[200, '{"stale":true}']]));
		eq(Relay::DELIVERED, $relay->submit('102', body_of('102')));
		eq(0, $relay->spool()->count());
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

	/** @testdox daemon down: the snapshot is spooled as one complete file and the error is logged */
	public function testDaemonDownTheSnapshotIsSpooledAsOne(): void
	{
		$relay = relay_with(new FakeTransport([[0, '']]));
		$body = body_of('104');
		eq(Relay::RETRY, $relay->submit('104', $body));
		$files = $relay->spool()->oldest();
		eq(1, count($files));
		ok(preg_match('#/\d{16}-msg_[0-9a-f]{32}\.json$#', $files[0]) === 1, 'time-ordered name: ' . $files[0]);
		$entry = json_decode(file_get_contents($files[0]), true);
		eq('104', $entry['order_id']);
		eq($body, $entry['body'], 'the exact bytes, to be signed again at re-send');
		eq([], glob(spool_dir() . '/.tmp-*'), 'no temporary file is left behind');
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
		touch(spool_dir() . '/.down', $now); // the failure happened at the fake clock's time
		eq(1, count($t->requests));
		$now += 30;
		eq(Relay::RETRY, $relay->submit('106', body_of('106')));
		eq(1, count($t->requests), 'no second timeout for the next buyer');
		eq(2, $relay->spool()->count());
		$now += 31;
		$t->answers = [[202, '']];
		eq(Relay::DELIVERED, $relay->submit('107', body_of('107')));
		eq(2, count($t->requests));
	}

	/** @testdox the spool empties oldest first once orderbridge is back, with the same webhook-ids */
	public function testTheSpoolEmptiesOldestFirstOnceOrderbridgeIs(): void
	{
		$t = new FakeTransport([[0, '']]);
		$relay = relay_with($t);
		foreach (['201', '202', '203'] as $id) {
			$relay->spool()->markUp(); // let each one try the network
			$relay->submit($id, body_of($id));
		}
		$firstIds = array_map(function ($r) {
			return $r['headers']['webhook-id'];
		}, $t->requests);
		eq(3, $relay->spool()->count());
		$t->requests = [];
		$t->answers = [[202, '']];
		eq(['delivered' => 3, 'rejected' => 0, 'left' => 0], $relay->flush());
		eq(['201', '202', '203'], $t->orderIds(), 'oldest first');
		eq($firstIds, array_map(function ($r) {
			return $r['headers']['webhook-id'];
		}, $t->requests), 'a re-send keeps its webhook-id');
		eq(null, $relay->spool()->downFor(time()), 'the breaker is closed again');
	}

	/** @testdox a re-send stops at the first failure and keeps the rest in order */
	public function testAReSendStopsAtTheFirstFailure(): void
	{
		$t = new FakeTransport([[0, '']]);
		$relay = relay_with($t);
		foreach (['301', '302', '303'] as $id) {
			$relay->spool()->put(Relay::newId(), $id, body_of($id));
		}
		$t->answers = [[202, ''], [503, ''], [202, '']];
		eq(['delivered' => 1, 'rejected' => 0, 'left' => 2], $relay->flush());
		eq(['301', '302'], $t->orderIds());
		$left = array_map(function ($p) {
			return json_decode(file_get_contents($p), true)['order_id'];
		}, $relay->spool()->oldest());
		eq(['302', '303'], $left);
	}

	/** @testdox a snapshot refused as invalid (400) is kept aside, logged, and never re-sent */
	public function testASnapshotRefusedAsInvalid400IsKept(): void
	{
		$t = new FakeTransport([[400, '{"error":"invalid_field","field":"order.price"}']]);
		$relay = relay_with($t);
		eq(Relay::REJECT, $relay->submit('401', body_of('401')));
		eq(0, $relay->spool()->count());
		eq(1, $relay->spool()->rejectedCount());
		ok(strpos(log_text(), 'order.price') !== false, 'the reason is logged');
		$relay->spool()->put(Relay::newId(), '402', body_of('402'));
		$t->requests = [];
		eq(['delivered' => 0, 'rejected' => 1, 'left' => 0], $relay->flush());
		eq(['402'], $t->orderIds(), 'the first rejected one is not sent again');
		eq(2, $relay->spool()->rejectedCount());
	}

	/** @testdox 401, 408 and 429 are retried, not rejected */
	public function test401408And429AreRetriedNotRejected(): void
	{
		foreach ([401, 408, 429] as $status) {
			$relay = relay_with(new FakeTransport([[$status, '']]));
			$relay->spool()->markUp();
			eq(Relay::RETRY, $relay->submit('403', body_of('403')), (string)$status);
			eq(0, $relay->spool()->rejectedCount());
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

	/** @testdox without URL or secret nothing is posted and the snapshot waits in the spool */
	public function testWithoutURLOrSecretNothingIsPostedAnd(): void
	{
		$t = new FakeTransport();
		$relay = relay_with($t, configure(''));
		eq(Relay::RETRY, $relay->submit('601', body_of('601')));
		eq(0, count($t->requests));
		eq(1, $relay->spool()->count());
		ok(strpos(log_text(), 'not set') !== false, 'the missing setting is logged');
	}

	/** @testdox two re-sends at once do not send the same entry twice */
	public function testTwoReSendsAtOnceDoNotSend(): void
	{
		$t = new FakeTransport();
		$relay = relay_with($t);
		$relay->spool()->put(Relay::newId(), '701', body_of('701'));
		ok($relay->spool()->lock(), 'first lock');
		$other = relay_with($t);
		eq(['delivered' => 0, 'rejected' => 0, 'left' => 1], $other->flush());
		eq(0, count($t->requests));
		$relay->spool()->unlock();
	}

	/** @testdox a broken spool file is moved aside instead of blocking the queue */
	public function testABrokenSpoolFileIsMovedAsideInstead(): void
	{
		$t = new FakeTransport();
		$relay = relay_with($t);
		$relay->spool()->put(Relay::newId(), '801', body_of('801'));
		file_put_contents(spool_dir() . '/00000000000000000000-broken.json', '{not json');
		eq(['delivered' => 1, 'rejected' => 1, 'left' => 0], $relay->flush());
		eq(['801'], $t->orderIds());
	}
}

function body_of(string $orderId): string
{
	return Snapshot::encode(Snapshot::build(individual_order(['ID' => (int)$orderId]), configure()));
}
