<?php
/*
 * A block on the admin's order page (Store → Orders → an order) that shows the order's
 * Bitrix24 deal as a link to the deal's card on the portal: "Bitrix24 deal #55".
 * The hook: sale/admin/order_view.php builds
 *   new CAdminDraggableBlockEngine('OnAdminSaleOrderViewDraggable', ['ORDER' => $order])
 * which calls onInit() (registered on main's event of that name by install/index.php) and
 * then, per main/interface/admin_tabcontrol_drag.php, getBlocksBrief($args) for the block
 * list and getBlockContent($code, $tab, $args) for every custom block, its own or not. The
 * page prints both as they are, so everything here is escaped. The deal id comes from the
 * B24_DEAL_ID property (a manager can edit it) and the portal from the b24_portal_url option:
 * a value that is not a deal id or not a portal is shown as text, never linked.
 * Invariant: nothing thrown in here reaches the page; it is logged and the block is left out.
 */

namespace Orderbridge;

use Bitrix\Main\Localization\Loc;

Loc::loadMessages(__FILE__);

final class AdminOrderBlock
{
	public const BLOCK = 'orderbridge_b24_deal';

	/** The handler of main's OnAdminSaleOrderViewDraggable. */
	public static function onInit($args = []): array
	{
		return [
			'BLOCKSET' => 'orderbridge',
			'getBlocksBrief' => [self::class, 'blocksBrief'],
			'getBlockContent' => [self::class, 'blockContent'],
		];
	}

	/** The block, titled, when the order has a deal; no block otherwise. */
	public static function blocksBrief($args): array
	{
		if (self::dealOf($args) === null) {
			return [];
		}
		return [self::BLOCK => ['TITLE' => self::escape(Loc::getMessage('ORDERBRIDGE_B24_BLOCK_TITLE'))]];
	}

	public static function blockContent($blockCode, $selectedTab, $args): string
	{
		if ($blockCode !== self::BLOCK) {
			return '';
		}
		$deal = self::dealOf($args);
		if ($deal === null) {
			return '';
		}
		try {
			return self::render($deal, Config::load()->portalUrl);
		} catch (\Throwable $e) {
			Log::error('admin order block failed: ' . $e->getMessage());
			return '';
		}
	}

	/** The HTML of the block: a link when both the deal id and the portal are well-formed. */
	public static function render(string $dealId, string $portal): string
	{
		$text = self::escape(Loc::getMessage('ORDERBRIDGE_B24_DEAL', ['#ID#' => $dealId]));
		if (Deal::cleanId($dealId) === null || $portal === '' || Deal::portalOf($portal) !== $portal) {
			return '<span>' . $text . '</span>';
		}
		return '<a href="' . self::escape(Deal::url($portal, $dealId)) . '" target="_blank" rel="noopener noreferrer">'
			. $text . '</a>';
	}

	/** The order's B24_DEAL_ID value, or null when it has none (or cannot be read). */
	private static function dealOf($args): ?string
	{
		$order = is_array($args) ? ($args['ORDER'] ?? null) : null;
		if (!is_object($order)) {
			return null;
		}
		try {
			$property = OrderProperty::find($order, Config::DEAL_PROPERTY);
			$value = $property === null ? '' : trim((string)$property->getValue());
			return $value === '' ? null : $value;
		} catch (\Throwable $e) {
			Log::error('admin order block: cannot read the deal id: ' . $e->getMessage(), (string)$order->getId());
			return null;
		}
	}

	private static function escape(string $s): string
	{
		return htmlspecialchars($s, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
	}
}
