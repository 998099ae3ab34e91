<?php
/* The Roistat visit of a new order: taken from the request, else the cookie; digits only. */

use Orderbridge\Visit;

final class VisitTest extends \Orderbridge\Tests\TestCase
{
	/** @testdox a visit is 1 to 32 ASCII digits and nothing else */
	public function testAVisitIs1To32ASCIIDigits(): void
	{
		eq('4521890', Visit::clean('4521890'));
		eq('4521890', Visit::clean(' 4521890 '));
		eq('7', Visit::clean(7));
		eq(str_repeat('1', 32), Visit::clean(str_repeat('1', 32)));
		foreach (['', 'nocookie', '123abc', '<script>', '12 3', "123\n4", str_repeat('1', 33), '١٢٣',
			'1e5', '0x1F', null, ['1'], 1.5] as $bad) {
			eq(null, Visit::clean($bad), var_export($bad, true));
		}
	}

	/** @testdox the form field wins over the cookie, and a hostile field does not hide a good cookie */
	public function testTheFormFieldWinsOverTheCookieAnd(): void
	{
		eq('111', Visit::pick(['roistat_visit' => '111'], ['roistat_visit' => '222']));
		eq('333', Visit::pick(['order' => ['roistat_visit' => '333']], ['roistat_visit' => '222']),
			'sale.order.ajax sends its form fields inside order[...]');
		eq('222', Visit::pick(['roistat_visit' => 'DROP TABLE'], ['roistat_visit' => '222']));
		eq('444', Visit::pick([], ['roistat_visit' => '222'], '444'), 'a value already in the property (ORDER_PROP_<id>)');
		eq(null, Visit::pick(['roistat_visit' => ''], ['roistat_visit' => 'nocookie']));
	}

	/** @testdox checkout: a new order gets the visit from the request into ROISTAT_VISIT */
	public function testCheckoutANewOrderGetsTheVisitFrom(): void
	{
		configure();
		install_module();
		handlers_use(new FakeTransport());
		$_REQUEST = ['roistat_visit' => '4521890'];
		$_COOKIE = ['roistat_visit' => '999'];
		$order = individual_order();
		$order->save();
		eq('4521890', $order->getPropertyCollection()->getItemByOrderPropertyCode('ROISTAT_VISIT')->getValue());
	}

	/** @testdox checkout: without a form field the visit comes from the cookie */
	public function testCheckoutWithoutAFormFieldTheVisitComes(): void
	{
		configure();
		install_module();
		handlers_use(new FakeTransport());
		$_COOKIE = ['roistat_visit' => '777001'];
		$order = individual_order();
		$order->save();
		eq('777001', $order->getPropertyCollection()->getItemByOrderPropertyCode('ROISTAT_VISIT')->getValue());
	}

	/** @testdox checkout: a hostile cookie is dropped, the order is saved and sent without a visit */
	public function testCheckoutAHostileCookieIsDroppedTheOrder(): void
	{
		configure();
		install_module();
		$transport = new FakeTransport();
		handlers_use($transport);
		$_COOKIE = ['roistat_visit' => '"><img src=x onerror=alert(1)>'];
		$order = individual_order([], '<b>injected via ORDER_PROP</b>');
		$order->save();
		eq('', $order->getPropertyCollection()->getItemByOrderPropertyCode('ROISTAT_VISIT')->getValue());
		eq(1, count($transport->requests), 'the order itself still goes out');
		ok(!array_key_exists('roistat_visit', json_decode($transport->requests[0]['body'], true)['order']),
			'no roistat_visit in the snapshot');
		ok(strpos(log_text(), 'dropped an invalid roistat_visit') !== false, 'the drop is logged');
	}

	/** @testdox an existing order keeps its visit when it is saved again with another cookie */
	public function testAnExistingOrderKeepsItsVisitWhenIt(): void
	{
		configure();
		install_module();
		handlers_use(new FakeTransport());
		$_COOKIE = ['roistat_visit' => '100'];
		$order = individual_order();
		$order->save();
		$_COOKIE = ['roistat_visit' => '200'];
		$order->setField('STATUS_ID', 'P');
		$order->save();
		eq('100', $order->getPropertyCollection()->getItemByOrderPropertyCode('ROISTAT_VISIT')->getValue());
	}
}
