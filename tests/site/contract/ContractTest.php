<?php
/*
 * The cross-language contract: snapshots built, signed and sent by the PHP module's own
 * code (Snapshot, Signature, Transport over HttpClient, Relay, Queue) against the real
 * orderbridge daemon ($ORDERBRIDGE_BIN). setUpBeforeClass starts `orderbridge serve` on a
 * free loopback port with a fresh secret, admin token and store, and waits for
 * GET /healthz; tearDownAfterClass stops it. Run by ../contract_test.sh.
 */

use Orderbridge\Config;
use Orderbridge\Queue;
use Orderbridge\QueueTable;
use Orderbridge\Relay;
use Orderbridge\Signature;
use Orderbridge\Snapshot;
use Orderbridge\Transport;

final class ContractTest extends \Orderbridge\Tests\TestCase
{
	/** @var resource|null */
	private static $daemon;
	private static $dir = '';
	private static $base = '';
	private static $secret = '';
	private static $token = '';
	/** @var Config */
	private $config;

	public static function setUpBeforeClass(): void
	{
		$bin = getenv('ORDERBRIDGE_BIN') ?: '';
		if ($bin === '' || !is_executable($bin)) {
			throw new \RuntimeException('ORDERBRIDGE_BIN does not name the orderbridge binary: ' . $bin);
		}
		self::$dir = sys_get_temp_dir() . '/ob-contract-' . bin2hex(random_bytes(6));
		mkdir(self::$dir, 0700);
		self::$secret = 'whsec_' . base64_encode(random_bytes(32));
		self::$token = bin2hex(random_bytes(24));
		foreach (['secret' => self::$secret, 'token' => self::$token] as $file => $value) {
			file_put_contents(self::$dir . '/' . $file, $value);
			chmod(self::$dir . '/' . $file, 0600);
		}
		$port = free_port();
		file_put_contents(self::$dir . '/orderbridge.conf', implode("\n", [
			'[server]',
			'listen = 127.0.0.1:' . $port,
			'signing_secret_file = ' . self::$dir . '/secret',
			'admin_token_file = ' . self::$dir . '/token',
			'[store]',
			'path = ' . self::$dir . '/ob.db',
			'[site]',
			'id = shop.example.ru',
			'',
		]));
		self::$base = 'http://127.0.0.1:' . $port;
		self::$daemon = proc_open([$bin, 'serve', '-c', self::$dir . '/orderbridge.conf'], [
			0 => ['file', '/dev/null', 'r'],
			1 => ['file', self::$dir . '/daemon.log', 'a'],
			2 => ['file', self::$dir . '/daemon.log', 'a'],
		], $pipes);
		$deadline = microtime(true) + 10;
		while (!self::healthy() && microtime(true) < $deadline && proc_get_status(self::$daemon)['running']) {
			usleep(100000);
		}
		if (!self::healthy()) {
			$log = (string)@file_get_contents(self::$dir . '/daemon.log');
			self::tearDownAfterClass();
			throw new \RuntimeException("orderbridge serve did not answer GET /healthz:\n" . $log);
		}
	}

	public static function tearDownAfterClass(): void
	{
		if (is_resource(self::$daemon)) {
			$pid = proc_get_status(self::$daemon)['pid'];
			posix_kill($pid, SIGTERM);
			for ($i = 0; $i < 50 && proc_get_status(self::$daemon)['running']; $i++) {
				usleep(100000);
			}
			if (proc_get_status(self::$daemon)['running']) {
				posix_kill($pid, SIGKILL);
			}
			proc_close(self::$daemon);
			self::$daemon = null;
		}
		if (self::$dir !== '' && is_dir(self::$dir)) {
			rm_rf(self::$dir);
		}
	}

	private static function healthy(): bool
	{
		$ctx = stream_context_create(['http' => ['timeout' => 0.5, 'ignore_errors' => true]]);
		$body = @file_get_contents(self::$base . '/healthz', false, $ctx);
		return $body !== false && isset($http_response_header[0]) && strpos($http_response_header[0], ' 200') !== false;
	}

	protected function setUp(): void
	{
		parent::setUp();
		QueueTable::createIfMissing();
		(new Queue())->markUp();
		$this->config = configure(self::$base, ['signing_secret' => self::$secret, 'send_properties' => 'ADDRESS']);
	}

