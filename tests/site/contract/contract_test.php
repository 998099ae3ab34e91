<?php
/*
 * The cross-language contract: snapshots built, signed and sent by the PHP module's own
 * code (Snapshot, Signature, Transport, Relay, Queue) against the real orderbridge daemon.
 *   ORDERBRIDGE_BIN=/path/to/orderbridge php tests/site/contract/contract_test.php
 * Starts `orderbridge serve -c CONF` on a free loopback port with a fresh secret and store,
 * waits for GET /healthz, runs the cases once with each of the module's transports (ext/curl
 * and PHP's http stream), stops the daemon. Exit 0 when all passed,
 * 1 when one failed, 77 (skipped) when the binary does not exist.
 */

error_reporting(E_ALL);
set_error_handler(function ($severity, $message, $file, $line) {
	if (error_reporting() & $severity) { // not for @-silenced calls
		throw new ErrorException($message, 0, $severity, $file, $line);
	}
	return false;
});
date_default_timezone_set('Europe/Moscow');

$bin = getenv('ORDERBRIDGE_BIN') ?: '/work/main/build/orderbridge';
if (!is_file($bin) || !is_executable($bin)) {
	echo "contract test skipped: no orderbridge binary at $bin (set ORDERBRIDGE_BIN)\n";
	exit(77);
}

define('REPO', dirname(__DIR__, 3));
define('MODULE_DIR', REPO . '/site/bitrix/orderbridge.connector');
require_once 'PHPUnit/Autoload.php'; // helpers.php's eq()/ok() are PHPUnit assertions (Debian's phpunit)
require REPO . '/tests/site/php/stubs.php';
require REPO . '/tests/site/php/stubs_orm.php';
\Bitrix\Main\Loader::$moduleDirs['orderbridge.connector'] = MODULE_DIR;
require MODULE_DIR . '/include.php';
require REPO . '/tests/site/php/helpers.php';
require REPO . '/tests/site/php/helpers_site.php';

use Orderbridge\Config;
use Orderbridge\Log;
use Orderbridge\Relay;
use Orderbridge\Signature;
use Orderbridge\Snapshot;
use Orderbridge\Queue;
use Orderbridge\QueueTable;
use Orderbridge\Transport;

// ---- the daemon ---------------------------------------------------------------------------

$dir = sys_get_temp_dir() . '/ob-contract-' . bin2hex(random_bytes(6));
mkdir($dir, 0700);
$secret = 'whsec_' . base64_encode(random_bytes(32));
file_put_contents($dir . '/secret', $secret);
chmod($dir . '/secret', 0600);
$port = free_port();
file_put_contents($dir . '/orderbridge.conf', implode("\n", [
	'[server]',
	'listen = 127.0.0.1:' . $port,
	'signing_secret_file = ' . $dir . '/secret',
	'[store]',
	'path = ' . $dir . '/ob.db',
	'[site]',
	'id = shop.example.ru',
	'',
]));
$base = 'http://127.0.0.1:' . $port;

$daemon = proc_open([$bin, 'serve', '-c', $dir . '/orderbridge.conf'], [
	0 => ['file', '/dev/null', 'r'],
	1 => ['file', $dir . '/daemon.log', 'a'],
	2 => ['file', $dir . '/daemon.log', 'a'],
], $pipes);

function stop_daemon(): void
{
	global $daemon;
	if (!is_resource($daemon)) {
		return;
	}
	$pid = proc_get_status($daemon)['pid'];
	posix_kill($pid, SIGTERM);
	for ($i = 0; $i < 50 && proc_get_status($daemon)['running']; $i++) {
		usleep(100000);
	}
	if (proc_get_status($daemon)['running']) {
		posix_kill($pid, SIGKILL);
	}
	proc_close($daemon);
	$daemon = null;
}

register_shutdown_function('stop_daemon'); // also after a fatal error: never leave it running

function healthy(string $base): bool
{
	$ctx = stream_context_create(['http' => ['timeout' => 0.5, 'ignore_errors' => true]]);
	$body = @file_get_contents($base . '/healthz', false, $ctx);
	return $body !== false && isset($http_response_header[0]) && strpos($http_response_header[0], ' 200') !== false;
}

$deadline = microtime(true) + 10;
while (!healthy($base) && microtime(true) < $deadline && proc_get_status($daemon)['running']) {
	usleep(100000);
}
if (!healthy($base)) {
	echo "not ok 1 - orderbridge serve starts and answers GET /healthz\n";
	echo '  # ' . str_replace("\n", "\n  # ", trim((string)@file_get_contents($dir . '/daemon.log'))) . "\n";
	stop_daemon();
	echo "0 passed, 1 failed\n";
	exit(1);
}

// ---- the cases ----------------------------------------------------------------------------

$GLOBALS['tmp'] = $dir;
$_SERVER['DOCUMENT_ROOT'] = $dir;
$GLOBALS['log'] = [];
Log::$sink = function ($level, $line) {
	$GLOBALS['log'][] = $line;
};
\Bitrix\Main\Config\Option::$values = [];
$config = configure($base, ['signing_secret' => $secret]);
$kind = 'curl';     // the transport under test; every case runs with each one
$idBase = 0;        // keeps the order ids of the two rounds apart

function transport(): Transport
{
	return new Transport(2.0, $GLOBALS['kind']);
}

/** An order id of this round. */
function oid(int $n): int
{
	return $GLOBALS['idBase'] + $n;
}

/** One POST with the module's signing; $headers lets a case sign something else. */
function post(string $body, ?array $headers = null): array
{
	global $config, $secret;
	$headers = $headers ?? Signature::headers($secret, Relay::newId(), time(), $body);
	[$status, $answer] = transport()->post($config->url . '/v1/orders', $headers, $body);
	return [$status, json_decode($answer, true), $answer];
}

