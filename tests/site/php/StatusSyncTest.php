<?php
/*
 * The status endpoint's side of two-way sync (issue #11): Bitrix's refusals are answered
 * 409/422 in its own words and never remembered; the deal id goes into B24_DEAL_ID without
 * an echo; a status change made through the endpoint goes back to orderbridge.
 * endpoint(), signed() and saved_order() are in StatusTest.php.
 */

use Orderbridge\Config;
use Bitrix\Main\Config\Option;
use Bitrix\Main\EventManager;
use Bitrix\Main\EventResult;
use Bitrix\Sale\Order;
use Bitrix\Sale\ResultError;

/** POSTs $request signed with $id; returns [code, answer]. */

final class StatusSyncTest extends \Orderbridge\Tests\TestCase
{
	/** @testdox cancelling a paid order: 409 with Bitrix's words, nothing saved, logged, and a retry is checked again */
	public function testCancellingAPaidOrder409WithBitrixS(): void
	{
		$t = new FakeTransport();
		$order = saved_order($t);
		$paid = Order::load($order->getId());
		$paid->setField('PAYED', 'Y');
		$paid->setField('SUM_PAID', 4990.0);
		$paid->save();
		\Orderbridge\EventHandlers::reset();
		$t->requests = [];
		$id = (string)$order->getId();

		[$code, $answer] = post_status(['order_id' => $id, 'status' => 'P', 'canceled' => true], 'msg_cancel_paid');
		eq(409, $code);
		eq(['error' => 'refused', 'field' => 'canceled', 'message' => 'The order has active payments'], $answer);
		eq('N', Order::load($order->getId())->getField('STATUS_ID'), 'the status set before the refusal was not saved');
		eq(false, Order::load($order->getId())->isCanceled());
		eq(0, count($t->requests), 'nothing saved, so nothing posted');
		ok(strpos(log_text(), 'error order=' . $id . ': ') !== false, 'logged as an error with the order id');
		ok(strpos(log_text(), 'The order has active payments') !== false, 'with Bitrix\'s words');

		// The payment is refunded; the same request (same webhook-id) is now applied, not answered from memory.
		$refunded = Order::load($order->getId());
		$refunded->setField('PAYED', 'N');
		$refunded->setField('SUM_PAID', 0.0);
		$refunded->save();
		[$code, $answer] = post_status(['order_id' => $id, 'status' => 'P', 'canceled' => true], 'msg_cancel_paid');
		eq(200, $code);
		eq([true, true, 'P'], [$answer['changed'], $answer['canceled'], $answer['status']]);
		ok(Order::load($order->getId())->isCanceled(), 'canceled now');
	}

	/** @testdox cancelling a shipped order is refused with Bitrix's words (409 canceled) */
	public function testCancellingAShippedOrderIsRefusedWithBitrix(): void
	{
		$order = saved_order(new FakeTransport());
		$shipped = Order::load($order->getId());
		$shipped->setField('DEDUCTED', 'Y');
		$shipped->save();
		[$code, $answer] = post_status(['order_id' => (string)$order->getId(), 'canceled' => true]);
		eq([409, 'canceled', 'The order has shipped products'], [$code, $answer['field'], $answer['message']]);
		eq(false, Order::load($order->getId())->isCanceled());
	}

	/** @testdox a status or un-cancel vetoed by a shop handler: 409 naming the field, with the handler's words */
	public function testAStatusOrUnCancelVetoedByA(): void
	{
		$cases = [
			['OnBeforeSaleOrderSetField', ['status' => 'F'], 'status'],
			['OnSaleBeforeStatusOrderChange', ['status' => 'F'], 'status'],
			['OnSaleBeforeOrderCanceled', ['canceled' => false], 'canceled'],
		];
		foreach ($cases as $i => [$event, $change, $field]) {
			cleanup_state(); // each case on a fresh shop
			fresh_state();
			$order = saved_order(new FakeTransport());
			if ($field === 'canceled') {
				$c = Order::load($order->getId());
				$c->setField('CANCELED', 'Y');
				$c->save();
			}
			veto($event, 'Managers only: rule ' . $i);
			[$code, $answer] = post_status(['order_id' => (string)$order->getId()] + $change, 'msg_veto_' . $i);
			eq([409, 'refused', $field, 'Managers only: rule ' . $i], [$code, $answer['error'], $answer['field'],
				$answer['message']], $event);
			$now = Order::load($order->getId());
			eq($field === 'canceled' ? ['N', true] : ['N', false], [$now->getField('STATUS_ID'), $now->isCanceled()],
				$event . ': nothing changed');
		}
	}