	/** A failed case shows the daemon's log, which says why it refused. */
	protected function onNotSuccessfulTest(\Throwable $t): void
	{
		fwrite(STDERR, "daemon log:\n" . (string)@file_get_contents(self::$dir . '/daemon.log') . "\n");
		throw $t;
	}

	private function transport(): Transport
	{
		return new Transport(2.0);
	}

	/** One POST with the module's signing; $headers lets a case sign something else. */
	private function post(string $body, ?array $headers = null): array
	{
		$headers = $headers ?? Signature::headers(self::$secret, Relay::newId(), time(), $body);
		[$status, $answer] = $this->transport()->post(self::$base . '/v1/orders', $headers, $body);
		return [$status, json_decode($answer, true), $answer];
	}

	private function snapshotOf($order, ?int $version = null): string
	{
		return Snapshot::encode(Snapshot::build($order, $this->config, $version));
	}

	/** What the daemon stored for the order: GET /v1/orders/{id} with the admin token. */
	private function stored(string $id): array
	{
		$ctx = stream_context_create(['http' => ['timeout' => 2, 'ignore_errors' => true,
			'header' => 'Authorization: Bearer ' . self::$token]]);
		$body = (string)@file_get_contents(self::$base . '/v1/orders/' . rawurlencode($id), false, $ctx);
		$doc = json_decode($body, true);
		ok(is_array($doc) && isset($doc['snapshot']['order']), 'GET /v1/orders/' . $id . ': ' . $body);
		return $doc['snapshot']['order'];
	}

	/** Objects with their keys sorted: the daemon keeps a canonical JSON with sorted keys. */
	private static function sorted($value)
	{
		if (!is_array($value)) {
			return $value;
		}
		$value = array_map([self::class, 'sorted'], $value);
		if (array_keys($value) !== range(0, count($value) - 1)) {
			ksort($value, SORT_STRING);
		}
		return $value;
	}

	/** @testdox a snapshot signed by the module is accepted: 202 {"order_id":..,"accepted":true} */
	public function testASnapshotSignedByTheModuleIsAccepted(): void
	{
		[$status, $json, $raw] = $this->post($this->snapshotOf(individual_order(['ID' => 123, 'ACCOUNT_NUMBER' => '123'], '4521890')));
		eq(202, $status, $raw);
		eq('123', $json['order_id'] ?? null, $raw);
		eq(true, $json['accepted'] ?? null, $raw);
	}

	/** @testdox every field of a full order (discounts, coupon, delivery, payments, UTM, comment, lid, properties) is accepted and stored as sent */
	public function testAFullOrderIsAcceptedAndStoredAsSent(): void
	{
		$sent = Snapshot::build(full_order(['ID' => 321]), $this->config, 7)['order'];
		foreach (['lid', 'person_type', 'comment', 'delivery', 'discount', 'coupons', 'cost', 'payments', 'sum_paid', 'utm', 'properties'] as $field) {
			ok(array_key_exists($field, $sent), 'the fixture has ' . $field);
		}
		[$status, , $raw] = $this->post(Snapshot::encode(['site' => 'shop.example.ru', 'order' => $sent]));
		eq(202, $status, $raw);
		$stored = $this->stored('321');
		foreach (['lid', 'person_type', 'comment', 'delivery', 'discount', 'coupons', 'cost', 'payments', 'sum_paid', 'utm', 'properties', 'items', 'price'] as $field) {
			eq(self::sorted($sent[$field]), self::sorted($stored[$field] ?? null), 'order.' . $field . ' as the daemon keeps it');
		}
	}

	/** @testdox a property chosen to be sent but empty on the order is left out, and the order is accepted */
	public function testAnEmptyChosenPropertyIsLeftOut(): void
	{
		$config = configure(self::$base, ['signing_secret' => self::$secret, 'send_properties' => 'ADDRESS, UTM_CONTENT']);
		$sent = Snapshot::build(full_order(['ID' => 323]), $config, 7);
		eq(['ADDRESS' => 'Moscow, Tverskaya 1'], $sent['order']['properties'], 'UTM_CONTENT is empty on the order');
		[$status, , $raw] = $this->post(Snapshot::encode($sent));
		eq(202, $status, $raw);
	}

