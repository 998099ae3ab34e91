<?php
/*
 * The block on the admin's order page (sale_order_view.php) that links the order to its
 * Bitrix24 deal, driven the way the page drives it: CAdminDraggableBlockEngine calls the
 * handlers of main's OnAdminSaleOrderViewDraggable that the installer registered.
 */

use Orderbridge\Config;
use Bitrix\Main\Config\Option;
use Bitrix\Sale\Order;

/** An installed shop and a saved order whose B24_DEAL_ID holds $deal. */

final class AdminBlockTest extends \Orderbridge\Tests\TestCase
{
	/** @testdox the order page shows the deal as a link to the portal: "Bitrix24 deal #55" */
	public function testTheOrderPageShowsTheDealAsA(): void
	{
		$order = order_with_deal('55');
		Option::set(Config::MODULE_ID, 'b24_portal_url', 'https://portal.example');
		[$brief, $content] = admin_page($order);
		eq(1, count($brief), 'one block');
		$html = reset($content);
		eq('<a href="https://portal.example/crm/deal/details/55/" target="_blank" rel="noopener noreferrer">'
			. 'Bitrix24 deal #55</a>', $html);
		eq('Bitrix24', reset($brief)['TITLE']);
		eq('', (new \CAdminDraggableBlockEngine('OnAdminSaleOrderViewDraggable', ['ORDER' => $order]))
			->getBlockContent('some_other_module_block', 'tab_order'), 'nothing inside other modules\' blocks');
	}

	/** @testdox the block escapes what it prints; a deal id or portal that is not one is shown as text, not linked */
	public function testTheBlockEscapesWhatItPrintsADeal(): void
	{
		$order = order_with_deal('55"><script>alert(1)</script>');
		Option::set(Config::MODULE_ID, 'b24_portal_url', 'https://portal.example');
		[, $content] = admin_page($order);
		$html = reset($content);
		ok(strpos($html, '<script') === false && strpos($html, '<a') === false, 'no markup from the value: ' . $html);
		ok(strpos($html, 'Bitrix24 deal #55&quot;&gt;&lt;script&gt;') !== false, 'shown escaped: ' . $html);

		$order = order_with_deal('56');
		Option::set(Config::MODULE_ID, 'b24_portal_url', 'https://portal.example/"onmouseover="alert(1)');
		[, $content] = admin_page($order);
		eq('<span>Bitrix24 deal #56</span>', reset($content), 'an option that is not a portal is not linked');

		Option::set(Config::MODULE_ID, 'b24_portal_url', '');
		[, $content] = admin_page($order);
		eq('<span>Bitrix24 deal #56</span>', reset($content), 'before the portal is known: text');
	}

	/** @testdox an order without a deal has no block, and a failing order does not break the page */
	public function testAnOrderWithoutADealHasNoBlock(): void
	{
		$order = order_with_deal('');
		eq([[], []], admin_page($order));

		$broken = new class(['ID' => 9, 'PRICE' => 1.0], [], []) extends Order {
			public function getPropertyCollection()
			{
				throw new \RuntimeException('property collection exploded');
			}
		};
		eq([[], []], admin_page($broken));
		ok(strpos(log_text(), 'property collection exploded') !== false, 'logged');
		ok(strpos(log_text(), 'order=9') !== false, 'with the order id');
	}

	/** @testdox the admin handler is registered on install and removed on uninstall */
	public function testTheAdminHandlerIsRegisteredOnInstallAnd(): void
	{
		configure();
		$module = install_module();
		$main = array_values(array_filter(\Bitrix\Main\EventManager::getInstance()->registered, function ($r) {
			return $r['from'] === 'main';
		}));
		eq([['main', 'OnAdminSaleOrderViewDraggable', Config::MODULE_ID]], array_map(function ($r) {
			return [$r['from'], $r['event'], $r['to']];
		}, $main));
		ok(is_callable([$main[0]['class'], $main[0]['method']]), 'the handler exists');
		run_uninstall($module);
		eq([], \Bitrix\Main\EventManager::getInstance()->registered);
	}
}

function order_with_deal(string $deal): Order
{
	configure();
	install_module();
	handlers_use(new FakeTransport());
	$order = individual_order();
	if ($deal !== '') {
		$order->getPropertyCollection()->getItemByOrderPropertyCode('B24_DEAL_ID')->setValue($deal);
	}
	$order->save();
	return Order::load($order->getId());
}

/** [brief, content of every custom block] as sale/admin/order_view.php would print them. */
function admin_page(Order $order): array
{
	$engine = new \CAdminDraggableBlockEngine('OnAdminSaleOrderViewDraggable', ['ORDER' => $order]);
	$brief = $engine->getBlocksBrief();
	$content = [];
	foreach (array_keys($brief) as $code) {
		$content[$code] = $engine->getBlockContent($code, 'tab_order');
	}
	return [$brief, $content];
}