	/** @testdox save() refused (an OnSaleOrderBeforeSaved veto): 422 with Bitrix's words, nothing changed, not remembered */
	public function testSaveRefusedAnOnSaleOrderBeforeSavedVeto422WithBitrix(): void
	{
		$order = saved_order(new FakeTransport());
		$id = (string)$order->getId();
		$vetoing = true;
		EventManager::getInstance()->addEventHandler('sale', 'OnSaleOrderBeforeSaved', function () use (&$vetoing) {
			return $vetoing ? new EventResult(EventResult::ERROR, new ResultError('Order is locked by 1C exchange'))
				: null;
		});
		$request = ['order_id' => $id, 'status' => 'P', 'deal_id' => '55',
			'deal_url' => 'https://portal.example/crm/deal/details/55/'];
		[$code, $answer] = post_status($request, 'msg_locked');
		eq(422, $code);
		eq(['error' => 'refused', 'field' => 'order', 'message' => 'Order is locked by 1C exchange'], $answer);
		eq(['N', ''], [Order::load($order->getId())->getField('STATUS_ID'), deal_id_of($order->getId())]);
		eq('', Option::get(Config::MODULE_ID, 'b24_portal_url', ''), 'the portal is not learnt from a refused request');
		ok(strpos(log_text(), 'order=' . $id) !== false && strpos(log_text(), 'Order is locked by 1C exchange') !== false,
			'logged with the order id');

		$vetoing = false;
		[$code, $answer] = post_status($request, 'msg_locked');
		eq([200, 'P', '55'], [$code, $answer['status'], $answer['deal_id']], 'the retry is applied');
	}

	/** @testdox a status change made through the endpoint is posted back to orderbridge as a snapshot */
	public function testAStatusChangeMadeThroughTheEndpointIs(): void
	{
		$t = new FakeTransport();
		$order = saved_order($t);
		[$code] = post_status(['order_id' => (string)$order->getId(), 'status' => 'F']);
		eq(200, $code);
		eq(1, count($t->requests), 'the daemon learns the new status (for Roistat); the daemon stops the echo');
		eq('F', json_decode($t->requests[0]['body'], true)['order']['status']);
	}

	/** @testdox deal_id alone is written to B24_DEAL_ID and saved, without a snapshot; changed is false */
	public function testDealIdAloneIsWrittenToB24DEAL(): void
	{
		$t = new FakeTransport();
		$order = saved_order($t);
		$id = (string)$order->getId();
		[$code, $answer] = post_status(['order_id' => $id, 'deal_id' => '55',
			'deal_url' => 'https://portal.example/crm/deal/details/55/']);
		eq(200, $code);
		eq(['order_id' => $id, 'status' => 'N', 'canceled' => false, 'changed' => false, 'deal_id' => '55'], $answer);
		eq('55', deal_id_of($order->getId()), 'stored in the order');
		eq(0, count($t->requests), 'a deal id changes nothing a snapshot carries: no echo');
		eq('https://portal.example', Option::get(Config::MODULE_ID, 'b24_portal_url', ''), 'the portal: scheme://host');

		// A later change by a manager, in another request, is posted as usual.
		\Orderbridge\EventHandlers::reset();
		$later = Order::load($order->getId());
		$later->setField('STATUS_ID', 'P');
		$later->save();
		eq(1, count($t->requests), 'the suppression ended with the endpoint\'s request');
	}

