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

	/** @testdox the request kind: admin panel, 1C exchange, cron and CLI are not a buyer's checkout */
	public function testTheRequestKindAdminPanel1CExchangeCronAndCLI(): void
	{
		$kind = function (string $sapi, array $constants, array $server): string {
			Visit::$environment = ['sapi' => $sapi, 'constants' => $constants, 'server' => $server];
			return Visit::requestKind();
		};
		$page = ['SCRIPT_NAME' => '/personal/order/make/index.php', 'REQUEST_URI' => '/personal/order/make/?ORDER_ID=1'];
		eq('public', $kind('fpm-fcgi', [], $page));
		eq('public', $kind('apache2handler', ['ADMIN_SECTION' => false, 'BX_CRONTAB_SUPPORT' => true], $page),
			'BX_CRONTAB_SUPPORT only says agents run from cron; dbconn.php defines it on every hit');
		eq('admin', $kind('fpm-fcgi', ['ADMIN_SECTION' => true],
			['SCRIPT_NAME' => '/bitrix/admin/sale_order_create.php', 'REQUEST_URI' => '/bitrix/admin/sale_order_create.php?lang=ru']));
		eq('admin', $kind('fpm-fcgi', ['ADMIN_SECTION' => true], $page), 'ADMIN_SECTION alone is enough');
		eq('admin', $kind('fpm-fcgi', [], ['SCRIPT_NAME' => '/bitrix/admin/sale_order_ajax.php']),
			'a script under /bitrix/admin/ even without the constant');
		eq('1c', $kind('fpm-fcgi', [], ['SCRIPT_NAME' => '/bitrix/admin/1c_exchange.php',
			'REQUEST_URI' => '/bitrix/admin/1c_exchange.php?type=sale&mode=import']),
			'sale/admin/1c_exchange.php defines no ADMIN_SECTION for type=sale');
		eq('1c', $kind('cgi-fcgi', [], ['SCRIPT_NAME' => '/bitrix/admin/1c_exchange.php']));
		eq('cron', $kind('cli', ['BX_CRONTAB' => true], []));
		eq('cli', $kind('cli', [], ['SCRIPT_NAME' => 'migrate.php']));
		Visit::$environment = null;
		eq('cli', Visit::requestKind(), 'this very process, read without the override');
	}

	/** @testdox an order made in the admin panel, by cron or CLI, or by the 1C exchange takes no visit or UTM, and the log says why */
	public function testAnOrderMadeOutsideACheckoutTakesNoVisit(): void
	{
		configure();
		install_module();
		handlers_use(new FakeTransport());
		$_COOKIE = ['roistat_visit' => '777001', 'utm_source' => 'manager-cookie'];
		$environments = [
			'admin' => ['sapi' => 'fpm-fcgi', 'constants' => ['ADMIN_SECTION' => true],
				'server' => ['SCRIPT_NAME' => '/bitrix/admin/sale_order_create.php']],
			'cron' => ['sapi' => 'cli', 'constants' => ['BX_CRONTAB' => true], 'server' => []],
			'cli' => ['sapi' => 'cli', 'constants' => [], 'server' => []],
			'1c' => ['sapi' => 'fpm-fcgi', 'constants' => [], 'server' => ['SCRIPT_NAME' => '/bitrix/admin/1c_exchange.php']],
		];
		foreach ($environments as $why => $environment) {
			Visit::$environment = $environment;
			$GLOBALS['log'] = [];
			$order = utm_order();
			$order->save();
			eq('', \Orderbridge\OrderProperty::value($order, 'ROISTAT_VISIT'), $why . ': no visit');
			eq('', \Orderbridge\OrderProperty::value($order, 'UTM_SOURCE'), $why . ': no UTM');
			ok(strpos(log_text(), 'outside a public checkout (' . $why . ')') !== false, $why . ' is logged: ' . log_text());
		}
		Visit::$environment = public_request();
		$order = utm_order();
		$order->save();
		eq('777001', \Orderbridge\OrderProperty::value($order, 'ROISTAT_VISIT'), 'a public checkout takes it');
		eq('manager-cookie', \Orderbridge\OrderProperty::value($order, 'UTM_SOURCE'));
	}

	/** @testdox on a sale module without getItemByOrderPropertyCode the visit is stored and the order is sent with it */
	public function testOnOldSaleTheVisitIsStoredAndSent(): void
	{
		\Bitrix\Sale\Order::$legacySale = true;
		configure();
		install_module();
		$transport = new FakeTransport();
		handlers_use($transport);
		$_REQUEST = ['roistat_visit' => '4521890'];
		$order = individual_order();
		ok(!method_exists($order->getPropertyCollection(), 'getItemByOrderPropertyCode'), 'the old collection');
		$order->save();
		eq('4521890', \Orderbridge\OrderProperty::value($order, 'ROISTAT_VISIT'));
		eq(1, count($transport->requests), 'the snapshot was built and sent');
		eq('4521890', json_decode($transport->requests[0]['body'], true)['order']['roistat_visit']);
		eq('', log_text(), 'nothing failed');
	}

	/** @testdox a handler that vetoes the property value: the visit is not claimed saved, and the veto is logged */
	public function testAVetoedVisitIsNotClaimedSaved(): void
	{
		configure();
		install_module();
		$transport = new FakeTransport();
		handlers_use($transport);
		\Bitrix\Main\EventManager::getInstance()->addEventHandler('sale', 'OnBeforeSalePropertyValueSetField',
			function (\Bitrix\Main\Event $event) {
				return new \Bitrix\Main\EventResult(\Bitrix\Main\EventResult::ERROR,
					new \Bitrix\Sale\ResultError('Property values are locked', 'LOCKED'));
			});
		$_REQUEST = ['roistat_visit' => '4521890'];
		$order = individual_order();
		eq(null, Visit::store($order, $_REQUEST, []), 'store() reports what the property holds: nothing');
		ok(strpos(log_text(), 'the visit was not saved') !== false && strpos(log_text(), 'Property values are locked') !== false,
			'the veto and its reason are logged: ' . log_text());
		$order->save();
		eq('', \Orderbridge\OrderProperty::value($order, 'ROISTAT_VISIT'));
		ok(!array_key_exists('roistat_visit', json_decode($transport->requests[0]['body'], true)['order']),
			'the order is still sent, without a visit');
	}

	/** @testdox checkout: UTM tags come from the request, else the cookies, into empty UTM properties only */
	public function testCheckoutUtmTagsComeFromTheRequestElseTheCookies(): void
	{
		configure();
		install_module();
		$transport = new FakeTransport();
		handlers_use($transport);
		$_REQUEST = ['utm_source' => 'yandex', 'order' => ['utm_medium' => 'cpc'], 'utm_campaign' => "spring\r\nsale",
			'utm_term' => ['not', 'a string']];
		$_COOKIE = ['utm_source' => 'google', 'utm_content' => str_repeat('ж', 200), 'utm_term' => 'kettles'];
		$order = utm_order(['UTM_CAMPAIGN' => 'set by the shop']);
		$order->save();
		$utm = json_decode($transport->requests[0]['body'], true)['order']['utm'];
		eq('yandex', $utm['source'], 'the request wins over the cookie');
		eq('cpc', $utm['medium'], 'sale.order.ajax sends its fields inside order[...]');
		eq('set by the shop', $utm['campaign'], 'a value the order already has is kept');
		eq(str_repeat('ж', 127), $utm['content'], 'from the cookie, cut to 255 bytes between characters');
		eq('kettles', $utm['term'], 'a request field that is not a string falls back to the cookie');
	}
}
