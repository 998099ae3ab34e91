<?php
/* Install/uninstall and the event handlers, driven through Order::save() like a checkout. */

use Orderbridge\Config;
use Bitrix\Main\EventManager;
use Bitrix\Sale\Order;
use Orderbridge\EventHandlers;

final class HandlersTest extends \Orderbridge\Tests\TestCase
{
	/** @testdox install registers the five sale handlers, the admin block, the agent, ROISTAT_VISIT and the status entry */
	public function testInstallRegistersTheFiveSaleHandlersTheAdmin(): void
	{
		configure();
		\Bitrix\Sale\Internals\PersonTypeTable::add(['NAME' => 'Individual', 'LID' => 's1']);
		\Bitrix\Sale\Internals\PersonTypeTable::add(['NAME' => 'Legal entity', 'LID' => 's1']);
		// Person type 2 already has the property (a reinstall): it must not get a second one.
		ok(\Bitrix\Sale\Internals\OrderPropsTable::add(['PERSON_TYPE_ID' => 2, 'CODE' => 'ROISTAT_VISIT',
			'NAME' => 'Roistat visit', 'TYPE' => 'STRING', 'PROPS_GROUP_ID' => 1])->isSuccess(), 'fixture property added');
		eq(null, run_install(new \orderbridge_connector())['error']);

		$events = array_map(function ($r) {
			return $r['from'] . ':' . $r['event'] . '→' . $r['class'] . '::' . $r['method'];
		}, EventManager::getInstance()->registered);
		eq([
			'sale:OnSaleOrderBeforeSaved→\Orderbridge\EventHandlers::onOrderBeforeSaved',
			'sale:OnSaleOrderSaved→\Orderbridge\EventHandlers::onOrderSaved',
			'sale:OnSaleStatusOrderChange→\Orderbridge\EventHandlers::onStatusChange',
			'sale:OnSaleOrderPaid→\Orderbridge\EventHandlers::onPaid',
			'sale:OnSaleOrderCanceled→\Orderbridge\EventHandlers::onCanceled',
			'main:OnAdminSaleOrderViewDraggable→\Orderbridge\AdminOrderBlock::onInit',
		], $events);
		foreach (EventManager::getInstance()->registered as $r) {
			ok(is_callable([$r['class'], $r['method']]), $r['method'] . ' exists');
		}
		eq([['name' => '\Orderbridge\Agent::resend();', 'module' => Config::MODULE_ID, 'interval' => 60]], \CAgent::$agents);

		$props = \Bitrix\Sale\Internals\OrderPropsTable::getList(['filter' => ['=CODE' => 'ROISTAT_VISIT']]);
		$byType = [];
		while ($p = $props->fetch()) {
			$byType[] = $p['PERSON_TYPE_ID'];
			if ($p['PERSON_TYPE_ID'] === 1) {
				eq('Y', $p['UTIL'], 'a service property: not shown to the buyer');
				eq('N', $p['REQUIED'], 'never blocks a checkout');
				ok($p['PROPS_GROUP_ID'] > 0, 'in a property group');
			}
		}
		eq([2, 1], $byType, 'one ROISTAT_VISIT per person type');

		$proxy = $_SERVER['DOCUMENT_ROOT'] . '/bitrix/tools/orderbridge/status.php';
		ok(is_file($proxy), 'status entry installed');
		$out = [];
		exec(escapeshellarg(PHP_BINARY) . ' -l ' . escapeshellarg($proxy), $out, $rc);
		eq(0, $rc, 'the generated entry is valid PHP');
		ok(strpos(file_get_contents($proxy), 'tools/status.php') !== false, 'it includes the module file');
	}