	/** @testdox status and deal_id together: both saved, and the status change is posted back */
	public function testStatusAndDealIdTogetherBothSavedAnd(): void
	{
		$t = new FakeTransport();
		$order = saved_order($t);
		[$code, $answer] = post_status(['order_id' => (string)$order->getId(), 'status' => 'P', 'deal_id' => '123456789012345678']);
		eq([200, true, '123456789012345678'], [$code, $answer['changed'], $answer['deal_id']]);
		eq('123456789012345678', deal_id_of($order->getId()));
		eq(1, count($t->requests));
	}

	/** @testdox every answer says which deal the order has (null before the first one) */
	public function testEveryAnswerSaysWhichDealTheOrderHas(): void
	{
		$order = saved_order(new FakeTransport());
		$id = (string)$order->getId();
		eq(null, post_status(['order_id' => $id, 'status' => 'P'], 'msg_a')[1]['deal_id']);
		post_status(['order_id' => $id, 'deal_id' => '77'], 'msg_b');
		eq('77', post_status(['order_id' => $id, 'canceled' => true], 'msg_c')[1]['deal_id']);
	}

	/** @testdox on a sale module without getItemByOrderPropertyCode the property is found by walking the collection */
	public function testOnASaleModuleWithoutGetItemByOrderPropertyCodeTheProperty(): void
	{
		configure();
		install_module();
		$old = new class([new \Bitrix\Sale\PropertyValue(['CODE' => 'FIO'], 'Ivan'),
			new \Bitrix\Sale\PropertyValue(['CODE' => 'B24_DEAL_ID'], '')]) implements \IteratorAggregate {
			private $items;

			public function __construct(array $items)
			{
				$this->items = $items;
			}

			public function getIterator(): \Iterator
			{
				return new \ArrayIterator($this->items);
			}
		};
		$order = new class(['ID' => 7, 'PRICE' => 1.0], [], []) extends Order {
			public $old;

			public function getPropertyCollection()
			{
				return $this->old;
			}
		};
		$order->old = $old;
		$endpoint = new \Orderbridge\StatusEndpoint(\Orderbridge\Config::load(), function () use ($order) {
			return $order;
		}, null, function () {
			return NOW;
		});
		$body = json_encode(['order_id' => '7', 'deal_id' => '55']);
		[$code, $answer] = $endpoint->handle('POST', signed($body), $body);
		eq([200, '55'], [$code, $answer['deal_id']]);
		eq('55', iterator_to_array($old)[1]->getValue());
	}

	/** @testdox an order without the B24_DEAL_ID property (not reinstalled): 409 deal_id, nothing saved */
	public function testAnOrderWithoutTheB24DEALIDProperty(): void
	{
		configure();
		install_module();
		handlers_use(new FakeTransport());
		\Bitrix\Sale\Internals\PersonTypeTable::add(['NAME' => 'Added after install', 'LID' => 's1']);
		$order = individual_order(['PERSON_TYPE_ID' => 3, 'STATUS_ID' => 'N']);
		$order->save();
		[$code, $answer] = post_status(['order_id' => (string)$order->getId(), 'status' => 'P', 'deal_id' => '55']);
		eq([409, 'refused', 'deal_id'], [$code, $answer['error'], $answer['field']]);
		ok(strpos($answer['message'], 'B24_DEAL_ID') !== false, 'names the property: ' . $answer['message']);
		eq('N', Order::load($order->getId())->getField('STATUS_ID'), 'nothing saved');
	}

	/** @testdox a B24_DEAL_ID write vetoed by a shop handler: 409 deal_id with its words */
	public function testAB24DEALIDWriteVetoedByA(): void
	{
		$order = saved_order(new FakeTransport());
		veto('OnBeforeSalePropertyValueSetField', 'Deal ids are read-only here');
		[$code, $answer] = post_status(['order_id' => (string)$order->getId(), 'deal_id' => '55']);
		eq([409, 'deal_id', 'Deal ids are read-only here'], [$code, $answer['field'], $answer['message']]);
		eq('', deal_id_of($order->getId()));
	}

