<?php
/* The order snapshot: a Bitrix order in, the ingest contract (README) out. */

use Bitrix\Sale\PropertyValue;
use Orderbridge\Snapshot;

final class SnapshotTest extends \Orderbridge\Tests\TestCase
{
	/** @testdox an individual order becomes the snapshot of the ingest contract, field for field */
	public function testAnIndividualOrderBecomesTheSnapshotOfThe(): void
	{
		$config = configure();
		$order = individual_order(['ID' => 123, 'ACCOUNT_NUMBER' => '123', 'STATUS_ID' => 'N',
			'DATE_UPDATE' => new \Bitrix\Main\Type\DateTime('2026-03-13 10:05:00')], '4521890');
		eq([
			'site' => 'shop.example.ru',
			'order' => [
				'id' => '123',
				'account_number' => '123',
				'version' => 4,
				'status' => 'N',
				'canceled' => false,
				'paid' => false,
				'created_at' => '2026-03-13T10:00:00+03:00',
				'updated_at' => '2026-03-13T10:05:00+03:00',
				'price' => '4990.00',
				'currency' => 'RUB',
				'lid' => 's1',
				'person_type' => '1',
				'roistat_visit' => '4521890',
				'buyer' => [
					'type' => 'individual',
					'name' => 'Ivan Petrov',
					'phone' => '+7 900 123-45-67',
					'email' => 'ivan@example.ru',
					'company' => null,
					'inn' => null,
				],
				'items' => [
					['product_id' => '55', 'name' => 'Kettle', 'price' => '2495.00', 'quantity' => '2'],
				],
				'sum_paid' => '0.00',
			],
		], Snapshot::build($order, $config, 4));
	}

	/** @testdox a legal-entity order has buyer type legal with company, INN and the contact person */
	public function testALegalEntityOrderHasBuyerTypeLegal(): void
	{
		$config = configure();
		$order = legal_order(['ID' => 124, 'ACCOUNT_NUMBER' => '2026/124', 'STATUS_ID' => 'P',
			'PAYED' => 'Y', 'DATE_UPDATE' => new \Bitrix\Main\Type\DateTime('2026-03-13 12:00:00')]);
		$s = Snapshot::build($order, $config, 7)['order'];
		eq([
			'type' => 'legal',
			'name' => 'Мария Иванова',
			'phone' => '+7 495 000-00-00',
			'email' => 'buy@romashka.ru',
			'company' => 'ООО «Ромашка»',
			'inn' => '7707083893',
		], $s['buyer']);
		eq('2026/124', $s['account_number']);
		eq(true, $s['paid']);
		eq('P', $s['status']);
		eq('12345.50', $s['price']);
		ok(!array_key_exists('roistat_visit', $s), 'no roistat_visit when the property is empty');
		// The part of a product set is not a row of its own.
		eq([
			['product_id' => '7', 'name' => 'Paper A4', 'price' => '345.50', 'quantity' => '30'],
			['product_id' => '8', 'name' => 'Toner', 'price' => '1980.00', 'quantity' => '0.5'],
		], $s['items']);
	}

	/** @testdox configured property codes win over the property flags */
	public function testConfiguredPropertyCodesWinOverThePropertyFlags(): void
	{
		$config = configure('http://127.0.0.1:9', ['person_types' => json_encode([
			'1' => ['legal' => false, 'name' => 'ADDRESS', 'phone' => 'NO_SUCH_CODE'],
		])]);
		$buyer = Snapshot::build(individual_order(['ID' => 5]), $config, 1)['order']['buyer'];
		eq('Moscow', $buyer['name']);
		eq(null, $buyer['phone'], 'a code the order does not have gives null, not a guess');
		eq('ivan@example.ru', $buyer['email']);
	}