	/** @testdox uninstall removes the handlers, the agent and the status entry, and keeps the orders' property */
	public function testUninstallRemovesTheHandlersTheAgentAndThe(): void
	{
		$module = install_module();
		run_uninstall($module);
		eq([], EventManager::getInstance()->registered);
		eq([], \CAgent::$agents);
		ok(!file_exists($_SERVER['DOCUMENT_ROOT'] . '/bitrix/tools/orderbridge/status.php'), 'entry removed');
		ok(\Bitrix\Sale\Internals\OrderPropsTable::getList(['filter' => ['=CODE' => 'ROISTAT_VISIT']])->fetch() !== false,
			'ROISTAT_VISIT stays: it holds order data');
		eq([], \Bitrix\Main\Config\Option::$values[Config::MODULE_ID] ?? [], 'settings removed');
	}

	/** @testdox install creates B24_DEAL_ID once per person type, a service property; installing again adds none */
	public function testInstallCreatesB24DEALIDOncePerPerson(): void
	{
		configure();
		$module = install_module();
		$props = properties_coded();
		eq([1, 2], array_column($props, 'PERSON_TYPE_ID'), 'one per person type');
		foreach ($props as $p) {
			eq(['STRING', 'N', 'Y', 'Y', 'ORDER'], [$p['TYPE'], $p['REQUIRED'], $p['UTIL'], $p['ACTIVE'], $p['ENTITY_TYPE']],
				'text, not required, hidden from buyers (UTIL), active, an order property');
			ok($p['PROPS_GROUP_ID'] > 0, 'in a property group of its person type');
		}
		run_install($module);
		eq(2, count(properties_coded()), 'a second install adds no duplicates');
		ok(individual_order()->getPropertyCollection()->getItemByOrderPropertyCode('B24_DEAL_ID') !== null,
			'an order of the shop has the property');
	}

	/** @testdox uninstall removes B24_DEAL_ID and keeps ROISTAT_VISIT */
	public function testUninstallRemovesB24DEALIDAndKeepsROISTAT(): void
	{
		$module = install_module();
		run_uninstall($module);
		eq([], properties_coded());
		eq(2, count(properties_coded('ROISTAT_VISIT')), 'ROISTAT_VISIT stays');
	}

	/** @testdox a checkout posts the new order once, although several events fire */
	public function testACheckoutPostsTheNewOrderOnceAlthough(): void
	{
		configure();
		install_module();
		$t = new FakeTransport();
		handlers_use($t);
		$_REQUEST = ['roistat_visit' => '4521890'];
		$order = individual_order(['STATUS_ID' => 'N']);
		$order->setField('PAYED', 'Y'); // paid at checkout: OnSaleOrderPaid fires after OnSaleOrderSaved
		$order->save();
		eq(1, count($t->requests));
		$s = json_decode($t->requests[0]['body'], true)['order'];
		eq((string)$order->getId(), $s['id']);
		eq('4521890', $s['roistat_visit']);
		eq(true, $s['paid']);
	}

	/** @testdox a later status change, payment or cancellation posts a newer snapshot */
	public function testALaterStatusChangePaymentOrCancellationPosts(): void
	{
		configure();
		install_module();
		$t = new FakeTransport();
		handlers_use($t);
		$order = individual_order();
		$order->save();
		// Cancelled, un-cancelled, then paid: Bitrix refuses to cancel a paid order.
		foreach ([['STATUS_ID', 'P'], ['CANCELED', 'Y'], ['CANCELED', 'N'], ['PAYED', 'Y']] as [$field, $value]) {
			EventHandlers::reset(); // a new request, as in Bitrix's admin
			ok($order->setField($field, $value)->isSuccess(), "$field set");
			$order->save();
		}
		eq(5, count($t->requests));
		$versions = [];
		foreach ($t->requests as $r) {
			$versions[] = json_decode($r['body'], true)['order']['version'];
		}
		$sorted = $versions;
		sort($sorted);
		eq($sorted, $versions, 'versions increase');
		eq(count($versions), count(array_unique($versions)), 'no two alike');
		$last = json_decode(end($t->requests)['body'], true)['order'];
		eq(['P', true, false], [$last['status'], $last['paid'], $last['canceled']]);
		eq(true, json_decode($t->requests[2]['body'], true)['order']['canceled'], 'the cancellation was posted');
	}

