<?php
/*
 * Shared pieces of the PHP tests: assertions, per-test state, order fixtures, a fake
 * transport that records what the module would have posted, and a real local HTTP
 * "orderbridge" (fake_daemon.php under php -S) for the tests that need the network.
 */

use Bitrix\Main\Config\Option;
use Bitrix\Main\EventManager;
use Bitrix\Sale\BasketItem;
use Bitrix\Sale\Order;
use Bitrix\Sale\PropertyValue;
use Orderbridge\Config;
use Orderbridge\EventHandlers;
use Orderbridge\Log;
use Orderbridge\Relay;
use Orderbridge\Spool;
use Orderbridge\Transport;

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

// ---- assertions -------------------------------------------------------------------------

function eq($expected, $actual, string $what = ''): void
{
	\PHPUnit\Framework\Assert::assertSame($expected, $actual, $what);
}

function ok($condition, string $what): void
{
	\PHPUnit\Framework\Assert::assertTrue((bool)$condition, 'expected: ' . $what);
}

// ---- per-test state ---------------------------------------------------------------------

$GLOBALS['log'] = [];
$GLOBALS['tmp'] = '';

function fresh_state(): void
{
	Option::$values = [];
	EventManager::getInstance()->registered = [];
	EventManager::getInstance()->runtime = [];
	Order::$saved = [];
	\Bitrix\Sale\Internals\FakeTable::$rows = [];
	\CAgent::$agents = [];
	EventHandlers::reset();
	EventHandlers::$relayFactory = null;
	$_REQUEST = $_POST = $_COOKIE = [];
	$GLOBALS['log'] = [];
	Log::$sink = function ($level, $line) {
		$GLOBALS['log'][] = $line;
	};
	$GLOBALS['tmp'] = sys_get_temp_dir() . '/ob-php-test-' . bin2hex(random_bytes(6));
	mkdir($GLOBALS['tmp'], 0700, true);
	$_SERVER['DOCUMENT_ROOT'] = $GLOBALS['tmp'] . '/www';
	mkdir($_SERVER['DOCUMENT_ROOT']);
}

function cleanup_state(): void
{
	stop_daemons();
	if ($GLOBALS['tmp'] !== '' && is_dir($GLOBALS['tmp'])) {
		rm_rf($GLOBALS['tmp']);
	}
}

function rm_rf(string $path): void
{
	if (is_dir($path) && !is_link($path)) {
		foreach (scandir($path) as $f) {
			if ($f !== '.' && $f !== '..') {
				rm_rf($path . '/' . $f);
			}
		}
		rmdir($path);
	} elseif (file_exists($path) || is_link($path)) {
		unlink($path);
	}
}

function spool_dir(): string
{
	return $GLOBALS['tmp'] . '/spool';
}

function log_text(): string
{
	return implode("\n", $GLOBALS['log']);
}

/** Settings as an admin would save them on the options page. */
function configure(string $url = 'http://127.0.0.1:9', array $extra = []): Config
{
	$values = $extra + [
		'url' => $url,
		'signing_secret' => SECRET,
		'site_id' => 'shop.example.ru',
		'timeout' => '2',
		'spool_dir' => spool_dir(),
		'person_types' => json_encode([
			'1' => ['legal' => false],
			'2' => ['legal' => true, 'name' => 'CONTACT_PERSON'],
		]),
	];
	foreach ($values as $k => $v) {
		Option::set(Config::MODULE_ID, $k, $v);
	}
	return Config::load();
}

/** Runs the module's installer against the stand-ins (two person types, as the e-shop wizard makes). */
function install_module(): \orderbridge_connector
{
	\Bitrix\Sale\Internals\PersonTypeTable::add(['NAME' => 'Individual', 'LID' => 's1']);
	\Bitrix\Sale\Internals\PersonTypeTable::add(['NAME' => 'Legal entity', 'LID' => 's1']);
	$module = new \orderbridge_connector();
	ok($module->DoInstall(), 'DoInstall succeeds');
	return $module;
}

// ---- fixtures -----------------------------------------------------------------------------

function individual_order(array $fields = [], string $visit = ''): Order
{
	return new Order($fields + [
		'PERSON_TYPE_ID' => 1,
		'PRICE' => 4990.0,
		'DATE_INSERT' => new \Bitrix\Main\Type\DateTime('2026-03-13 10:00:00'),
	], [
		new PropertyValue(['CODE' => 'FIO', 'IS_PAYER' => 'Y'], 'Ivan Petrov'),
		new PropertyValue(['CODE' => 'EMAIL', 'IS_EMAIL' => 'Y'], 'ivan@example.ru'),
		new PropertyValue(['CODE' => 'PHONE', 'IS_PHONE' => 'Y'], '+7 900 123-45-67'),
		new PropertyValue(['CODE' => 'ADDRESS'], 'Moscow'),
		new PropertyValue(['CODE' => 'ROISTAT_VISIT'], $visit),
	], [
		new BasketItem(['PRODUCT_ID' => 55, 'NAME' => 'Kettle', 'PRICE' => 2495.0, 'QUANTITY' => 2.0]),
	]);
}