	/** @testdox a hostile value in ROISTAT_VISIT is left out of the snapshot */
	public function testAHostileValueInROISTATVISITIsLeft(): void
	{
		$config = configure();
		foreach (['<script>alert(1)</script>', 'nocookie', '12 34', str_repeat('9', 33), '-1'] as $bad) {
			$s = Snapshot::build(individual_order(['ID' => 6], $bad), $config, 1)['order'];
			ok(!array_key_exists('roistat_visit', $s), 'no roistat_visit for ' . var_export($bad, true));
		}
		$s = Snapshot::build(individual_order(['ID' => 6], str_repeat('9', 32)), $config, 1)['order'];
		eq(str_repeat('9', 32), $s['roistat_visit'], '32 digits is still a visit');
	}

	/** @testdox money and quantities are decimal strings without float noise */
	public function testMoneyAndQuantitiesAreDecimalStringsWithoutFloat(): void
	{
		eq('4990.00', Snapshot::decimal(4989.999999999, 2));
		eq('0.30', Snapshot::decimal(0.1 + 0.2, 2));
		eq('1234567.89', Snapshot::decimal('1234567.8900', 2));
		eq('0.00', Snapshot::decimal(-0.0001, 2));
		eq('2', Snapshot::decimal(2.0, 4, true));
		eq('1.5', Snapshot::decimal(1.5, 4, true));
		eq('0.125', Snapshot::decimal(0.125, 4, true));
		$json = Snapshot::encode(Snapshot::build(individual_order(['ID' => 8]), configure(), 1));
		ok(strpos($json, '"price":"4990.00"') !== false, 'price is a JSON string: ' . $json);
		ok(strpos($json, '"quantity":"2"') !== false, 'quantity is a JSON string');
		ok(strpos($json, 'Ivan Petrov') !== false, 'UTF-8 text is not \\u-escaped');
	}

	/** @testdox version grows with every snapshot, even within one microsecond */
	public function testVersionGrowsWithEverySnapshotEvenWithinOne(): void
	{
		$before = (int)(microtime(true) * 1000000) - 1000000;
		$versions = [];
		for ($i = 0; $i < 1000; $i++) {
			$versions[] = Snapshot::nextVersion();
		}
		for ($i = 1; $i < count($versions); $i++) {
			ok($versions[$i] > $versions[$i - 1], 'strictly increasing');
		}
		ok($versions[0] > $before, 'microseconds since the epoch');
		ok($versions[999] < 2 ** 53, 'fits a JSON number exactly');
		$a = Snapshot::build(individual_order(['ID' => 9]), configure())['order']['version'];
		$b = Snapshot::build(individual_order(['ID' => 9]), configure())['order']['version'];
		ok($b > $a, 'a later snapshot of one order has a higher version');
	}

	/** @testdox times are ISO 8601 with the site offset */
	public function testTimesAreISO8601WithTheSiteOffset(): void
	{
		eq('2026-03-13T10:00:00+03:00', Snapshot::isoTime(new \Bitrix\Main\Type\DateTime('2026-03-13 10:00:00')));
		eq('1970-01-01T03:00:00+03:00', Snapshot::isoTime(0));
	}

	/** @testdox a buyer's typos are cleaned or dropped to null, so that orderbridge accepts the order */
	public function testABuyerSTyposAreCleanedOrDropped(): void
	{
		$config = configure('http://127.0.0.1:9', ['person_types' => json_encode([
			'2' => ['legal' => true, 'name' => 'CONTACT_PERSON'],
		])]);
		$order = legal_order(['ID' => 10]);
		$props = $order->getPropertyCollection();
		$props->getItemByOrderPropertyCode('CONTACT_PERSON')->setValue("Мария\r\n\tИванова");
		$props->getItemByOrderPropertyCode('COMPANY')->setValue(str_repeat('Ж', 200) . "\xff");
		$props->getItemByOrderPropertyCode('EMAIL')->setValue('buy at romashka');
		$props->getItemByOrderPropertyCode('INN')->setValue(' 7707 083-893 ');
		$buyer = Snapshot::build($order, $config, 1)['order']['buyer'];
		eq('Мария Иванова', $buyer['name'], 'no control characters');
		ok(strlen($buyer['company']) <= 255 && preg_match('//u', $buyer['company']) === 1,
			'at most 255 bytes of valid UTF-8');
		eq(str_repeat('Ж', 127), $buyer['company'], 'cut between characters');
		eq(null, $buyer['email'], 'not an e-mail address');
		eq('7707083893', $buyer['inn'], 'spaces and dashes removed');
		$props->getItemByOrderPropertyCode('INN')->setValue('77070');
		eq(null, Snapshot::build($order, $config, 1)['order']['buyer']['inn'], 'an INN is 10 or 12 digits');
	}

