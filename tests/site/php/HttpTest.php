<?php
/*
 * Over real HTTP, against fake_daemon.php under php -S, through Bitrix's HttpClient (the
 * stand-in in stubs.php is a real socket client, as main's is): a signed snapshot arrives,
 * the 2 s deadline holds, the site's proxy settings apply, and the whole story of a checkout
 * while orderbridge is down, then back.
 */

use Orderbridge\Agent;
use Orderbridge\Queue;
use Orderbridge\Relay;
use Orderbridge\Transport;

final class HttpTest extends \Orderbridge\Tests\TestCase
{
	/** @testdox a signed snapshot is accepted by a real HTTP server, posted through HttpClient as JSON */
	public function testASignedSnapshotIsAcceptedByAReal(): void
	{
		[$url, $state] = start_daemon('accept');
		$config = configure($url);
		$relay = Relay::fromConfig($config);
		eq(Relay::DELIVERED, $relay->submit('123', body_of('123')));
		$got = daemon_requests($state);
		eq(1, count($got));
		eq('/v1/orders', $got[0]['path']);
		eq('application/json', $got[0]['content_type'], 'not HttpClient\'s default form encoding');
		ok($got[0]['signed'], 'the independent check in fake_daemon.php accepts the signature');
		eq('123', json_decode($got[0]['body'], true)['order']['id']);
	}

	/** @testdox a server that does not answer costs at most ~2 s and the snapshot is kept for later */
	public function testAServerThatDoesNotAnswerCostsAt(): void
	{
		[$url] = start_daemon('hang');
		$config = configure($url);
		$relay = Relay::fromConfig($config);
		$t0 = microtime(true);
		eq(Relay::RETRY, $relay->submit('124', body_of('124')));
		$elapsed = microtime(true) - $t0;
		ok($elapsed < 2.5, sprintf('returned after %.2f s', $elapsed));
		ok($elapsed > 0.9, sprintf('it did wait for the server (%.2f s)', $elapsed));
		eq(1, $relay->queue()->count());
	}

	/** @testdox the site's proxy (.settings.php http_client_options) is used, and its long timeouts do not stretch the deadline */
	public function testTheSiteSProxyIsUsedAndItsLongTimeouts(): void
	{
		[$proxy, $state] = start_daemon('accept');
		$port = (int)parse_url($proxy, PHP_URL_PORT);
		\Bitrix\Main\Config\Configuration::$values['http_client_options'] = [
			'proxyHost' => '127.0.0.1', 'proxyPort' => $port, 'socketTimeout' => 30, 'streamTimeout' => 60,
		];
		[$status, , $error] = (new Transport(2.0))->post('http://orderbridge.invalid/v1/orders', [], '{}');
		eq('', $error);
		$got = daemon_requests($state);
		eq(1, count($got), 'the request went to the proxy, not to the unresolvable host');
		eq('http://orderbridge.invalid/v1/orders', $got[0]['path'], 'a proxy gets the absolute URI');
		eq(401, $status, 'the answer came back through it (unsigned request)');

		file_put_contents($state . '/mode', 'hang');
		$t0 = microtime(true);
		[$status] = (new Transport(2.0))->post('http://orderbridge.invalid/v1/orders', [], '{}');
		$elapsed = microtime(true) - $t0;
		eq(0, $status);
		ok($elapsed < 2.5, sprintf('the site\'s 60 s read timeout did not apply: %.2f s', $elapsed));
	}

	/** @testdox nobody listening is a quick failure with HttpClient's error, not an exception */
	public function testNobodyListeningIsAQuickFailureNotAn(): void
	{
		$t0 = microtime(true);
		[$status, , $error] = (new Transport(2.0))->post('http://127.0.0.1:' . free_port() . '/v1/orders', [], '{}');
		eq(0, $status);
		ok(strpos($error, 'CONNECTION: ') === 0, 'HttpClient\'s error code and text: ' . $error);
		ok(microtime(true) - $t0 < 1.5, 'no wait for a refused connection');
	}

	/** @testdox checkout while orderbridge is down is queued; the agent delivers it when it is back */
	public function testCheckoutWhileOrderbridgeIsDownIsQueuedThe(): void
	{
		$port = free_port();
		configure('http://127.0.0.1:' . $port);
		install_module();
		$_COOKIE = ['roistat_visit' => '4521890'];

		$first = individual_order();
		$first->save();               // nobody listening: queued
		$second = legal_order();
		$second->save();              // breaker open: queued without trying
		eq(2, (new Queue())->count(), 'both orders wait in the queue');

		eq('\Orderbridge\Agent::resend();', Agent::resend(), 'the agent returns itself, so Bitrix keeps it');
		eq(2, (new Queue())->count(), 'still down: nothing lost');

		[, $state] = start_daemon('accept', $port);
		Agent::resend();
		eq(0, (new Queue())->count(), 'the queue is empty');
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

	/** @testdox a 503 from orderbridge (store unavailable) queues the snapshot */
	public function testA503FromOrderbridgeStoreUnavailableQueuesThe(): void
	{
		[$url, $state] = start_daemon('down');
		configure($url);
		install_module();
		individual_order()->save();
		eq(1, count(daemon_requests($state)));
		eq(1, (new Queue())->count());
	}
}

function save_again_in_a_new_request($order): void
{
	\Orderbridge\EventHandlers::reset();
	$order->setField('STATUS_ID', 'P');
	$order->save();
}
