<?php
/* The order snapshot: a Bitrix order in, the ingest contract (README) out. */

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
}
