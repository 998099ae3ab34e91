<?php
/*
 * Over real HTTP, against fake_daemon.php under php -S: both transports, the 2 s deadline,
 * and the whole story of a checkout while orderbridge is down, then back.
 */

use Orderbridge\Agent;
use Orderbridge\Relay;
use Orderbridge\Spool;
use Orderbridge\Transport;

final class HttpTest extends \Orderbridge\Tests\TestCase
{
	public function transports(): array
	{
		return ['curl' => ['curl'], 'stream' => ['stream']];
	}

	/**
	 * @testdox $kind transport: a signed snapshot is accepted by a real HTTP server
	 * @dataProvider transports
	 */
	public function testASignedSnapshotIsAcceptedByAReal(string $kind): void
	{
		if ($kind === 'curl' && !extension_loaded('curl')) {
			throw new RuntimeException('php-curl is not installed (scripts/install-site-deps.sh installs it)');
		}
		[$url, $state] = start_daemon('accept');
		$config = configure($url);
		$relay = new Relay($config, new Spool($config->spoolDir), new Transport(2.0, $kind));
		eq(Relay::DELIVERED, $relay->submit('123', body_of('123')));
		$got = daemon_requests($state);
		eq(1, count($got));
		eq('/v1/orders', $got[0]['path']);
		eq('application/json', $got[0]['content_type']);
		ok($got[0]['signed'], 'the independent check in fake_daemon.php accepts the signature');
		eq('123', json_decode($got[0]['body'], true)['order']['id']);
	}

	/**
	 * @testdox $kind transport: a server that does not answer costs at most ~2 s and the snapshot is spooled
	 * @dataProvider transports
	 */
	public function testAServerThatDoesNotAnswerCostsAt(string $kind): void
	{
		[$url] = start_daemon('hang');
		$config = configure($url);
		$relay = new Relay($config, new Spool($config->spoolDir), new Transport(2.0, $kind));
		$t0 = microtime(true);
		eq(Relay::RETRY, $relay->submit('124', body_of('124')));
		$elapsed = microtime(true) - $t0;
		ok($elapsed < 2.5, sprintf('returned after %.2f s', $elapsed));
		ok($elapsed > 0.9, sprintf('it did wait for the server (%.2f s)', $elapsed));
		eq(1, $relay->spool()->count());
	}

	/**
	 * @testdox $kind transport: nobody listening is a quick failure, not an exception
	 * @dataProvider transports
	 */
	public function testNobodyListeningIsAQuickFailureNotAn(string $kind): void
	{
		[$status, , $error] = (new Transport(2.0, $kind))->post('http://127.0.0.1:' . free_port() . '/v1/orders', [], '{}');
		eq(0, $status);
		ok($error !== '', 'an error text');
	}

	/** @testdox checkout while orderbridge is down is spooled; the agent delivers it when it is back */
	public function testCheckoutWhileOrderbridgeIsDownIsSpooledThe(): void
	{
		$port = free_port();
		configure('http://127.0.0.1:' . $port);
		install_module();
		$_COOKIE = ['roistat_visit' => '4521890'];

		$first = individual_order();
		$first->save();               // nobody listening: spooled
		$second = legal_order();
		$second->save();              // breaker open: spooled without trying
		eq(2, count(glob(spool_dir() . '/[0-9]*.json')), 'both orders wait in the spool');

		eq('\Orderbridge\Agent::resend();', Agent::resend(), 'the agent returns itself, so Bitrix keeps it');
		eq(2, count(glob(spool_dir() . '/[0-9]*.json')), 'still down: nothing lost');

		[, $state] = start_daemon('accept', $port);
		Agent::resend();
		eq(0, count(glob(spool_dir() . '/[0-9]*.json')), 'the spool is empty');
		$got = daemon_requests($state);
		eq([(string)$first->getId(), (string)$second->getId()], array_map(function ($r) {
			return json_decode($r['body'], true)['order']['id'];
		}, $got), 'oldest first');
		ok($got[0]['signed'] && $got[1]['signed'], 're-sends are signed with a fresh timestamp');
		eq('4521890', json_decode($got[0]['body'], true)['order']['roistat_visit']);
		eq('legal', json_decode($got[1]['body'], true)['order']['buyer']['type']);

		save_again_in_a_new_request($first);
		eq(3, count(daemon_requests($state)), 'with orderbridge back, the next change goes straight out');
	}

	/** @testdox a 503 from orderbridge (store unavailable) spools the snapshot */
	public function testA503FromOrderbridgeStoreUnavailableSpoolsThe(): void
	{
		[$url, $state] = start_daemon('down');
		configure($url);
		install_module();
		individual_order()->save();
		eq(1, count(daemon_requests($state)));
		eq(1, count(glob(spool_dir() . '/[0-9]*.json')));
	}
}

function save_again_in_a_new_request($order): void
{
	\Orderbridge\EventHandlers::reset();
	$order->setField('STATUS_ID', 'P');
	$order->save();
}