	/** @testdox a field the daemon does not know is refused with 400 naming it, and the relay keeps the snapshot aside */
	public function testAnUnknownFieldIsRefusedNamingIt(): void
	{
		$doc = json_decode($this->snapshotOf(full_order(['ID' => 322])), true);
		$doc['order']['delivery']['eta'] = 'tomorrow';
		[$status, $json, $raw] = $this->post(json_encode($doc));
		eq(400, $status, $raw);
		eq('order.delivery.eta', $json['field'] ?? null, $raw);
		$relay = new Relay($this->config, new Queue(), $this->transport());
		eq(Relay::REJECT, $relay->submit('322', json_encode($doc)));
		eq(1, $relay->queue()->rejectedCount());
	}

	/** @testdox a legal-entity snapshot with a buyer's typos (cleaned by the module) is accepted */
	public function testALegalEntityWithTyposIsAccepted(): void
	{
		$order = legal_order(['ID' => 124]);
		$props = $order->getPropertyCollection();
		$props->getItemByOrderPropertyCode('CONTACT_PERSON')->setValue("Мария\nИванова");
		$props->getItemByOrderPropertyCode('COMPANY')->setValue(str_repeat('Ж', 300));
		$props->getItemByOrderPropertyCode('EMAIL')->setValue('no at sign');
		$props->getItemByOrderPropertyCode('INN')->setValue('7707 083 893');
		[$status, , $raw] = $this->post($this->snapshotOf($order));
		eq(202, $status, $raw);
	}

	/** @testdox a wrong secret, a timestamp older than 5 minutes and an altered body are refused with 401 */
	public function testBadSignaturesAreRefused(): void
	{
		$body = $this->snapshotOf(individual_order(['ID' => 125]));
		$other = 'whsec_' . base64_encode(random_bytes(32));
		eq(401, $this->post($body, Signature::headers($other, Relay::newId(), time(), $body))[0], 'wrong secret');
		eq(401, $this->post($body, Signature::headers(self::$secret, Relay::newId(), time() - 360, $body))[0], 'old timestamp');
		$headers = Signature::headers(self::$secret, Relay::newId(), time(), $body);
		eq(401, $this->post(str_replace('"4990.00"', '"1.00"', $body), $headers)[0], 'altered body');
	}

	/** @testdox an older version after a newer one is answered 200 {"stale":true}, which the module counts as delivered */
	public function testAnOlderVersionIsStale(): void
	{
		$newer = $this->snapshotOf(individual_order(['ID' => 128, 'STATUS_ID' => 'P']), 2000);
		$older = $this->snapshotOf(individual_order(['ID' => 128, 'STATUS_ID' => 'N']), 1000);
		eq(202, $this->post($newer)[0]);
		[$status, $json, $raw] = $this->post($older);
		eq(200, $status, $raw);
		eq(true, $json['stale'] ?? null, $raw);
		eq(Relay::DELIVERED, Relay::classify($status));
	}

	/** @testdox Relay: a real checkout snapshot is delivered and leaves nothing in the queue */
	public function testRelayDeliversAndLeavesNothingQueued(): void
	{
		$relay = new Relay($this->config, new Queue(), $this->transport());
		eq(Relay::DELIVERED, $relay->submit('129', $this->snapshotOf(individual_order(['ID' => 129]))));
		eq(0, $relay->queue()->count());
	}

	/** @testdox Relay: a snapshot orderbridge calls invalid (400) is kept aside as rejected, not retried */
	public function testRelayKeepsAnInvalidSnapshotAside(): void
	{
		$relay = new Relay($this->config, new Queue(), $this->transport());
		$bad = json_decode($this->snapshotOf(individual_order(['ID' => 130])), true);
		$bad['order']['price'] = '49,90';
		[$status, $json] = $this->post(json_encode($bad));
		eq(400, $status);
		eq('order.price', $json['field'] ?? null);
		eq(Relay::REJECT, $relay->submit('130', json_encode($bad)));
		eq(1, $relay->queue()->rejectedCount());
		eq(0, $relay->queue()->count());
	}

	/** @testdox Relay: with the wrong secret configured the snapshot waits in the queue and goes out once it is fixed */
	public function testRelayWaitsForTheRightSecret(): void
	{
		$wrong = clone $this->config;
		$wrong->secret = 'whsec_' . base64_encode(random_bytes(32));
		$queue = new Queue();
		eq(Relay::RETRY, (new Relay($wrong, $queue, $this->transport()))->submit('131', $this->snapshotOf(individual_order(['ID' => 131]))));
		eq(1, $queue->count(), '401 is not "invalid": it is kept');
		eq(['delivered' => 1, 'rejected' => 0, 'left' => 0], (new Relay($this->config, $queue, $this->transport()))->flush());
	}
}