function legal_order(array $fields = []): Order
{
	return new Order($fields + [
		'PERSON_TYPE_ID' => 2,
		'PRICE' => 12345.5,
		'DATE_INSERT' => new \Bitrix\Main\Type\DateTime('2026-03-13 11:30:00'),
	], [
		new PropertyValue(['CODE' => 'COMPANY', 'IS_PROFILE_NAME' => 'Y'], 'ООО «Ромашка»'),
		new PropertyValue(['CODE' => 'INN'], '7707083893'),
		new PropertyValue(['CODE' => 'CONTACT_PERSON', 'IS_PAYER' => 'Y'], 'Мария Иванова'),
		new PropertyValue(['CODE' => 'EMAIL', 'IS_EMAIL' => 'Y'], 'buy@romashka.ru'),
		new PropertyValue(['CODE' => 'PHONE', 'IS_PHONE' => 'Y'], '+7 495 000-00-00'),
		new PropertyValue(['CODE' => 'ROISTAT_VISIT'], ''),
	], [
		new BasketItem(['PRODUCT_ID' => 7, 'NAME' => 'Paper A4', 'PRICE' => 345.5, 'QUANTITY' => 30.0]),
		new BasketItem(['PRODUCT_ID' => 8, 'NAME' => 'Toner', 'PRICE' => 1980.0, 'QUANTITY' => 0.5]),
		new BasketItem(['PRODUCT_ID' => 9, 'NAME' => 'Toner part', 'PRICE' => 0.0, 'QUANTITY' => 1.0,
			'SET_PARENT_ID' => 8]),
	]);
}

// ---- a fake transport ---------------------------------------------------------------------

/** Records each POST and answers from a script of [status, body] (the last one repeats). */
final class FakeTransport extends Transport
{
	public $requests = [];
	public $answers;

	public function __construct(array $answers = [[202, '{"accepted":true}']])
	{
		parent::__construct(2.0, 'stream');
		$this->answers = $answers;
	}

	public function post(string $url, array $headers, string $body): array
	{
		$this->requests[] = ['url' => $url, 'headers' => $headers, 'body' => $body];
		$answer = count($this->answers) > 1 ? array_shift($this->answers) : $this->answers[0];
		if ($answer instanceof \Throwable) {
			throw $answer;
		}
		return [$answer[0], $answer[1], $answer[0] === 0 ? 'connection refused' : ''];
	}

	public function orderIds(): array
	{
		return array_map(function ($r) {
			return json_decode($r['body'], true)['order']['id'];
		}, $this->requests);
	}
}

function relay_with(FakeTransport $transport, ?Config $config = null, ?callable $clock = null,
	?callable $rebuild = null): Relay
{
	$config = $config ?? configure();
	return new Relay($config, new Spool($config->spoolDir), $transport, $rebuild, $clock);
}

/** Makes the event handlers post through $transport. */
function handlers_use(FakeTransport $transport): void
{
	EventHandlers::$relayFactory = function () use ($transport) {
		return relay_with($transport, Config::load());
	};
}

// ---- a real local orderbridge stand-in (php -S) --------------------------------------------

$GLOBALS['daemons'] = [];

function free_port(): int
{
	$s = stream_socket_server('tcp://127.0.0.1:0');
	$name = stream_socket_get_name($s, false);
	fclose($s);
	return (int)substr(strrchr($name, ':'), 1);
}

/**
 * Starts fake_daemon.php on $port (a free one by default). $mode: accept | down | hang.
 * Returns [url, state dir]; state/requests.jsonl lists what arrived and whether it was signed right.
 */
function start_daemon(string $mode = 'accept', ?int $port = null): array
{
	$port = $port ?? free_port();
	$state = $GLOBALS['tmp'] . '/daemon-' . $port;
	@mkdir($state);
	file_put_contents($state . '/mode', $mode);
	$cmd = [PHP_BINARY, '-n', '-S', '127.0.0.1:' . $port, __DIR__ . '/fake_daemon.php'];
	$env = ['FAKE_DAEMON_STATE' => $state, 'FAKE_DAEMON_SECRET' => SECRET, 'PATH' => getenv('PATH')];
	$proc = proc_open($cmd, [0 => ['file', '/dev/null', 'r'], 1 => ['file', $state . '/out', 'a'],
		2 => ['file', $state . '/out', 'a']], $pipes, null, $env);
	$GLOBALS['daemons'][] = $proc;
	$deadline = microtime(true) + 5;
	while (microtime(true) < $deadline) {
		$c = @stream_socket_client('tcp://127.0.0.1:' . $port, $errno, $errstr, 0.2);
		if ($c) {
			fclose($c);
			return ['http://127.0.0.1:' . $port, $state];
		}
		usleep(50000);
	}
	throw new RuntimeException('fake daemon did not start: ' . @file_get_contents($state . '/out'));
}

function daemon_requests(string $state): array
{
	$lines = @file($state . '/requests.jsonl', FILE_IGNORE_NEW_LINES) ?: [];
	return array_map(function ($l) {
		return json_decode($l, true);
	}, $lines);
}

function stop_daemons(): void
{
	foreach ($GLOBALS['daemons'] as $proc) {
		$status = proc_get_status($proc);
		if ($status['running']) {
			posix_kill($status['pid'], SIGTERM);
		}
		proc_close($proc);
	}
	$GLOBALS['daemons'] = [];
}