	/** @testdox bad deal_id, deal_url or a request with nothing to do: 400 naming the field, nothing changed */
	public function testBadDealIdDealUrlOrARequest(): void
	{
		$order = saved_order(new FakeTransport());
		$id = (string)$order->getId();
		$prefix = 'https://portal.example/crm/deal/details/55/?';
		$long = $prefix . str_repeat('a', 512 - strlen($prefix));
		eq(512, strlen($long), 'fixture: 512 bytes');
		$cases = [
			['status', ['order_id' => $id]],
			['status', ['order_id' => $id, 'deal_url' => 'https://portal.example/']],
			['deal_id', ['order_id' => $id, 'deal_id' => '']],
			['deal_id', ['order_id' => $id, 'deal_id' => '12a']],
			['deal_id', ['order_id' => $id, 'deal_id' => '1234567890123456789']],
			['deal_id', ['order_id' => $id, 'deal_id' => 5.5]],
			['deal_id', ['order_id' => $id, 'deal_id' => ['55']]],
			['deal_id', ['order_id' => $id, 'deal_id' => ' 55']],
			['deal_url', ['order_id' => $id, 'deal_id' => '55', 'deal_url' => $long . 'a']],
			['deal_url', ['order_id' => $id, 'deal_id' => '55', 'deal_url' => 'http://portal.example/crm/deal/details/55/']],
			['deal_url', ['order_id' => $id, 'deal_id' => '55', 'deal_url' => 'javascript:alert(1)//https://x']],
			['deal_url', ['order_id' => $id, 'deal_id' => '55', 'deal_url' => 'https://user:pw@portal.example/']],
			['deal_url', ['order_id' => $id, 'deal_id' => '55', 'deal_url' => 'https://portal.example"><b/']],
			['deal_url', ['order_id' => $id, 'deal_id' => '55', 'deal_url' => 'https://portal.example/a b']],
			['deal_url', ['order_id' => $id, 'deal_id' => '55', 'deal_url' => 'https:///crm/']],
			['deal_url', ['order_id' => $id, 'deal_id' => '55', 'deal_url' => 'https://portal.example:0/']],
			['deal_url', ['order_id' => $id, 'deal_id' => '55', 'deal_url' => 55]],
			['deal_url', ['order_id' => $id, 'deal_id' => '55', 'deal_url' => 'http://127.0.0.1.evil.example/']],
		];
		foreach ($cases as $i => [$field, $req]) {
			[$code, $answer] = post_status($req, 'msg_bad_' . $i);
			eq([400, 'invalid_field', $field], [$code, $answer['error'] ?? null, $answer['field'] ?? null],
				json_encode($req));
			ok(($answer['message'] ?? '') !== '', 'a message');
		}
		eq('', deal_id_of($order->getId()), 'no deal id stored');
		eq('', Option::get(Config::MODULE_ID, 'b24_portal_url', ''), 'no portal learnt');

		// The limits themselves are accepted: 512 bytes, and plain http to a loopback host.
		foreach ([$long, 'http://127.0.0.1:8089/crm/deal/details/55/', 'http://localhost/x', 'http://[::1]:9/']
			as $i => $url) {
			[$code, $answer] = post_status(['order_id' => $id, 'deal_id' => '55', 'deal_url' => $url], 'msg_ok_' . $i);
			eq(200, $code, $url . ': ' . json_encode($answer));
		}
		eq('http://[::1]:9', Option::get(Config::MODULE_ID, 'b24_portal_url', ''), 'the port is kept');
	}
}

function post_status(array $request, string $id = 'msg_sync_1'): array
{
	$body = json_encode($request);
	return endpoint()->handle('POST', signed($body, $id), $body);
}

function deal_id_of(int $orderId): ?string
{
	$p = Order::load($orderId)->getPropertyCollection()->getItemByOrderPropertyCode('B24_DEAL_ID');
	return $p === null ? null : (string)$p->getValue();
}

/** A shop handler that vetoes $event with $message (what a module or init.php would do). */
function veto(string $event, string $message, ?callable $when = null): void
{
	EventManager::getInstance()->addEventHandler('sale', $event, function ($e) use ($message, $when) {
		if ($when !== null && !$when($e)) {
			return null;
		}
		return new EventResult(EventResult::ERROR, new ResultError($message, 'SHOP_RULE'));
	});
}
