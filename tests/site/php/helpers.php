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
use Orderbridge\Queue;
use Orderbridge\Transport;
use Orderbridge\Visit;

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
	\Bitrix\Catalog\ProductTable::$rows = [];
	Order::$legacySale = false;
	\Bitrix\Main\Config\Configuration::$values = [];
	\Bitrix\Main\SiteTable::$rows = [];
	EventHandlers::reset();
	EventHandlers::$relayFactory = null;
	// A buyer's checkout page, unless a test says otherwise (the tests themselves run under CLI).
	Visit::$environment = public_request();
	$_REQUEST = $_POST = $_COOKIE = [];
	$GLOBALS['log'] = [];
	Log::$sink = function ($level, $line) {
		$GLOBALS['log'][] = $line;
	};
	$GLOBALS['tmp'] = sys_get_temp_dir() . '/ob-php-test-' . bin2hex(random_bytes(6));
	mkdir($GLOBALS['tmp'], 0700, true);
	$_SERVER['DOCUMENT_ROOT'] = $GLOBALS['tmp'] . '/www';
	mkdir($_SERVER['DOCUMENT_ROOT']);
	site_fresh_state(); // helpers_site.php: the sale module's version, the queue table
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

/** What Visit::requestKind() reads in a public checkout request (sale.order.ajax on a php-fpm site). */
function public_request(): array
{
	return ['sapi' => 'fpm-fcgi', 'constants' => [],
		'server' => ['SCRIPT_NAME' => '/personal/order/make/index.php', 'REQUEST_URI' => '/personal/order/make/']];
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
	$step = run_install($module);
	eq(null, $step['error'], 'DoInstall succeeds');
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

/**
 * An order of site s2 with everything the snapshot's optional fields read: a row discounted
 * from 2495.00 to 2245.50 (× 2), one not discounted, purchasing prices, a courier delivery
 * discounted from 600 to 500, the coupon SALE10 applied, two payments (one paid), three UTM
 * tags (UTM_CONTENT empty), a two-line comment. $extra and $moreItems add to or replace parts.
 */
function full_order(array $fields = [], array $extra = [], array $moreItems = [], array $moreProps = []): Order
{
	// the catalog's purchasing prices (b_catalog_product), as the database gives them
	\Bitrix\Catalog\ProductTable::$rows[55] = ['PURCHASING_PRICE' => '1200.00', 'PURCHASING_CURRENCY' => 'RUB'];
	\Bitrix\Catalog\ProductTable::$rows[56] = ['PURCHASING_PRICE' => '500.0000', 'PURCHASING_CURRENCY' => null];
	return new Order($fields + [
		'ID' => 321,
		'ACCOUNT_NUMBER' => 'A-321',
		'LID' => 's2',
		'STATUS_ID' => 'P',
		'PERSON_TYPE_ID' => 1,
		'PRICE' => 5380.0,
		'PRICE_DELIVERY' => 500.0,
		'SUM_PAID' => 3000.0,
		'USER_DESCRIPTION' => "Call before delivery, please.\r\nEntrance from the yard",
		'DATE_INSERT' => new \Bitrix\Main\Type\DateTime('2026-03-13 10:00:00'),
		'DATE_UPDATE' => new \Bitrix\Main\Type\DateTime('2026-03-13 10:05:00'),
	], array_merge([
		new PropertyValue(['CODE' => 'FIO', 'IS_PAYER' => 'Y'], 'Ivan Petrov'),
		new PropertyValue(['CODE' => 'EMAIL', 'IS_EMAIL' => 'Y'], 'ivan@example.ru'),
		new PropertyValue(['CODE' => 'PHONE', 'IS_PHONE' => 'Y'], '+7 900 123-45-67'),
		new PropertyValue(['CODE' => 'ADDRESS'], 'Moscow, Tverskaya 1'),
		new PropertyValue(['CODE' => 'ROISTAT_VISIT'], '4521890'),
		new PropertyValue(['CODE' => 'UTM_SOURCE'], 'yandex'),
		new PropertyValue(['CODE' => 'UTM_MEDIUM'], 'cpc'),
		new PropertyValue(['CODE' => 'UTM_CAMPAIGN'], 'spring sale'),
		new PropertyValue(['CODE' => 'UTM_CONTENT'], ''),
	], $moreProps), array_merge([
		new BasketItem(['PRODUCT_ID' => 55, 'NAME' => 'Kettle', 'PRICE' => 2245.5, 'BASE_PRICE' => 2495.0,
			'QUANTITY' => 2.0]),
		new BasketItem(['PRODUCT_ID' => 56, 'NAME' => 'Filter', 'PRICE' => 389.0, 'QUANTITY' => 1.0]),
	], $moreItems), $extra + [
		'shipments' => [new \Bitrix\Sale\Shipment(['DELIVERY_NAME' => 'Courier', 'PRICE_DELIVERY' => 500.0,
			'BASE_PRICE_DELIVERY' => 600.0])],
		'payments' => [
			new \Bitrix\Sale\Payment(['PAY_SYSTEM_NAME' => 'Card online', 'SUM' => 3000.0, 'PAID' => 'Y']),
			new \Bitrix\Sale\Payment(['PAY_SYSTEM_NAME' => 'Cash', 'SUM' => 2380.0]),
		],
		'coupons' => ['SALE10' => 'Y'],
	]);
}

/** An individual order that also has the five UTM properties (empty unless $utm gives a value). */
function utm_order(array $utm = []): Order
{
	$codes = ['UTM_SOURCE', 'UTM_MEDIUM', 'UTM_CAMPAIGN', 'UTM_CONTENT', 'UTM_TERM'];
	$props = array_filter(iterator_to_array(individual_order()->getPropertyCollection(), false), function ($p) use ($codes) {
		return !in_array($p->getProperty()['CODE'] ?? null, $codes, true); // the installer's own, if it made them
	});
	foreach ($codes as $code) {
		$props[] = new PropertyValue(['CODE' => $code], $utm[$code] ?? '');
	}
	return new Order(['PERSON_TYPE_ID' => 1, 'PRICE' => 4990.0], array_values($props),
		[new BasketItem(['PRODUCT_ID' => 55, 'NAME' => 'Kettle', 'PRICE' => 2495.0, 'QUANTITY' => 2.0])]);
}

// ---- a fake transport ---------------------------------------------------------------------

/** Records each POST and answers from a script of [status, body] (the last one repeats). */
final class FakeTransport extends Transport
{
	public $requests = [];
	public $answers;

	public function __construct(array $answers = [[202, '{"accepted":true}']])
	{
		parent::__construct(2.0);
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
	return new Relay($config, new Queue(), $transport, $rebuild, $clock);
}

/** Makes the event handlers post through $transport, with the settings they chose for the order's site. */
function handlers_use(FakeTransport $transport): void
{
	EventHandlers::$relayFactory = function (?Config $config = null) use ($transport) {
		return relay_with($transport, $config ?? Config::load());
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

/**
 * Renders options.php as the admin panel includes it, as a GET, or as a POST of $post with
 * the session token (unless $post brings its own); returns the page.
 */
function options_page(array $post = []): string
{
	if (!defined('B_PROLOG_INCLUDED')) {
		define('B_PROLOG_INCLUDED', true);
	}
	$GLOBALS['APPLICATION'] = new class extends \CMain {
		public function GetGroupRight($moduleId)
		{
			return 'W';
		}

		public function AuthForm($message)
		{
			throw new \RuntimeException('access denied');
		}
	};
	if ($post) {
		$_SERVER['REQUEST_METHOD'] = 'POST';
		$_POST = $_REQUEST = $post + ['sessid' => bitrix_sessid()];
	}
	ob_start();
	try {
		(function () {
			include \MODULE_DIR . '/options.php';
		})();
	} finally {
		$html = ob_get_clean();
		if ($post) {
			$_SERVER['REQUEST_METHOD'] = 'GET';
			$_POST = $_REQUEST = [];
		}
	}
	return $html;
}