	/** @testdox quantities have at most three decimals, as orderbridge stores them */
	public function testQuantitiesHaveAtMostThreeDecimalsAsOrderbridge(): void
	{
		eq('0.123', Snapshot::decimal(0.12345, 3, true));
		eq('1000', Snapshot::decimal(1000.0, 3, true));
	}

	/** @testdox an order with discounts, a coupon, delivery, two payments, UTM tags and a comment becomes exactly this snapshot */
	public function testAFullOrderBecomesExactlyThisSnapshot(): void
	{
		$config = configure('http://127.0.0.1:9', ['send_properties' => 'ADDRESS, NO_SUCH, bad code!, INN']);
		$order = full_order();
		eq('{"site":"shop.example.ru","order":{"id":"321","account_number":"A-321","version":9,"status":"P",'
			. '"canceled":false,"paid":false,"created_at":"2026-03-13T10:00:00+03:00","updated_at":"2026-03-13T10:05:00+03:00",'
			. '"price":"5380.00","currency":"RUB","lid":"s2","person_type":"1",'
			. '"comment":"Call before delivery, please. Entrance from the yard",'
			. '"roistat_visit":"4521890",'
			. '"buyer":{"type":"individual","name":"Ivan Petrov","phone":"+7 900 123-45-67","email":"ivan@example.ru","company":null,"inn":null},'
			. '"items":[{"product_id":"55","name":"Kettle","price":"2245.50","quantity":"2","base_price":"2495.00"},'
			. '{"product_id":"56","name":"Filter","price":"389.00","quantity":"1"}],'
			. '"delivery":{"name":"Courier","price":"500.00","base_price":"600.00"},'
			. '"discount":"599.00",'
			. '"coupons":["SALE10"],'
			. '"cost":"2900.00",'
			. '"payments":[{"name":"Card online","sum":"3000.00","paid":true},{"name":"Cash","sum":"2380.00","paid":false}],'
			. '"sum_paid":"3000.00",'
			. '"utm":{"source":"yandex","medium":"cpc","campaign":"spring sale"},'
			. '"properties":{"ADDRESS":"Moscow, Tverskaya 1"}}}',
			Snapshot::encode(Snapshot::build($order, $config, 9)));
	}