function snapshot_of($order, ?int $version = null): string
{
	global $config;
	return Snapshot::encode(Snapshot::build($order, $config, $version));
}

$cases = [];
function check(string $name, callable $fn): void
{
	$GLOBALS['cases'][] = [$name, $fn];
}

check('a snapshot signed by the module is accepted: 202 {"order_id":..,"accepted":true}', function () {
	[$status, $json, $raw] = post(snapshot_of(individual_order(['ID' => oid(123), 'ACCOUNT_NUMBER' => '123'], '4521890')));
	eq(202, $status, $raw);
	eq((string)oid(123), $json['order_id'] ?? null, $raw);
	eq(true, $json['accepted'] ?? null, $raw);
});

check('a legal-entity snapshot with a buyer\'s typos (cleaned by the module) is accepted', function () {
	$order = legal_order(['ID' => oid(124)]);
	$props = $order->getPropertyCollection();
	$props->getItemByOrderPropertyCode('CONTACT_PERSON')->setValue("Мария\nИванова");
	$props->getItemByOrderPropertyCode('COMPANY')->setValue(str_repeat('Ж', 300));
	$props->getItemByOrderPropertyCode('EMAIL')->setValue('no at sign');
	$props->getItemByOrderPropertyCode('INN')->setValue('7707 083 893');
	[$status, , $raw] = post(snapshot_of($order));
	eq(202, $status, $raw);
});

check('a wrong secret is refused with 401', function () {
	$body = snapshot_of(individual_order(['ID' => oid(125)]));
	$other = 'whsec_' . base64_encode(random_bytes(32));
	[$status, , $raw] = post($body, Signature::headers($other, Relay::newId(), time(), $body));
	eq(401, $status, $raw);
});

check('a timestamp older than 5 minutes is refused with 401', function () {
	global $secret;
	$body = snapshot_of(individual_order(['ID' => oid(126)]));
	[$status, , $raw] = post($body, Signature::headers($secret, Relay::newId(), time() - 360, $body));
	eq(401, $status, $raw);
});

check('an altered body is refused with 401', function () {
	global $secret;
	$body = snapshot_of(individual_order(['ID' => oid(127)]));
	$headers = Signature::headers($secret, Relay::newId(), time(), $body);
	[$status, , $raw] = post(str_replace('"4990.00"', '"1.00"', $body), $headers);
	eq(401, $status, $raw);
});

check('an older version after a newer one is answered 200 {"stale":true}, which the module counts as delivered', function () {
	$newer = snapshot_of(individual_order(['ID' => oid(128), 'STATUS_ID' => 'P']), 2000);
	$older = snapshot_of(individual_order(['ID' => oid(128), 'STATUS_ID' => 'N']), 1000);
	eq(202, post($newer)[0]);
	[$status, $json, $raw] = post($older);
	eq(200, $status, $raw);
	eq(true, $json['stale'] ?? null, $raw);
	eq(Relay::DELIVERED, Relay::classify($status));
});

check('Relay: a real checkout snapshot is delivered and leaves nothing in the queue', function () {
	global $config;
	$relay = new Relay($config, new Queue(), transport());
	eq(Relay::DELIVERED, $relay->submit((string)oid(129), snapshot_of(individual_order(['ID' => oid(129)]))));
	eq(0, $relay->queue()->count());
});

check('Relay: a snapshot orderbridge calls invalid (400) is kept aside as rejected, not retried', function () {
	global $config;
	$relay = new Relay($config, new Queue(), transport());
	$bad = json_decode(snapshot_of(individual_order(['ID' => oid(130)])), true);
	$bad['order']['price'] = '49,90';
	[$status, $json] = post(json_encode($bad));
	eq(400, $status);
	eq('order.price', $json['field'] ?? null);
	eq(Relay::REJECT, $relay->submit((string)oid(130), json_encode($bad)));
	eq(1, $relay->queue()->rejectedCount());
	eq(0, $relay->queue()->count());
});

check('Relay: with the wrong secret configured the snapshot waits in the queue and goes out once it is fixed', function () {
	global $config;
	$wrong = clone $config;
	$wrong->secret = 'whsec_' . base64_encode(random_bytes(32));
	$queue = new Queue();
	eq(Relay::RETRY, (new Relay($wrong, $queue, transport()))->submit((string)oid(131), snapshot_of(individual_order(['ID' => oid(131)]))));
	eq(1, $queue->count(), '401 is not "invalid": it is kept');
	eq(['delivered' => 1, 'rejected' => 0, 'left' => 0], (new Relay($config, $queue, transport()))->flush());
});

$passed = $failed = 0;
foreach (extension_loaded('curl') ? ['curl', 'stream'] : ['stream'] as $round => $kind) {
	$idBase = 1000 * $round;
	foreach ($cases as [$name, $fn]) {
		try {
			orm_fresh_state(); // each case on an empty queue table, the breaker closed
			QueueTable::createIfMissing();
			(new Queue())->markUp();
			$fn();
			$passed++;
			echo 'ok ', $passed + $failed, ' - [', $kind, '] ', $name, "\n";
		} catch (\Throwable $e) {
			$failed++;
			echo 'not ok ', $passed + $failed, ' - [', $kind, '] ', $name, "\n";
			echo '  # ', str_replace("\n", "\n  # ", $e->getMessage()), "\n";
		}
	}
}
stop_daemon();
if ($failed) {
	echo "  # daemon log:\n  # " . str_replace("\n", "\n  # ", trim((string)@file_get_contents($dir . '/daemon.log'))) . "\n";
}
rm_rf($dir);
echo $passed, ' passed, ', $failed, " failed\n";
exit($failed === 0 ? 0 : 1);