	/** @testdox the special events alone (without OnSaleOrderSaved) still post the order */
	public function testTheSpecialEventsAloneWithoutOnSaleOrderSavedStillPost(): void
	{
		configure();
		install_module();
		$t = new FakeTransport();
		handlers_use($t);
		$order = individual_order(['ID' => 900, 'STATUS_ID' => 'F']);
		foreach (['OnSaleStatusOrderChange' => 'onStatusChange', 'OnSaleOrderPaid' => 'onPaid',
			'OnSaleOrderCanceled' => 'onCanceled'] as $event => $method) {
			EventHandlers::reset();
			(new \Bitrix\Main\Event('sale', $event, ['ENTITY' => $order]))->send();
		}
		eq(['900', '900', '900'], $t->orderIds());
	}

	/** @testdox an exception inside a handler never reaches the checkout; the order is queued for a rebuild */
	public function testAnExceptionInsideAHandlerNeverReachesThe(): void
	{
		configure();
		install_module();
		handlers_use(new FakeTransport());
		$order = new class(['PERSON_TYPE_ID' => 1, 'PRICE' => 10.0, 'DATE_INSERT' => new \Bitrix\Main\Type\DateTime()], [], []) extends Order {
			public function getPropertyCollection()
			{
				throw new \RuntimeException('property collection exploded');
			}
		};
		$order->save(); // must not throw
		ok($order->getId() > 0, 'the order was saved');
		ok(strpos(log_text(), 'property collection exploded') !== false, 'the error is logged');
		ok(strpos(log_text(), 'order=' . $order->getId()) !== false, 'with the order id');
		$queued = (new \Orderbridge\Queue())->rowsOf((string)$order->getId());
		eq(1, count($queued));
		eq([(string)$order->getId(), ''], [$queued[0]['ORDER_ID'], $queued[0]['BODY']], 'queued by id, to rebuild');
	}

	/** @testdox a failing transport and a missing queue table still do not break the checkout */
	public function testAFailingTransportAndAMissingQueueTableStill(): void
	{
		configure('http://127.0.0.1:9');
		install_module();
		\Orderbridge\QueueTable::dropIfExists(); // a query on it throws, as MySQL's "doesn't exist" does
		handlers_use(new FakeTransport([new \Error('curl went away')]));
		$order = individual_order();
		$order->save();
		ok($order->getId() > 0, 'saved');
		ok(strpos(log_text(), 'curl went away') !== false, 'the transport error is logged');
		ok(strpos(log_text(), 'cannot spool') !== false, 'and that it could not be spooled');
	}

	/** @testdox OnSaleOrderBeforeSaved failing does not stop the save */
	public function testOnSaleOrderBeforeSavedFailingDoesNotStopTheSave(): void
	{
		configure();
		install_module();
		handlers_use(new FakeTransport());
		$_REQUEST = ['roistat_visit' => '1'];
		$order = new class(['PERSON_TYPE_ID' => 1, 'PRICE' => 10.0, 'DATE_INSERT' => new \Bitrix\Main\Type\DateTime()], [], []) extends Order {
			private $calls = 0;

			public function getPropertyCollection()
			{
				if ($this->calls++ === 0) {
					throw new \LogicException('not yet');
				}
				return parent::getPropertyCollection();
			}
		};
		$order->save();
		ok($order->getId() > 0, 'saved');
		ok(strpos(log_text(), 'visit capture failed: not yet') !== false, 'logged');
	}
}

/** The rows of b_sale_order_props with this CODE. */
function properties_coded(string $code = 'B24_DEAL_ID'): array
{
	$rows = [];
	$res = \Bitrix\Sale\Internals\OrderPropsTable::getList(['filter' => ['=CODE' => $code]]);
	while ($row = $res->fetch()) {
		$rows[] = $row;
	}
	return $rows;
}
