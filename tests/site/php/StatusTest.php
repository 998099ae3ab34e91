<?php
/* The status endpoint: signed requests only, saved through the D7 order, not echoed back. */

use Orderbridge\Signature;
use Orderbridge\StatusEndpoint;

final class StatusTest extends \Orderbridge\Tests\TestCase
{
	/** @testdox a signed status change is saved through the order */
	public function testASignedStatusChangeIsSavedThroughThe(): void
	{
		$t = new FakeTransport();
		$order = saved_order($t);
		$body = json_encode(['order_id' => (string)$order->getId(), 'status' => 'P']);
		[$code, $answer] = endpoint()->handle('POST', signed($body), $body);
		eq(200, $code);
		eq(['order_id' => (string)$order->getId(), 'status' => 'P', 'canceled' => false, 'changed' => true,
			'deal_id' => null], $answer);
		eq('P', \Bitrix\Sale\Order::load($order->getId())->getField('STATUS_ID'));
	}

	/** @testdox cancelling through the endpoint sets the cancel flag */
	public function testCancellingThroughTheEndpointSetsTheCancelFlag(): void
	{
		$order = saved_order(new FakeTransport());
		$body = json_encode(['order_id' => $order->getId(), 'canceled' => true]);
		[$code, $answer] = endpoint()->handle('POST', signed($body), $body);
		eq(200, $code);
		eq(true, $answer['canceled']);
		ok(\Bitrix\Sale\Order::load($order->getId())->isCanceled(), 'canceled');
	}

	/** @testdox unsigned, wrongly signed, old or altered requests change nothing (401) */
	public function testUnsignedWronglySignedOldOrAlteredRequestsChange(): void
	{
		$order = saved_order(new FakeTransport());
		$body = json_encode(['order_id' => (string)$order->getId(), 'status' => 'F']);
		$other = 'whsec_' . base64_encode(random_bytes(32));
		$cases = [
			'unsigned' => [[], $body],
			'wrong secret' => [signed($body, 'msg_a', NOW, $other), $body],
			'six minutes old' => [signed($body, 'msg_b', NOW - 360), $body],
			'altered body' => [signed($body, 'msg_c'), str_replace('"F"', '"P"', $body)],
		];
		foreach ($cases as $what => [$headers, $sent]) {
			eq(401, endpoint()->handle('POST', $headers, $sent)[0], $what);
		}
		eq('N', \Bitrix\Sale\Order::load($order->getId())->getField('STATUS_ID'), 'status unchanged');
	}

	/** @testdox invalid requests get a 4xx that names the problem */
	public function testInvalidRequestsGetA4xxThatNamesThe(): void
	{
		$order = saved_order(new FakeTransport());
		$id = (string)$order->getId();
		$cases = [
			[400, 'status', ['order_id' => $id, 'status' => 'ZZ']],
			[400, 'order_id', ['order_id' => '1; DROP', 'status' => 'P']],
			[400, 'status', ['order_id' => $id]],
			[400, 'canceled', ['order_id' => $id, 'canceled' => 'yes']],
			[400, 'site', ['order_id' => $id, 'status' => 'P', 'site' => 'other.example.ru']],
			[404, null, ['order_id' => '999999', 'status' => 'P']],
		];
		foreach ($cases as $i => [$code, $field, $req]) {
			$body = json_encode($req);
			[$got, $answer] = endpoint()->handle('POST', signed($body, 'msg_inv_' . $i), $body);
			eq($code, $got, $body);
			if ($field !== null) {
				eq($field, $answer['field'], $body);
			}
		}
		eq(400, endpoint()->handle('POST', signed('{nope', 'msg_json'), '{nope')[0], 'not JSON');
		eq(405, endpoint()->handle('GET', [], '')[0]);
		eq(413, endpoint()->handle('POST', [], str_repeat(' ', StatusEndpoint::MAX_BODY + 1))[0]);
		eq('N', \Bitrix\Sale\Order::load($order->getId())->getField('STATUS_ID'), 'status unchanged');
	}

	/** @testdox a retried request (same webhook-id) is applied once and answered the same */
	public function testARetriedRequestSameWebhookIdIsApplied(): void
	{
		$order = saved_order(new FakeTransport());
		$body = json_encode(['order_id' => (string)$order->getId(), 'status' => 'P']);
		$first = endpoint()->handle('POST', signed($body, 'msg_retry'), $body);
		$order->setField('STATUS_ID', 'F'); // a manager moves it on meanwhile
		$order->save();
		$again = endpoint()->handle('POST', signed($body, 'msg_retry'), $body);
		eq($first, $again);
		eq('F', \Bitrix\Sale\Order::load($order->getId())->getField('STATUS_ID'), 'the retry did not move the order back');
	}

	/** @testdox without a configured secret the endpoint refuses everything (503) */
	public function testWithoutAConfiguredSecretTheEndpointRefusesEverything(): void
	{
		configure('http://127.0.0.1:9', ['signing_secret' => '']);
		$body = '{"order_id":"1","status":"P"}';
		eq(503, endpoint()->handle('POST', signed($body), $body)[0]);
	}
}

const NOW = 1773385500;

function endpoint(): StatusEndpoint
{
	return new StatusEndpoint(\Orderbridge\Config::load(), null, null, function () {
		return NOW;
	});
}

function signed(string $body, string $id = 'msg_status_1', int $ts = NOW, string $secret = SECRET): array
{
	return Signature::headers($secret, $id, $ts, $body);
}

/** A saved order, with the module installed and posting to $t. */
function saved_order(FakeTransport $t): \Bitrix\Sale\Order
{
	configure();
	install_module();
	handlers_use($t);
	$order = individual_order();
	$order->save();
	\Orderbridge\EventHandlers::reset(); // the status call is another request
	$t->requests = [];
	return $order;
}