	/** @testdox optional fields the order has nothing for are left out, and bad ones are cleaned or dropped, not the order */
	public function testOptionalFieldsAreLeftOutOrCleaned(): void
	{
		$config = configure();
		$order = full_order(['LID' => 'bad lid!', 'USER_DESCRIPTION' => "line one\r\n\tline two " . str_repeat('я', 600)],
			['coupons' => ['SALE10' => 'N', "BAD\nCODE" => 'Y', str_repeat('X', 65) => 'Y', 'OK-1' => 'Y'],
				'payments' => [
					new \Bitrix\Sale\Payment(['PAY_SYSTEM_NAME' => " \n", 'PAY_SYSTEM_ID' => 7, 'SUM' => 10.0]),
					new \Bitrix\Sale\Payment(['PAY_SYSTEM_NAME' => 'Broken', 'SUM' => 'n/a']),
				]],
			[new \Bitrix\Sale\BasketItem(['PRODUCT_ID' => 57, 'NAME' => 'No cost', 'PRICE' => 10.0, 'QUANTITY' => 1.0])]);
		$s = Snapshot::build($order, $config, 1)['order'];
		ok(!array_key_exists('lid', $s), 'a LID that is not [A-Za-z0-9_-] is left out');
		ok(strpos($s['comment'], 'line one line two я') === 0, 'the comment is one line: ' . substr($s['comment'], 0, 30));
		ok(strlen($s['comment']) <= 1000 && preg_match('//u', $s['comment']) === 1, 'at most 1000 bytes of UTF-8');
		eq(['OK-1'], $s['coupons'], 'not applied (APPLY = N), control characters and > 64 characters are dropped');
		ok(!array_key_exists('cost', $s), 'one row without a purchasing price: no cost at all');
		ok(!array_key_exists('properties', $s), 'no properties to send configured');
		eq([['name' => '#7', 'sum' => '10.00', 'paid' => false]], $s['payments'],
			'orderbridge requires a payment\'s name and sum: "#<pay system id>" for no name, left out for no sum');

		\Bitrix\Catalog\ProductTable::$rows = []; // a shop without purchasing prices
		$plain = individual_order(['ID' => 5]);
		$s = Snapshot::build($plain, $config, 1)['order'];
		foreach (['comment', 'delivery', 'discount', 'coupons', 'cost', 'payments', 'utm', 'properties'] as $absent) {
			ok(!array_key_exists($absent, $s), $absent . ' is left out of an order without one');
		}
		ok(!array_key_exists('base_price', $s['items'][0]), 'no base_price when the price was not discounted');
	}

	/** @testdox cost: an order property coded cost wins; else the catalog's purchasing prices, all of them in the order's currency, or none */
	public function testCostComesFromThePropertyOrTheCatalog(): void
	{
		$config = configure();
		$cost = function (array $props = []) use ($config) {
			$order = full_order([], [], [], $props);
			return Snapshot::build($order, $config, 1)['order']['cost'] ?? null;
		};
		eq('2900.00', $cost(), '1200 × 2 + 500 × 1 from b_catalog_product');
		eq('1234.50', $cost([new PropertyValue(['CODE' => 'COST'], '1234,5')]), 'the order property wins, as in Roistat\'s module');
		eq('2900.00', $cost([new PropertyValue(['CODE' => 'COST'], '-5')]), 'a negative property is a typo: the catalog decides');
		\Bitrix\Catalog\ProductTable::$rows = [];
		$order = full_order();
		\Bitrix\Catalog\ProductTable::$rows[56]['PURCHASING_CURRENCY'] = 'USD';
		ok(!array_key_exists('cost', Snapshot::build($order, $config, 1)['order']), 'a purchasing price in USD is not added to roubles');
		unset(\Bitrix\Catalog\ProductTable::$rows[56]);
		ok(!array_key_exists('cost', Snapshot::build($order, $config, 1)['order']), 'a product without a catalog row: no cost');
	}

	/** @testdox on a sale module without getItemByOrderPropertyCode the snapshot is built by walking the properties */
	public function testOnOldSaleTheSnapshotIsBuiltByWalkingTheProperties(): void
	{
		\Bitrix\Sale\Order::$legacySale = true;
		$config = configure('http://127.0.0.1:9', ['send_properties' => 'ADDRESS']);
		$order = individual_order(['ID' => 7], '4521890');
		ok(!method_exists($order->getPropertyCollection(), 'getItemByOrderPropertyCode'), 'the old collection');
		$s = Snapshot::build($order, $config, 1)['order'];
		eq('4521890', $s['roistat_visit']);
		eq('Ivan Petrov', $s['buyer']['name']);
		eq(['ADDRESS' => 'Moscow'], $s['properties']);
		$legal = Snapshot::build(legal_order(['ID' => 8]), $config, 1)['order']['buyer'];
		eq(['legal', 'Мария Иванова', 'ООО «Ромашка»', '7707083893'],
			[$legal['type'], $legal['name'], $legal['company'], $legal['inn']], 'codes from the settings are found too');
	}
}
